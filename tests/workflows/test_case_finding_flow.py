"""``careflow find-cases`` as a user runs it: the Prefect flow writes the hand-counted proposals, a
rerun writes none, ``--dry-run`` lists the matches and writes nothing, ``--json`` one object, and bad
input one readable line (a bad rule file: its problems at file:line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flow_helpers import all_resources, run_careflow, subprocess_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.test_case_finding import PROPOSED, population  # noqa: E402

from careflow.naming import TASK_KIND  # noqa: E402
from careflow.population.case_finding import CASE_FINDING  # noqa: E402


def _store(tmp_path: Path) -> str:
    from careflow.access.principal import SYSTEM
    from careflow.store.database import open_repository

    url = f"sqlite:///{tmp_path / 'cases.db'}"
    repo = open_repository(url)
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            for r in population():
                uow.create_if_absent(r)
    finally:
        repo.close()
    return url


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_find_cases_flow_rerun_and_dry_run(tmp_path, prefect_api):
    db = _store(tmp_path)
    env = subprocess_env(prefect_api)
    dry = json.loads(_ok(run_careflow(["find-cases", "--db", db, "--at", "2026-11-01", "--dry-run", "--json"], env)))
    assert dry["written"] is False and dry["version"] == "2026.1"
    assert dry["matched"] == {"smoker-without-spirometry": 2, "suspected-heart-failure": 3,
                              "egfr-low-without-ckd": 2, "diabetes-care-pathway": 3}  # h6 and d4 match, are not proposed
    assert all_resources(db, "Task") == []

    first = json.loads(_ok(run_careflow(["find-cases", "--db", db, "--at", "2026-11-01", "--partitions", "2", "--json"], env)))
    assert first["total"]["proposed"] == 8 and first["total"]["already-enrolled"] == 1
    assert first["total"]["consent-withdrawn"] == 1
    tasks = all_resources(db, "Task", [("code", f"{TASK_KIND}|{CASE_FINDING}")])
    assert sorted(t["for"]["reference"] for t in tasks) == sorted(f"Patient/{p}" for p in PROPOSED)

    again = _ok(run_careflow(["find-cases", "--db", db, "--at", "2026-11-01"], env)).strip()
    assert again == ("careflow: case finding done (rule set case-finding 2026.1, 2026-11-01): 0 proposed, 8 already open, "
                     "0 closed before for the same evidence, 1 already enrolled, 1 consent withdrawn")
    assert len(all_resources(db, "Task")) == 8


def _one_error_line(proc, fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("careflow: error:") and fragment in lines[0], proc.stderr


def test_bad_input_is_one_readable_line(tmp_path):
    env = subprocess_env(None)
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    _one_error_line(run_careflow(["find-cases", "--db", db, "--at", "soon"], env), "--at 'soon' is not a date")
    _one_error_line(run_careflow(["find-cases", "--db", db, "--at", "2020-01-01", "--dry-run"], env),
                    "no case-finding rule set is in force on 2020-01-01")
    _one_error_line(run_careflow(["find-cases", "--rules", str(tmp_path / "none.yaml")], env), "no such file or folder")
    bad = tmp_path / "bad.yaml"
    bad.write_text('id: case-finding\nversion: "2026.9"\neffective: "2026-01-01"\ntitle: t\nchronic:\n'
                   '  copd: {label: COPD, codes: [{system: icpc-2, code: R95}]}\nrules:\n'
                   '  - id: x\n    title: {nl: x, en: x}\n    when:\n      - not: {condition: {any_of: [cpod]}}\n',
                   encoding="utf-8")
    proc = run_careflow(["find-cases", "--db", db, "--rules", str(bad), "--dry-run"], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith(f"{bad}:11:") and "chronic kind 'cpod' is not declared" in line
               and "did you mean 'copd'?" in line for line in lines), proc.stderr
    assert lines[-1] == "careflow: 1 problem found"
