"""Follow-up work goes to whoever the CareTeam names now, not to whoever enrolment first picked."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import HEART_FAILURE, add_patient, add_team, all_of, edit_task

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment
from careflow.engine.sweep import sweep
from careflow.planning import ids
from careflow.planning.planner import role_concept

START = date(2026, 5, 4)


def test_a_nurse_swapped_in_the_care_team_gets_the_next_visits(repo: Any, heart_failure: Any) -> None:
    roles = add_team(repo)
    add_patient(repo, "p1", conditions=[HEART_FAILURE], onset=START - timedelta(days=500))
    programs = {heart_failure.id: heart_failure}
    enrolment.enrol(repo, programs, ["p1"], START)
    current = repo.read("CareTeam", ids.careteam_id("p1"))
    nurse = role_concept(heart_failure, "home-nurse")["coding"]
    team = current.resource
    (slot,) = [p for p in team["participant"] if p["role"][0]["coding"] == nurse]
    other = next(f"PractitionerRole/{r}" for r in roles["home-nurse"] if f"PractitionerRole/{r}" != slot["member"]["reference"])
    slot["member"] = {"reference": other}
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(team, if_match=current.version)
    conversation = ids.task_id("p1", heart_failure.id, "care-plan-conversation", 1)
    edit_task(repo, conversation, status="completed", executionPeriod={"end": START.isoformat()})
    counts = sweep(repo, programs, datetime.combine(START + timedelta(days=1), time(6), tzinfo=timezone.utc))
    assert counts["tasks-opened"] >= 1
    visits = [t for t in all_of(repo, "Task") if t["performerType"][0]["coding"] == nurse
              and t["authoredOn"] == (START + timedelta(days=1)).isoformat()]
    assert visits and all(t["owner"]["reference"] == other for t in visits)
