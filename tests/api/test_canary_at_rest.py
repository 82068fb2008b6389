"""Canary: made-up identifying values written through the API and the engine appear nowhere at rest.

A patient with a distinctive name, national number, birth date, address and phone is created over
HTTP (plain, conditional, with an Observation that raises an outbox event), enrolled by the engine
(CarePlan, CareTeam, Tasks), searched for and updated.  Then the raw SQLite file and its WAL, or a
``pg_dump`` of the PostgreSQL schema, every log record emitted meanwhile (SQL echo included), and the
outbox rows are searched for each value in every spelling careflow could have written.  Lookups by
identifier, name and birth date must still find the patient.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from careflow.api.app import create_app
from careflow.engine import enrolment, events
from careflow.naming import CARE_ROLE_SYSTEM, EXT_NEIGHBOURHOOD, POPULATION_GROUP, SSIN
from careflow.store.database import make_engine, scratch_schema, upgrade
from careflow.store.sql import SqlRepository
from careflow.store.tables import outbox

FAMILY, GIVEN = "Zwanenburgh", "Philomena"
SSIN_VALUE = "53021714928"
BORN = "1953-02-17"
STREET, CITY = "Kattenstraat 713", "Tielt-Winge"
PHONE, EMAIL = "+32499887766", "philomena.zwanenburgh@example.org"
HOOD = "binnenstad"
START = date(2026, 3, 2)

# every spelling a leak could take: as written, case-folded, SSIN with its usual punctuation, the date
# as written and compacted, the street without its number
CANARIES = [FAMILY, FAMILY.lower(), FAMILY.upper(), GIVEN, GIVEN.lower(), SSIN_VALUE, "53.02.17-149.28",
            "530217-149.28", BORN, "19530217", "1953-02", STREET, "kattenstraat", CITY, "tielt-winge", PHONE,
            "499887766", EMAIL]


def _leaks(blob: bytes) -> list[str]:
    return [c for c in CANARIES if c.encode() in blob or c.encode("utf-16-le") in blob]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, SqlRepository]]:
    """(backend, url, repository) of a store of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'canary.db'}"
        upgrade(url)
        repo = SqlRepository(make_engine(url))
        yield "sqlite", url, repo
        repo.close()
        return
    base = os.environ.get("CAREFLOW_TEST_DATABASE_URL")
    if not base:
        pytest.skip("CAREFLOW_TEST_DATABASE_URL is not set")
    with scratch_schema(base, "cf_canary") as url:
        repo = SqlRepository(make_engine(url))
        yield "postgres", url, repo
        repo.close()


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Every log record of every logger, DEBUG and up, SQL statements and their parameters included."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level, logging.getLogger("sqlalchemy.engine").level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # echo every statement with its parameters
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old[0])
        logging.getLogger("sqlalchemy.engine").setLevel(old[1])


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient", "active": True, "gender": "female", "birthDate": BORN,
        "meta": {"tag": [{"system": POPULATION_GROUP, "code": "B"}]},
        "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
        "identifier": [{"use": "official", "system": SSIN, "value": SSIN_VALUE}],
        "name": [{"use": "official", "family": FAMILY, "given": [GIVEN], "text": f"{GIVEN} {FAMILY}"}],
        "telecom": [{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}],
        "address": [{"line": [STREET], "city": CITY, "postalCode": "3390", "country": "BE"}],
        "generalPractitioner": [{"reference": "PractitionerRole/role-gp"}],
    }


def _team(client: TestClient) -> None:
    org = {"resourceType": "Organization", "id": "team", "name": "Buurtteam Binnenstad"}
    assert client.put("/fhir/Organization/team", json=org).status_code in (200, 201)
    for role in ("gp", "home-nurse", "pharmacist", "care-coach", "physiotherapist", "dietitian", "case-manager",
                 "hf-educator"):
        body = {"resourceType": "PractitionerRole", "id": f"role-{role}", "active": True,
                "organization": {"reference": "Organization/team"},
                "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
                "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": role}]}]}
        assert client.put(f"/fhir/PractitionerRole/role-{role}", json=body).status_code in (200, 201)


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def _raw_store(backend: str, url: str, repo: SqlRepository) -> bytes:
    """The database as an attacker copying it would get it: SQLite file + WAL, or a pg_dump."""
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        parts = [path.read_bytes()]
        wal = path.with_name(path.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the WAL is checked too, not just the main file
        parts.append(wal.read_bytes())
        return b"".join(parts)
    schema = unquote(url).rsplit("search_path=", 1)[1].split("&")[0]
    pg_dump = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), reverse=True)),
                   None) or shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    base = os.environ["CAREFLOW_TEST_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run([str(pg_dump), "--no-owner", "--schema", schema, base], capture_output=True, timeout=120)
    assert dump.returncode == 0, dump.stderr.decode()[:500]
    assert b"COPY" in dump.stdout and b"resource_version" in dump.stdout  # the data itself is in the dump
    return dump.stdout


def test_no_identifying_value_at_rest(store, programs, captured_logs, verifier, system_headers):
    backend, url, repo = store
    events.install(repo)  # what `careflow serve` does: Observations and Task changes raise outbox events
    app = create_app(repo, programs, now=lambda: datetime(2026, 3, 2, 9, tzinfo=timezone.utc), auth=verifier)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update({"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                               **system_headers})
        _team(client)
        created = client.post("/fhir/Patient", json=_patient(),
                              headers={"If-None-Exist": f"identifier={SSIN}|{SSIN_VALUE}"})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        again = client.post("/fhir/Patient", json=_patient(), headers={"If-None-Exist": f"identifier={SSIN_VALUE}"})
        assert again.status_code == 200 and again.json()["id"] == pid  # conditional create found it blind
        condition = {"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                     "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                    "code": "active"}]},
                     "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84114007"}]},
                     "onsetDateTime": "2026-02-01", "note": [{"text": f"told by {GIVEN} {FAMILY}, {PHONE}"}]}
        assert client.post("/fhir/Condition", json=condition).status_code == 201

        # the engine enrols her: CarePlan, Goals, CareTeam, Tasks
        counts = enrolment.enrol(repo, programs, [pid], START)
        assert counts["enrolled"] == 1

        weight = {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
                  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                  "effectiveDateTime": "2026-03-02T08:00:00Z",
                  "valueQuantity": {"value": 81.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
                  "performer": [{"display": f"{GIVEN} {FAMILY}"}]}
        assert client.post("/fhir/Observation", json=weight).status_code == 201
        with repo.engine.connect() as conn:
            payloads = [bytes(p) for p in conn.execute(select(outbox.c.payload)).scalars()]
        assert payloads, "the Observation should have raised an outbox event"
        events.process_events(repo, programs, datetime(2026, 3, 2, 10, tzinfo=timezone.utc))

        # every lookup on identifying values still works
        for params in ({"identifier": f"{SSIN}|{SSIN_VALUE}"}, {"identifier": SSIN_VALUE}, {"family": FAMILY.lower()},
                       {"given": GIVEN}, {"name": f"{GIVEN} {FAMILY}"}, {"family:exact": FAMILY},
                       {"birthdate": BORN}, {"birthdate": "1953"}, {"birthdate": "lt1960"}):
            found = client.get("/fhir/Patient", params=params)
            assert found.status_code == 200 and _ids(found.json()) == [pid], (params, found.text)
        chained = client.get("/fhir/CarePlan", params={"patient.identifier": f"{SSIN}|{SSIN_VALUE}"})
        assert chained.status_code == 200 and len(_ids(chained.json())) == 2  # the shared plan and its one part
        refused = client.get("/fhir/Patient", params={"family:contains": FAMILY[2:7]})
        assert refused.status_code == 400
        assert FAMILY[2:7] not in refused.json()["issue"][0]["diagnostics"]  # the value is not echoed

        # a second version: history is encrypted too
        current = client.get(f"/fhir/Patient/{pid}").json()
        current["telecom"].append({"system": "phone", "value": PHONE, "use": "mobile"})
        assert client.put(f"/fhir/Patient/{pid}", json=current).status_code == 200
        history = client.get(f"/fhir/Patient/{pid}/_history").json()
        assert history["total"] == 2 and all(e["resource"]["name"][0]["family"] == FAMILY for e in history["entry"])

    assert _leaks(_raw_store(backend, url, repo)) == []
    assert [p for p in payloads if _leaks(p)] == []
    # (the test's own HTTP client logs the URLs it requests: that is the caller's side, not careflow's)
    assert [line for line in captured_logs if _leaks(line.encode()) and not line.startswith("httpx ")] == []
    assert any("INSERT" in line or "SELECT" in line for line in captured_logs)  # the SQL echo was captured
