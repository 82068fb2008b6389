"""Transitional care: going home after a hospital stay raises the follow-up the programmes ask for.

A heart-failure patient is discharged: the Encounter reaching ``finished`` (inpatient) gives one
urgent visit for the GP due within 7 days and a home check, flags the plan, and nothing twice when
the event is handled again or the stay is edited later. An outpatient visit raises nothing, and a
discharge reported late still gets its full week.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import HEART_FAILURE, add_patient, add_team, all_of

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.naming import EXT_ATTENTION, EXT_TRIGGER
from careflow.planning import ids

START = date(2026, 2, 2)
PID = "pat-tc"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _encounter(klass: str, status: str, end: date) -> dict[str, Any]:
    return {"resourceType": "Encounter", "status": status, "class": {"system": ACT, "code": klass},
            "subject": {"reference": f"Patient/{PID}"},
            "period": {"start": (end - timedelta(days=6)).isoformat(), "end": end.isoformat()}}


def _discharge_tasks(repo: Any) -> list[dict[str, Any]]:
    """The follow-up visits raised by the discharge rule (not the home checks it starts)."""
    return [t for t in all_of(repo, "Task")
            if any(e["url"] == EXT_TRIGGER and e["valueString"] == "early-follow-up-after-discharge"
                   for e in t.get("extension", ()))
            and t["reasonCode"]["coding"][0]["code"] == "discharge"]


def test_a_discharge_raises_the_early_follow_up_once(repo: Any, heart_failure: Any) -> None:
    if not any(t.when.discharged for t in heart_failure.triggers):
        import pytest

        pytest.skip("needs the real heart-failure programme")
    programs = {heart_failure.id: heart_failure}
    add_team(repo)
    add_patient(repo, PID, conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)

    # an outpatient visit raises nothing
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create(_encounter("AMB", "finished", START + timedelta(days=10)))
    events.process_events(repo, programs, _morning(START + timedelta(days=10)))
    assert _discharge_tasks(repo) == []

    # a hospital stay: in progress first, then finished (the discharge), reported three days late
    left = START + timedelta(days=40)
    with repo.unit_of_work(SYSTEM) as uow:
        stay, _ = uow.create({**_encounter("IMP", "in-progress", left), "period": {"start": (left - timedelta(days=6)).isoformat()}})
    events.process_events(repo, programs, _morning(left - timedelta(days=5)))
    assert _discharge_tasks(repo) == []
    with repo.unit_of_work(SYSTEM) as uow:
        stay, _ = uow.update({**(stay.resource or {}), "status": "finished", "period": _encounter("IMP", "finished", left)["period"]},
                             if_match=stay.version)
    learnt = left + timedelta(days=3)
    done = events.process_events(repo, programs, _morning(learnt))
    assert done["discharges"] == 1
    (visit,) = _discharge_tasks(repo)
    assert visit["owner"]["reference"].startswith("PractitionerRole/role-gp-") and visit["priority"] == "urgent"
    assert visit["focus"] == {"reference": f"Encounter/{stay.id}"}
    assert visit["restriction"]["period"] == {"start": learnt.isoformat(), "end": (learnt + timedelta(days=7)).isoformat()}
    home = [t for t in all_of(repo, "Task") if t.get("focus") == {"reference": f"Encounter/{stay.id}"} and t["id"] != visit["id"]]
    assert len(home) == 1 and "home-monitoring-visit" in home[0]["instantiatesCanonical"]
    plan = repo.read("CarePlan", ids.careplan_id(PID, heart_failure.id)).resource
    assert {"url": EXT_ATTENTION, "valueBoolean": True} in plan["extension"]
    assert f"Task/{visit['id']}" in [a["reference"]["reference"] for a in plan["activity"]]

    # an edit of the finished stay (a corrected diagnosis) raises nothing more
    before = len(all_of(repo, "Task"))
    current = repo.read("Encounter", stay.id)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), "reasonCode": [{"text": "decompensated heart failure"}]},
                   if_match=current.version)
    events.process_events(repo, programs, _morning(learnt + timedelta(days=1)))
    assert len(all_of(repo, "Task")) == before
