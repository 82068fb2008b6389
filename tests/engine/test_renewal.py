"""Renewal at the end of the plan period: reviewed once, renewed while the patient still qualifies.

A COPD patient is followed for two years with the team doing its work a few days after it opens.
A month before the plan's end a review Task goes to the GP; completing it renews the same CarePlan
for another year (its earlier period stays in its history) and recurring work goes on. A
patient who no longer qualifies at the review is not renewed: the plan completes once its work is done.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import COPD, add_patient, add_team, all_of, edit_task

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.engine.sweep import sweep
from careflow.naming import EXT_TRIGGER
from careflow.planning import ids

START = date(2026, 1, 12)
PID = "pat-renew"
FINAL = {"completed", "cancelled", "rejected", "failed", "entered-in-error"}


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _trigger(task: dict[str, Any]) -> str | None:
    return next((e["valueString"] for e in task.get("extension", ()) if e["url"] == EXT_TRIGGER), None)


def _follow(repo: Any, programs: dict[str, Any], until: date, *, before_review: Any = None) -> list[dict[str, Any]]:
    """Sweep every fourth day and process events; the team completes open work four days after it
    opens. Returns the review Tasks seen."""
    reviews: dict[str, dict[str, Any]] = {}
    day = START
    while day <= until:
        sweep(repo, programs, _morning(day))
        for t in all_of(repo, "Task"):
            if t["status"] in FINAL:
                continue
            if _trigger(t) == "plan-review":
                reviews[t["id"]] = t
                if before_review is not None:
                    before_review()
            if day >= date.fromisoformat(t["restriction"]["period"]["start"]) + timedelta(days=4):
                edit_task(repo, t["id"], status="completed", lastModified=day.isoformat())
        events.process_events(repo, programs, _morning(day) + timedelta(hours=3))
        day += timedelta(days=4)
    return list(reviews.values())


def test_the_plan_is_reviewed_and_renewed_for_another_period(repo: Any, copd: Any) -> None:
    programs = {copd.id: copd}
    add_team(repo)
    add_patient(repo, PID, conditions=[COPD], onset=START - timedelta(days=400))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)
    cid = ids.careplan_id(PID, copd.id)
    first_end = date.fromisoformat(repo.read("CarePlan", cid).resource["period"]["end"])
    reviews = _follow(repo, programs, first_end + timedelta(days=90))
    plan = repo.read("CarePlan", cid).resource
    assert plan["status"] == "active"
    second_end = date.fromisoformat(plan["period"]["end"])
    assert second_end.year == first_end.year + 1 and plan["period"]["start"] == START.isoformat()
    assert "renewed" in plan["note"][-1]["text"]
    (review,) = [r for r in reviews if r["restriction"]["period"]["end"] == first_end.isoformat()]
    assert review["owner"]["reference"].startswith("PractitionerRole/role-gp-")
    assert review["focus"] == {"reference": f"CarePlan/{cid}"}
    opened = date.fromisoformat(review["restriction"]["period"]["start"])
    assert first_end - timedelta(days=35) <= opened <= first_end - timedelta(days=27)  # a month ahead
    # the earlier period is kept in the plan's history
    history = [s.resource for s in repo.history("CarePlan", cid, count=500)[1] if s.resource]
    assert first_end.isoformat() in {h["period"]["end"] for h in history}
    # the renewed plan goes on: recurring work opens after the first period's end, none of it overdue
    later = [t for t in all_of(repo, "Task") if t["restriction"]["period"]["start"] > first_end.isoformat()
             and _trigger(t) is None]
    assert later, "recurring activities continue in the renewed period"
    # one review per period, however many sweeps ran
    assert len([t for t in all_of(repo, "Task") if _trigger(t) == "plan-review"]) == 1


def test_a_patient_who_no_longer_qualifies_is_not_renewed(repo: Any, copd: Any) -> None:
    programs = {copd.id: copd}
    add_team(repo)
    add_patient(repo, PID, conditions=[COPD], onset=START - timedelta(days=400))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)
    cid = ids.careplan_id(PID, copd.id)
    end = date.fromisoformat(repo.read("CarePlan", cid).resource["period"]["end"])

    def resolve() -> None:  # the diagnosis is revised before the review is done
        cond = next(s for s in [repo.read("Condition", f"{PID}-cond-0")])
        if cond.resource["clinicalStatus"]["coding"][0]["code"] == "resolved":
            return
        body = {**cond.resource, "clinicalStatus": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}}
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(body, if_match=cond.version)

    _follow(repo, programs, end + timedelta(days=60), before_review=resolve)
    plan = repo.read("CarePlan", cid).resource
    assert plan["period"]["end"] == end.isoformat()
    assert plan["status"] == "completed"
