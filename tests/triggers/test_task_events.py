"""Completion starts what waited on it; a refusal hands the work to the care coach."""

from __future__ import annotations

import copy
from datetime import date, timedelta

from trigger_state import START, PlanState, occurrence, patient_context, window

from careflow.naming import EXT_TRIGGER
from careflow.planning import ids
from careflow.triggers.actions import CreateTask, UpdatePlan
from careflow.triggers.task_events import task_event_actions


def _event(state: PlanState, task: dict, day: date) -> list:
    actions = task_event_actions(state.program, state.plan, state.task_list, task, state.ctx, day)
    state.apply(actions, day)
    return actions


class TestCompletionStartsDependantsAtOnce:
    def test_dependants_open_on_the_completion_day_without_waiting_for_the_sweep(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        done = state.complete(start_plan["id"], date(2026, 2, 4))
        actions = _event(state, done, date(2026, 2, 4))
        (visit,) = state.of("home-visit")
        assert window(visit) == ("2026-02-04", "2026-02-11")
        assert any(isinstance(a, UpdatePlan) and "activity" in a.changes for a in actions)
        assert state.of("review") == []  # its window opens three months after the completion

    def test_completed_trigger_starts_its_activities_once(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        state.complete(start_plan["id"], START)
        state.run(START, date(2026, 5, 1))
        (review,) = state.of("review")
        done = state.complete(review["id"], date(2026, 5, 3))
        _event(state, done, date(2026, 5, 3))
        started = [t for t in state.of("bloods") if {"url": EXT_TRIGGER, "valueString": "bloods-after-review"} in t["extension"]]
        assert len(started) == 1
        assert started[0]["id"] == ids.triggered_task_id("pat-1", program.id, "bloods-after-review:bloods", review["id"])
        assert window(started[0])[0] == "2026-05-03"
        assert started[0]["focus"] == {"reference": f"Task/{review['id']}"}
        assert occurrence(started[0]) is None  # an extra task: the scheduled bloods keep their own count
        assert _event(state, done, date(2026, 5, 3)) == []  # the event replayed: nothing new

    def test_event_rules_never_mutate_their_inputs(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        done = state.complete(start_plan["id"], START)
        before = copy.deepcopy((state.plan, state.task_list, done))
        task_event_actions(program, state.plan, state.task_list, done, state.ctx, START)
        assert (state.plan, state.task_list, done) == before


class TestRejectedTaskIsReassignedNotLost:
    def test_a_new_task_for_the_care_coach_copies_the_rejected_one(self, program) -> None:
        state = PlanState(program, patient_context())
        check = state.of("weight-check")[0]
        rejected = state.edit(check["id"], status="rejected", statusReason={"text": "patient in hospital"})
        actions = _event(state, rejected, START + timedelta(days=2))
        (copy_,) = [a for a in actions if isinstance(a, CreateTask)]
        assert copy_.reason == "reassignment" and copy_.role == "care-coach"
        new = copy_.resource
        assert new["id"] == ids.triggered_task_id("pat-1", program.id, "declined", check["id"])
        assert new["status"] == "requested" and "statusReason" not in new
        assert new["owner"]["reference"] == "PractitionerRole/coach-1"
        assert new["focus"] == {"reference": f"Task/{check['id']}"}
        assert new["code"] == check["code"] and occurrence(new) == occurrence(check)
        assert window(new) == ((START + timedelta(days=2)).isoformat(), window(check)[1])
        assert state.tasks[check["id"]]["status"] == "rejected"

    def test_a_late_rejection_gets_a_fresh_due_date(self, program) -> None:
        state = PlanState(program, patient_context())
        check = state.of("weight-check")[0]
        rejected = state.edit(check["id"], status="rejected")
        day = START + timedelta(days=20)
        (copy_,) = [a for a in _event(state, rejected, day) if isinstance(a, CreateTask)]
        assert window(copy_.resource) == (day.isoformat(), (day + timedelta(days=7)).isoformat())

    def test_the_care_coach_declining_is_not_bounced_back_to_the_care_coach(self, program) -> None:
        state = PlanState(program, patient_context())
        check = state.of("weight-check")[0]
        _event(state, state.edit(check["id"], status="rejected"), START)
        (copy_,) = [t for t in state.of("weight-check") if t["id"] != check["id"]]
        again = state.edit(copy_["id"], status="rejected")
        assert [a for a in _event(state, again, START) if isinstance(a, CreateTask)] == []

    def test_completing_the_reassigned_copy_counts_for_dependants(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        _event(state, state.edit(start_plan["id"], status="rejected"), START)
        (copy_,) = [t for t in state.of("start-plan") if t["id"] != start_plan["id"]]
        done = state.complete(copy_["id"], date(2026, 2, 6))
        _event(state, done, date(2026, 2, 6))
        (visit,) = state.of("home-visit")
        assert window(visit)[0] == "2026-02-06"
