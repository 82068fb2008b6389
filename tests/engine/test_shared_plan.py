"""One shared care plan for a patient in three programmes, followed for fourteen months.

COPD, heart failure and type 2 diabetes each ask for the flu vaccination, the care-planning
conversation, case management and more. The team must see one plan with one of each: one flu
vaccination in the plan's season, one conversation, every shared Task serving each programme that needs it, and
a late Task escalated once however many programmes' rules match it. When the patient leaves the
programme that led an activity, what the others need carries on without a second copy.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from engine_world import COPD, HEART_FAILURE, SNOMED, add_patient, add_team, all_of, edit_task

from careflow.engine import enrolment
from careflow.engine.sweep import sweep
from careflow.naming import EXT_SHARED_ACTIVITY, TASK_REASON
from careflow.planning import ids
from careflow.programs.loader import load_program

DIABETES = (SNOMED, "44054006")
START = date(2026, 9, 14)
PID = "pat-multi"
FINAL = {"completed", "cancelled", "rejected", "failed", "entered-in-error"}


@pytest.fixture(scope="module")
def three() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2] / "care_programs"
    programs = [load_program(root / f"{name}.yaml") for name in ("copd", "heart-failure", "diabetes-type-2")]
    return {p.id: p for p in programs}


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _key(task: dict[str, Any]) -> str | None:
    return next((e["valueId"] for e in task.get("extension", ()) if e["url"] == EXT_SHARED_ACTIVITY), None)


def _reason(task: dict[str, Any]) -> str | None:
    return next((c["code"] for c in (task.get("reasonCode") or {}).get("coding", ()) if c["system"] == TASK_REASON), None)


def _enrolled(repo: Any, three: dict[str, Any]) -> None:
    add_team(repo)
    add_patient(repo, PID, conditions=[COPD, HEART_FAILURE, DIABETES], onset=START - timedelta(days=400))
    counts = enrolment.enrol(repo, three, [PID], START)
    assert counts["enrolled"] == 1


def _parts(repo: Any) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in all_of(repo, "CarePlan") if "instantiatesCanonical" in p}


def test_three_programmes_make_one_shared_plan_with_one_task_per_shared_activity(repo: Any, three: dict[str, Any]) -> None:
    _enrolled(repo, three)
    plans = all_of(repo, "CarePlan")
    (whole,) = [p for p in plans if "instantiatesCanonical" not in p]
    assert whole["id"] == ids.shared_careplan_id(PID) and whole["status"] == "active"
    parts = _parts(repo)
    assert len(parts) == 3 and all(p["partOf"] == [{"reference": f"CarePlan/{whole['id']}"}] for p in parts.values())
    # the whole carries every goal of its parts, and one care team for all
    assert sorted(g["reference"] for g in whole["goal"]) == sorted(g["reference"] for p in parts.values() for g in p["goal"])
    assert {c["reference"] for p in plans for c in p["careTeam"]} == {f"CareTeam/{ids.careteam_id(PID)}"}

    tasks = all_of(repo, "Task")
    keys = Counter(k for t in tasks if (k := _key(t)))
    assert keys and all(n == 1 for n in keys.values()), keys  # one Task per shared activity, not three
    conversation = next(t for t in tasks if _key(t) == "care-plan-conversation")
    # it serves every programme that asks for it, and each part lists it among its activities
    served = {r["reference"] for r in conversation["basedOn"]}
    assert served == {f"CarePlan/{c}" for c in parts}
    for part in parts.values():
        assert f"Task/{conversation['id']}" in [a["reference"]["reference"] for a in part["activity"]]
    # at the tightest timing among the programmes that share it
    due = {date.fromisoformat(conversation["restriction"]["period"]["end"])}
    tightest = min(three[p].shared_activity("care-plan-conversation").timing.due_within for p in three)
    from careflow.programs.durations import parse_duration

    assert due == {parse_duration(tightest).after(START)}


def test_a_year_of_sweeps_gives_one_flu_vaccination_a_season_and_escalates_a_late_task_once(
    repo: Any, three: dict[str, Any]
) -> None:
    _enrolled(repo, three)
    day = START
    done_late: set[str] = set()
    while day <= START + timedelta(days=430):
        sweep(repo, three, _morning(day))
        for t in all_of(repo, "Task"):
            if t["status"] in FINAL or _reason(t) == "escalation":
                continue
            opens = date.fromisoformat(t["restriction"]["period"]["start"])
            # the team does the work a week after it opens, except the flu jab of the first season,
            # which the GP gets to a month after it was due (so it is late past every rule's delay)
            late = _key(t) == "influenza-vaccination" and opens.year == 2026
            if late and t["id"] not in done_late and day >= date.fromisoformat(t["restriction"]["period"]["end"]) + timedelta(days=75):
                done_late.add(t["id"])
                edit_task(repo, t["id"], status="completed")
            elif not late and day >= opens + timedelta(days=7):
                edit_task(repo, t["id"], status="completed")
        day += timedelta(days=5)

    tasks = all_of(repo, "Task")
    flu = [t for t in tasks if _key(t) == "influenza-vaccination"]
    seasons = Counter(t["restriction"]["period"]["start"][:4] for t in flu)
    assert seasons == {"2026": 1}, seasons  # the plan year holds one season (renewal starts the next)
    for key, n in Counter(k for t in tasks if (k := _key(t)) and t.get("extension")).items():
        per_window = Counter((key, t["restriction"]["period"]["start"]) for t in tasks if _key(t) == key)
        assert all(c == 1 for c in per_window.values()), (key, n, per_window)
    escalations = Counter(t["focus"]["reference"] for t in tasks if _reason(t) == "escalation")
    assert escalations and all(n == 1 for n in escalations.values()), escalations
    (late_flu,) = [t for t in flu if t["id"] in done_late]
    assert escalations[f"Task/{late_flu['id']}"] == 1  # COPD, heart failure and diabetes all have rules for it

    # re-running the last sweep changes nothing
    before = {t["id"]: t["meta"]["versionId"] for t in all_of(repo, "Task")}
    sweep(repo, three, _morning(day - timedelta(days=5)))
    assert {t["id"]: t["meta"]["versionId"] for t in all_of(repo, "Task")} == before


def test_leaving_the_leading_programme_keeps_what_the_others_need_without_a_second_copy(
    repo: Any, three: dict[str, Any]
) -> None:
    _enrolled(repo, three)
    sweep(repo, three, _morning(START))
    tasks = all_of(repo, "Task")
    conversation = next(t for t in tasks if _key(t) == "care-plan-conversation")
    leader_part = conversation["basedOn"][0]["reference"].split("/")[1]
    # the patient leaves the programme whose activity the conversation was opened from
    current = repo.read("CarePlan", leader_part)
    with repo.unit_of_work(__import__("careflow.access.principal", fromlist=["SYSTEM"]).SYSTEM) as uow:
        uow.update({**(current.resource or {}), "status": "revoked"}, if_match=current.version)
    for n in range(1, 40):
        sweep(repo, three, _morning(START + timedelta(days=n * 3)))
    after = all_of(repo, "Task")
    conversations = [t for t in after if _key(t) == "care-plan-conversation"]
    assert [t["id"] for t in conversations] == [conversation["id"]]  # the remaining programmes keep this one
    kept = conversations[0]
    assert kept["status"] not in FINAL  # nobody cancelled it: the other programmes still need it
    # and it is still followed up: late, it is marked and escalated once, by one of the remaining programmes
    assert any(c["code"] in ("overdue", "escalated") for c in (kept.get("businessStatus") or {}).get("coding", ()))
    escalations = [t for t in after if _reason(t) == "escalation" and t["focus"]["reference"] == f"Task/{kept['id']}"]
    assert len(escalations) <= 1
    assert not [t for t in escalations if t["basedOn"][0]["reference"] == f"CarePlan/{leader_part}"]
