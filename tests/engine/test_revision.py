"""Revision: publishing a new version of a programme migrates its open plans, shown first.

A next COPD version drops the Tdap activity and adds a breathing-exercise check. Publishing it over plans of
the version in use shows per plan what changes and writes nothing; with apply, the open Tdap Task is cancelled
with a reason, the new activity opens due from the publishing day (never overdue on creation), the
plan's canonical follows, completed work is untouched, and publishing again changes nothing.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from engine_world import COPD, add_patient, add_team, all_of, edit_task

from careflow.engine import enrolment
from careflow.engine.revision import publish
from careflow.engine.sweep import sweep
from careflow.planning import ids
from careflow.programs.loader import load_program

START = date(2026, 1, 12)
PUBLISHED = START + timedelta(days=75)
PID = "pat-rev"
ROOT = Path(__file__).resolve().parents[2]

NEW_ACTIVITY = """
  - id: breathing-exercise-check
    title: {nl: Controle ademhalingsoefeningen, en: Breathing exercise check}
    description:
      nl: De kinesitherapeut kijkt de ademhalingsoefeningen na.
      en: The physiotherapist checks the breathing exercises.
    role: physiotherapist
    code: {system: careflow, code: breathing-exercise-check}
    timing: {start: P0D, due_within: P1M}

  - id: pneumococcal-vaccination
"""


def new_version(tmp_path: Path) -> Path:
    text = (ROOT / "care_programs" / "copd.yaml").read_text(encoding="utf-8")
    start = text.index("  - id: tdap-vaccination")
    end = text.index("  - id: pneumococcal-vaccination")
    text = text[:start] + NEW_ACTIVITY.lstrip("\n") + text[end + len("  - id: pneumococcal-vaccination\n"):]
    text = re.sub(r"(?m)^version: .*$", "version: 9.0.0", text, count=1)
    path = tmp_path / "copd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def test_publishing_a_new_version_migrates_open_plans(repo: Any, copd: Any, tmp_path: Path) -> None:
    programs = {copd.id: copd}
    add_team(repo)
    add_patient(repo, PID, conditions=[COPD], onset=START - timedelta(days=400))
    enrolment.enrol(repo, programs, [PID], START)
    sweep(repo, programs, _morning(START + timedelta(days=3)))
    cid = ids.careplan_id(PID, copd.id)
    tdap = repo.read("Task", ids.task_id(PID, copd.id, "tdap-vaccination", 1)).resource
    assert tdap["status"] == "requested"
    done_id = ids.task_id(PID, copd.id, "pneumococcal-vaccination", 1)
    edit_task(repo, done_id, status="completed")
    done_before = repo.read("Task", done_id)
    v2 = load_program(new_version(tmp_path))

    # shown first: nothing written
    before = {t["id"]: t["meta"]["versionId"] for t in all_of(repo, "Task")}
    shown, _ = publish(repo, v2, programs, PUBLISHED)
    (plan_change,) = shown
    assert plan_change.careplan_id == cid and plan_change.new_canonical == v2.canonical
    assert [a for _, a in plan_change.cancelled] == ["tdap-vaccination"]
    assert "breathing-exercise-check" in [a for _, a in plan_change.opened]
    assert {t["id"]: t["meta"]["versionId"] for t in all_of(repo, "Task")} == before
    assert repo.read("CarePlan", cid).resource["instantiatesCanonical"] == [copd.canonical]

    # applied
    _, counts = publish(repo, v2, programs, PUBLISHED, apply=True)
    assert counts["plans-revised"] == 1
    plan = repo.read("CarePlan", cid).resource
    assert plan["instantiatesCanonical"] == [v2.canonical]
    cancelled = repo.read("Task", tdap["id"]).resource
    assert cancelled["status"] == "cancelled" and "9.0.0" in cancelled["statusReason"]["text"]
    new = repo.read("Task", ids.task_id(PID, copd.id, "breathing-exercise-check", 1)).resource
    window = new["restriction"]["period"]
    assert window["start"] == PUBLISHED.isoformat() and window["end"] > PUBLISHED.isoformat()  # not overdue
    assert f"Task/{new['id']}" in [a["reference"]["reference"] for a in plan["activity"]]
    assert repo.read("Task", done_id).version == done_before.version  # completed work untouched
    opened_now = [t for t in all_of(repo, "Task") if t["id"] not in before]
    assert all(t["restriction"]["period"]["end"] >= PUBLISHED.isoformat() for t in opened_now)

    # publishing again changes nothing, and the sweep goes on with the new version
    again, _ = publish(repo, v2, {v2.id: v2}, PUBLISHED, apply=True)
    assert again == []
    sweep(repo, {v2.id: v2}, _morning(PUBLISHED + timedelta(days=1)))
    breathing = [t for t in all_of(repo, "Task") if "breathing-exercise-check" in t.get("instantiatesCanonical", "")]
    assert [t["id"] for t in breathing] == [new["id"]]


def test_the_publish_command_shows_then_applies(tmp_path: Path, copd: Any, capsys: Any) -> None:
    from careflow.cli import main
    from careflow.store.database import open_repository

    url = f"sqlite:///{tmp_path / 'store.db'}"
    repo = open_repository(url)
    try:
        add_team(repo)
        add_patient(repo, PID, conditions=[COPD], onset=START - timedelta(days=400))
        enrolment.enrol(repo, {copd.id: copd}, [PID], START)
    finally:
        repo.close()
    path = new_version(tmp_path)
    assert main(["programs", "publish", str(path), "--db", url, "--today", PUBLISHED.isoformat()]) == 0
    shown = capsys.readouterr().out
    assert f"{copd.version} -> 9.0.0; cancel 1 open task(s) (tdap-vaccination)" in shown
    assert "1 plan(s) to revise (run again with --apply to write)" in shown
    assert main(["programs", "publish", str(path), "--db", url, "--today", PUBLISHED.isoformat(), "--apply"]) == 0
    assert "copd 9.0.0: 1 plan(s) revised" in capsys.readouterr().out
    assert main(["programs", "publish", str(path), "--db", url, "--today", "31/01"]) != 0
    assert "is not a date" in capsys.readouterr().err
