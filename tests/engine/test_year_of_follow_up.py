"""A heart-failure patient followed for a year, one sweep a day, people doing (or missing) their work.

The scenario a neighbourhood team lives: the plan starts, the GP completes the care-plan conversation,
monthly home visits follow, one visit is missed and escalates to the care coach exactly once, a
2.6 kg weight gain in two days raises one urgent task and flags the plan, completed reviews start the
blood tests that follow a dose change, and at the end re-running enrolment and the sweep writes
nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import HEART_FAILURE, HOOD, add_patient, add_team, add_weight, all_of, edit_task

from careflow.engine import enrolment, events
from careflow.engine.counts import Counts
from careflow.engine.sweep import sweep
from careflow.naming import EXT_TRIGGER, TASK_BUSINESS_STATUS, TASK_REASON
from careflow.planning import ids

START = date(2026, 1, 12)
PID = "pat-hf"
CONVERSATION_DONE = START + timedelta(days=2)
MISSED_VISIT = 3  # the home visit the nurse does not get to in time
WEIGHT_DAY = START + timedelta(days=100)


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _reason(task: dict[str, Any]) -> str | None:
    for c in (task.get("reasonCode") or {}).get("coding", ()):
        if c["system"] == TASK_REASON:
            return c["code"]
    return None


def _activity(task: dict[str, Any]) -> str:
    return str(task.get("instantiatesCanonical", "")).split("|")[0].rsplit("/", 1)[-1]


def _occurrence(task: dict[str, Any]) -> int | None:
    return next((e.get("valuePositiveInt") for e in task.get("extension", ()) if "valuePositiveInt" in e), None)


def _triggered(task: dict[str, Any]) -> bool:
    return any(e.get("url") == EXT_TRIGGER for e in task.get("extension", ()))


def _window(task: dict[str, Any]) -> tuple[date, date]:
    p = task["restriction"]["period"]
    return date.fromisoformat(p["start"]), date.fromisoformat(p["end"])


class Team:
    """What the people do each day: finish work on the day it opens, except what the scenario says."""

    def __init__(self, repo: Any, program_id: str) -> None:
        self.repo, self.program_id = repo, program_id
        self.visit_late_until: date | None = None
        self.reviews: list[str] = []

    def work(self, day: date) -> None:
        for task in all_of(self.repo, "Task"):
            if task["status"] != "requested":
                continue
            opens, due = _window(task)
            if opens > day:
                continue
            reason = _reason(task)
            if reason == "review":  # the GP decides the year was enough: the plan is not renewed
                self.reviews.append(task["id"])
                edit_task(self.repo, task["id"], status="rejected", lastModified=day.isoformat())
                continue
            if reason in ("escalation", "observation"):
                created = date.fromisoformat(task["authoredOn"])
                if day < created + timedelta(days=1):
                    continue
            elif _activity(task).endswith("home-monitoring-visit") and _occurrence(task) == MISSED_VISIT \
                    and not _triggered(task):
                if self.visit_late_until is None:
                    self.visit_late_until = due + timedelta(days=10)
                if day < self.visit_late_until:
                    continue
            elif task["id"] == ids.task_id(PID, self.program_id, "care-plan-conversation", 1) and day < CONVERSATION_DONE:
                continue
            edit_task(self.repo, task["id"], status="completed", executionPeriod={"end": day.isoformat()},
                      lastModified=day.isoformat())


def test_a_year_of_heart_failure_follow_up(repo: Any, heart_failure: Any) -> None:
    if heart_failure.id != "heart-failure":
        import pytest

        pytest.skip("needs the real heart-failure programme")
    programs = {heart_failure.id: heart_failure}
    roles = add_team(repo)
    add_patient(repo, PID, conditions=[HEART_FAILURE], onset=START - timedelta(days=400), gp_role=roles["gp"][1])
    events.install(repo)

    assert enrolment.find_candidates(repo, programs) == [PID]
    enrolled = enrolment.enrol(repo, programs, [PID], START)
    assert enrolled["enrolled"] == 1 and enrolled.by_neighbourhood[HOOD]["enrolled"] == 1

    team = Team(repo, heart_failure.id)
    careplan_id = ids.careplan_id(PID, heart_failure.id)
    totals = Counts()
    flagged_on: list[date] = []
    unflagged_on: list[date] = []
    weight_obs = ""
    end = START + timedelta(days=366)
    day = START
    while day <= end:
        now = _morning(day)
        totals.merge(sweep(repo, programs, now))
        if day == WEIGHT_DAY:
            add_weight(repo, PID, now - timedelta(days=2), 80.0)
            weight_obs = add_weight(repo, PID, now - timedelta(hours=1), 82.6)
        totals.merge(events.process_events(repo, programs, now))
        team.work(day)
        totals.merge(events.process_events(repo, programs, now))
        plan_flag = _attention(repo.read("CarePlan", careplan_id).resource or {})
        (flagged_on if plan_flag else unflagged_on).append(day)
        day += timedelta(days=1)

    tasks = all_of(repo, "Task")
    visits = sorted((t for t in tasks if _activity(t).endswith("home-monitoring-visit") and not _triggered(t)),
                    key=lambda t: _occurrence(t) or 0)

    # monthly home visits, anchored on the day the care-plan conversation was completed
    assert [_occurrence(t) for t in visits] == list(range(1, len(visits) + 1))
    assert len(visits) == 12
    from careflow.programs.durations import parse_duration

    month = parse_duration("P1M")
    assert [_window(t)[0] for t in visits] == [month.after(CONVERSATION_DONE, n) for n in range(len(visits))]
    assert all(_window(t)[1] == _window(t)[0] + timedelta(days=7) for t in visits)

    # the missed visit: overdue, then escalated to the care coach exactly once, a week after its due day
    missed = visits[MISSED_VISIT - 1]
    escalations = [t for t in tasks if _reason(t) == "escalation"]
    assert len(escalations) == 1 and len(totals.escalations) == 1
    (esc,) = escalations
    assert esc["focus"] == {"reference": f"Task/{missed['id']}"}
    assert date.fromisoformat(esc["authoredOn"]) == _window(missed)[1] + timedelta(days=7)
    assert esc["priority"] == "urgent"
    assert esc["owner"]["reference"] == f"PractitionerRole/{roles['care-coach'][0]}" or \
        esc["owner"]["reference"] == f"PractitionerRole/{roles['care-coach'][1]}"
    assert totals.escalations[0].task_id == esc["id"] and totals.escalations[0].role == "care-coach"
    assert totals.escalations[0].neighbourhood == HOOD
    assert _business_status(missed) == "escalated"
    assert missed["status"] == "completed"

    # the weight gain: one urgent task on the Observation, and the plan flagged until it is handled
    raised = [t for t in tasks if _reason(t) == "observation"]
    assert len(raised) == 1
    (urgent,) = raised
    assert urgent["focus"] == {"reference": f"Observation/{weight_obs}"} == urgent["reasonReference"]
    assert urgent["priority"] == "urgent"
    assert urgent["id"] == ids.triggered_task_id(PID, heart_failure.id, "weight-gain", weight_obs)
    assert date.fromisoformat(urgent["authoredOn"]) == WEIGHT_DAY
    # flagged at the end of the weight day; the flag clears the day the nurse completes the task
    assert urgent["executionPeriod"]["end"] == (WEIGHT_DAY + timedelta(days=1)).isoformat()
    assert flagged_on == [WEIGHT_DAY]

    # completing a follow-up review starts the blood test after a dose change, on the completion day
    reviews = sorted((t for t in tasks if _activity(t).endswith("follow-up-review") and not _triggered(t)),
                     key=lambda t: _occurrence(t) or 0)
    assert reviews and _window(reviews[0])[0] == month.after(CONVERSATION_DONE)
    started = [t for t in tasks if {"url": EXT_TRIGGER, "valueString": "bloods-after-dose-change"} in t.get("extension", [])]
    assert len(started) == len([r for r in reviews if r["status"] == "completed"])
    for s in started:
        cause = next(r for r in reviews if s["focus"]["reference"] == f"Task/{r['id']}")
        assert _window(s)[0] == date.fromisoformat(cause["executionPeriod"]["end"])

    # a month before the end the GP was asked to review the plan, once, and chose not to renew it
    assert len(team.reviews) == 1
    # the plan ran its period, everything was done: completed, never revoked
    plan = repo.read("CarePlan", careplan_id).resource or {}
    assert plan["status"] == "completed"
    referenced = {a["reference"]["reference"] for a in plan["activity"]}
    assert {f"Task/{t['id']}" for t in tasks} <= referenced

    # re-running enrolment and the sweep changes nothing
    before, _ = repo.history(count=1)
    again = enrolment.enrol(repo, programs, [PID], START)
    assert again["enrolled"] == 0 and again["already-enrolled"] == 1
    swept = sweep(repo, programs, _morning(end))
    assert not {k for k in swept.total if k not in ("plans",)}
    after, _ = repo.history(count=1)
    assert after == before


def _attention(plan: dict[str, Any]) -> bool:
    from careflow.triggers.plan_status import attention

    return attention(plan)


def _business_status(task: dict[str, Any]) -> str | None:
    for c in (task.get("businessStatus") or {}).get("coding", ()):
        if c["system"] == TASK_BUSINESS_STATUS:
            return c["code"]
    return None
