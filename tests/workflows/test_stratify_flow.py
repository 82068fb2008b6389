"""``careflow stratify`` as a user runs it: the Prefect flow records the groups, a rerun writes nothing,
``--at`` replays an old rule version at an old date, ``--explain`` gives the sentence, ``--json`` one
object, and bad input one readable line (a bad rule file: its problems at file:line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flow_helpers import all_resources, run_careflow, subprocess_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.test_stratify import _population  # noqa: E402


def _store(tmp_path: Path) -> str:
    from careflow.access.principal import SYSTEM
    from careflow.store.database import open_repository

    url = f"sqlite:///{tmp_path / 'strat.db'}"
    repo = open_repository(url)
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            for r in _population():
                uow.create_if_absent(r)
    finally:
        repo.close()
    return url


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_stratify_flow_replay_and_explain(tmp_path, prefect_api):
    db = _store(tmp_path)
    env = subprocess_env(prefect_api)
    first = json.loads(_ok(run_careflow(["stratify", "--db", db, "--today", "2026-11-01", "--partitions", "2", "--json"], env)))
    assert (first["rule_set"], first["version"], first["day"]) == ("pyramid", "2026.2", "2026-11-01")
    assert {g: first["total"][f"group-{g}"] for g in "AB"} == {"A": 2, "B": 2} and first["total"]["group-C"] == 1
    assert first["total"]["assessments-written"] == 5
    assessments = {r["subject"]["reference"]: r for r in all_resources(db, "RiskAssessment")}
    assert sorted(assessments) == [f"Patient/p{i}" for i in range(1, 6)]

    again = _ok(run_careflow(["stratify", "--db", db, "--today", "2026-11-01"], env)).strip()
    assert again == ("careflow: stratification done (rule set pyramid 2026.2, 2026-11-01): 2 A, 2 B, 1 C, 0 D; "
                     "0 assessments written, 0 group tags updated, 0 frailty screens too old to use")

    replay = json.loads(_ok(run_careflow(["stratify", "--db", db, "--at", "2026-03-01", "--json"], env)))
    assert replay["version"] == "2026.1" and replay["written"] is False
    assert replay["patients"] == {"Patient/p1": "B", "Patient/p2": "C", "Patient/p3": "D", "Patient/p4": "C",
                                  "Patient/p5": "A"}
    assert len(all_resources(db, "RiskAssessment")) == 5  # nothing written by the replay
    text = _ok(run_careflow(["stratify", "--db", db, "--at", "2026-03-01"], env)).strip()
    assert text == "careflow: replay of rule set pyramid 2026.1 at 2026-03-01 (nothing written): 1 A, 1 B, 2 C, 1 D"

    explained = _ok(run_careflow(["stratify", "--db", db, "--today", "2026-11-01", "--explain", "Patient/p1"], env))
    assert explained == "Patient/p1: group B because: COPD + heart failure, age 81, rule set 2026.2\n"
    as_json = json.loads(_ok(run_careflow(["stratify", "--db", db, "--at", "2026-11-01", "--explain", "p2", "--json"], env)))
    assert as_json[0]["group"] == "A" and as_json[0]["evidence"] == ["Condition/p2-diabetes", "Observation/p2-belrai0"]


def _one_error_line(proc, fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("careflow: error:") and fragment in lines[0], proc.stderr


def test_bad_input_is_one_readable_line(tmp_path):
    env = subprocess_env(None)
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    _one_error_line(run_careflow(["stratify", "--db", db, "--at", "yesterday"], env), "--at 'yesterday' is not a date")
    _one_error_line(run_careflow(["stratify", "--db", db, "--at", "2020-01-01"], env),
                    "no stratification rule set is in force on 2020-01-01")
    _one_error_line(run_careflow(["stratify", "--db", "mysql://x@y/z", "--at", "2026-11-01"], env), "unsupported database")
    _one_error_line(run_careflow(["stratify", "--db", db, "--explain", "nobody", "--at", "2026-11-01"], env),
                    "no living patient with id nobody")
    _one_error_line(run_careflow(["stratify", "--rules", str(tmp_path / "none.yaml")], env), "no such file or folder")
    bad = tmp_path / "bad.yaml"
    bad.write_text('id: pyramid\nversion: "2026.3"\neffective: "2026-01-01"\ntitle: t\nchronic: {}\nrulez: []\n',
                   encoding="utf-8")
    proc = run_careflow(["stratify", "--db", db, "--rules", str(bad)], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert f"{bad}:6:1: rulez: unknown key 'rulez'" in lines[0] or any(line.startswith(f"{bad}:6:1: rulez") for line in lines)
    assert lines[-1].startswith("careflow: ") and "problems found" in lines[-1]


def test_stratify_incremental_reads_only_what_changed_since_the_last_run(tmp_path, prefect_api):
    db = _store(tmp_path)
    env = subprocess_env(prefect_api)
    args = ["stratify", "--db", db, "--today", "2026-11-01", "--json"]
    first = json.loads(_ok(run_careflow([*args, "--incremental"], env)))["total"]
    assert not first.get("incremental") and first["recomputed"] == 6  # no earlier run: everyone
    # everything was written within the look-back: recomputed again, nothing written
    again = json.loads(_ok(run_careflow([*args, "--incremental"], env)))["total"]
    assert again["incremental"] == 1 and again["recomputed"] == 6 and again.get("assessments-written", 0) == 0
    assert len(all_resources(db, "Basic")) == 1  # the run record
    other_day = json.loads(_ok(run_careflow(["stratify", "--db", db, "--today", "2026-11-02", "--json",
                                             "--incremental"], env)))["total"]
    assert not other_day.get("incremental") and other_day["recomputed"] == 6
    text = _ok(run_careflow(["stratify", "--db", db, "--today", "2026-11-02", "--incremental"], env)).strip()
    assert text.startswith("careflow: stratification done (rule set pyramid 2026.2, 2026-11-02): "
                           "6 patients changed since the last run, recomputed: 2 A, 2 B, 1 C, 0 D;")
