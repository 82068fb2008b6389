"""A patient who has died, was merged or is inactive is never enrolled, and a death ends the plan:
open Tasks cancelled with the reason, the plan revoked, the team told once."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from engine_world import HEART_FAILURE, add_patient, add_team, all_of, edit_task

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.planning import ids
from careflow.triggers.task_facts import FINAL_STATUSES

START = date(2026, 3, 2)


def _at(day: date) -> datetime:
    return datetime.combine(day, time(7, 0), tzinfo=timezone.utc)


def _set_patient(repo: Any, pid: str, **changes: Any) -> None:
    current = repo.read("Patient", pid)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), **changes}, if_match=current.version)


@pytest.mark.parametrize("changes, count", [
    ({"deceasedDateTime": "2026-02-11"}, "deceased"),
    ({"deceasedBoolean": True}, "deceased"),
    ({"active": False}, "inactive-record"),
    ({"link": [{"other": {"reference": "Patient/p9"}, "type": "replaced-by"}]}, "inactive-record"),
])
def test_a_record_that_is_not_a_living_current_patient_is_never_enrolled(repo: Any, heart_failure: Any,
                                                                          changes: dict, count: str) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    _set_patient(repo, "p1", **changes)
    counts = enrolment.enrol(repo, {heart_failure.id: heart_failure}, ["p1"], START).as_dict()
    assert counts["total"].get(count) == 1 and not counts["total"].get("enrolled")
    assert all_of(repo, "CarePlan") == [] and all_of(repo, "Task") == []


def test_deceased_false_is_a_living_patient(repo: Any, heart_failure: Any) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    _set_patient(repo, "p1", deceasedBoolean=False)
    counts = enrolment.enrol(repo, {heart_failure.id: heart_failure}, ["p1"], START).as_dict()
    assert counts["total"].get("enrolled") == 1


def test_a_death_ends_the_plan_cancels_open_tasks_and_tells_the_team_once(repo: Any, heart_failure: Any) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    programs = {heart_failure.id: heart_failure}
    enrolment.enrol(repo, programs, ["p1"], START)
    events.install(repo)
    done_id = ids.task_id("p1", heart_failure.id, "care-plan-conversation", 1)
    edit_task(repo, done_id, status="completed", executionPeriod={"end": START.isoformat()})
    events.process_events(repo, programs, _at(START))  # the completion's own follow-up
    open_before = [t["id"] for t in all_of(repo, "Task") if t["status"] not in FINAL_STATUSES]
    assert open_before

    _set_patient(repo, "p1", deceasedDateTime="2026-04-01")
    counts = events.process_events(repo, programs, _at(START + timedelta(days=31))).as_dict()["total"]
    assert counts.get("care-ended") == 1 and counts.get("tasks-cancelled") == len(open_before)

    tasks = {t["id"]: t for t in all_of(repo, "Task")}
    for tid in open_before:
        assert tasks[tid]["status"] == "cancelled"
        assert "died on 2026-04-01" in tasks[tid]["statusReason"]["text"]
    assert tasks[done_id]["status"] == "completed"  # what was done stays done
    plan = repo.read("CarePlan", ids.careplan_id("p1", heart_failure.id)).resource
    assert plan["status"] == "revoked" and "died" in plan["note"][-1]["text"]
    told = all_of(repo, "Communication")
    assert len(told) == 1 and told[0]["recipient"][0] == {"reference": f"CareTeam/{ids.careteam_id('p1')}"}
    assert len(told[0]["recipient"]) > 1  # and each member of the team

    # a later edit of the deceased record, or a replayed event, changes nothing more
    _set_patient(repo, "p1", deceasedDateTime="2026-04-01", gender="female")
    again = events.process_events(repo, programs, _at(START + timedelta(days=32))).as_dict()["total"]
    assert not again.get("care-ended")
    assert len(all_of(repo, "Communication")) == 1
    # nor is the patient enrolled again
    later = enrolment.enrol(repo, programs, ["p1"], START + timedelta(days=40)).as_dict()["total"]
    assert later.get("deceased") == 1


def test_end_of_care_is_pure_and_replay_safe() -> None:
    from careflow.triggers.end_of_care import end_of_care_actions

    patient = {"resourceType": "Patient", "id": "p1", "deceasedBoolean": True}
    plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "period": {"start": "2026-01-01",
                                                                                  "end": "2027-01-01"}}
    task = {"resourceType": "Task", "id": "t", "status": "in-progress", "meta": {"versionId": "3"}}
    actions = end_of_care_actions(patient, [plan], [task], None, date(2026, 5, 1))
    assert [type(a).__name__ for a in actions] == ["UpdateTask", "UpdatePlan", "CreateResource"]
    assert actions[0].if_match_version == 3 and actions[1].resource["period"]["end"] == "2026-05-01"
    assert plan["status"] == "active"  # inputs are not mutated
    ended = [a.resource for a in actions if a.resource["resourceType"] != "Communication"]
    assert end_of_care_actions(patient, [ended[1]], [ended[0]], None, date(2026, 5, 2)) == []
    assert end_of_care_actions({"resourceType": "Patient", "id": "p1"}, [plan], [task], None, date(2026, 5, 1)) == []
