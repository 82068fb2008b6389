"""The careflow command for programmes and planning: right exit codes, one readable line per error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from careflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/programs/fixtures"


@pytest.fixture(autouse=True)
def fixture_programs(monkeypatch):
    monkeypatch.setenv("CAREFLOW_PROGRAMS", str(FIXTURES))


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok(capsys):
    code, out, _ = run(capsys, "programs", "validate", str(FIXTURES))
    assert code == 0 and "mini-hf.yaml: ok" in out


def test_validate_lists_every_problem(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((FIXTURES / "mini-hf.yaml").read_text().replace("P7D", "P7X").replace("role: gp", "role: doctor"))
    code, _, err = run(capsys, "programs", "validate", str(bad), str(FIXTURES))
    lines = err.strip().splitlines()
    assert code == 1
    assert lines[-1] == f"careflow: {len(lines) - 1} problems found"
    assert len(lines) - 1 == 4  # P7X once; role: gp in two activities and one create_task
    assert all(line.startswith(f"{bad}:") for line in lines[:-1])
    assert "Traceback" not in err


def test_validate_a_file_nested_past_the_parsers_stack_is_a_problem_at_its_line(capsys, tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("id: " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = run(capsys, "programs", "validate", str(deep))
    assert code == 1
    assert err.splitlines()[0] == f"{deep}:1:1: the YAML is nested too deeply to read", err
    assert "internal error" not in err and "Traceback" not in err


def test_validate_empty_folder(capsys, tmp_path):
    code, _, err = run(capsys, "programs", "validate", str(tmp_path))
    assert code == 1 and err.startswith("careflow: error: no programme files")


def test_show_is_a_timeline_per_role(capsys):
    code, out, _ = run(capsys, "programs", "show", "mini-hf")
    assert code == 0
    assert "Home nurse [home-nurse]:" in out
    assert "Weight check: at the start, then every 1 month until the plan ends; due within 1 week" in out
    assert "when weight-check is overdue by 3 days: escalate to care-coach (urgent)" in out


def test_show_in_dutch(capsys):
    code, out, _ = run(capsys, "programs", "show", "mini-hf", "--language", "nl")
    assert code == 0 and "Thuisverpleegkundige [home-nurse]:" in out


def test_unknown_programme(capsys):
    code, _, err = run(capsys, "programs", "show", "nope")
    assert code == 1 and err == "careflow: error: no programme with id 'nope' (known: mini-hf)\n"


def test_plan_prints_transaction_bundle(capsys, tmp_path):
    pat = tmp_path / "p.json"
    pat.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01"}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": "K77"}]}}}]}))
    code, out, _ = run(capsys, "plan", "--program", "mini-hf", "--patient", str(pat), "--start", "2026-01-01")
    bundle = json.loads(out)
    assert code == 0 and bundle["type"] == "transaction"
    plans = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan"]
    (part,) = [p for p in plans if "instantiatesCanonical" in p]  # the programme's part of the shared plan
    (whole,) = [p for p in plans if "instantiatesCanonical" not in p]
    assert part["partOf"] == [{"reference": f"CarePlan/{whole['id']}"}]


@pytest.mark.parametrize("content, message", [
    ('{"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01"}', "is not eligible for mini-hf"),
    ("{not json", "is not valid JSON"),
])
def test_plan_errors_are_one_line(capsys, tmp_path, content, message):
    pat = tmp_path / "p.json"
    pat.write_text(content)
    code, out, err = run(capsys, "plan", "--program", "mini-hf", "--patient", str(pat))
    assert code == 1 and out == "" and message in err and err.count("\n") == 1


def test_plan_bad_date_and_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "plan", "--program", "mini-hf", "--patient", str(tmp_path / "x.json"), "--start", "2026-13-01")
    assert code == 1 and "is not a date" in err
    code, _, err = run(capsys, "plan", "--program", "mini-hf", "--patient", str(tmp_path / "x.json"))
    assert code == 1 and "cannot read" in err


def test_installed_command_usage_error_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "careflow.cli", "programs", "show"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["careflow: error: Missing argument 'ID'. (try --help)"]


def test_schema_command_matches_file(capsys):
    code, out, _ = run(capsys, "programs", "schema")
    assert code == 0 and out == (ROOT / "care_programs/schema.json").read_text()
