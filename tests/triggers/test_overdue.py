"""Overdue marks and escalations: late work is flagged, never cancelled, and escalated exactly once."""

from __future__ import annotations

from datetime import date, timedelta

from trigger_state import START, PlanState, business_status, occurrence, patient_context, window

from careflow.naming import EXT_TRIGGER, TASK_REASON
from careflow.planning import ids
from careflow.triggers.actions import CreateTask, UpdateTask


def _first_weight_check(state: PlanState) -> dict:
    return state.of("weight-check")[0]


def _escalations(state: PlanState) -> list[dict]:
    return [t for t in state.tasks.values()
            if (t.get("reasonCode") or {}).get("coding", [{}])[0].get("code") == "escalation"]


class TestLateTaskIsMarkedOverdueNotCancelled:
    def test_not_overdue_on_its_due_day(self, program) -> None:
        state = PlanState(program, patient_context())
        due = date.fromisoformat(window(_first_weight_check(state))[1])
        state.run(START, due)
        assert business_status(_first_weight_check(state)) is None

    def test_overdue_the_day_after_and_still_requested(self, program) -> None:
        state = PlanState(program, patient_context())
        due = date.fromisoformat(window(_first_weight_check(state))[1])
        state.run(START, due + timedelta(days=1))
        task = _first_weight_check(state)
        assert business_status(task) == "overdue"
        assert task["status"] == "requested"

    def test_finished_tasks_are_never_marked(self, program) -> None:
        state = PlanState(program, patient_context())
        task = _first_weight_check(state)
        state.edit(task["id"], status="cancelled")
        state.run(START, START + timedelta(days=30))
        assert business_status(_first_weight_check(state)) is None

    def test_marking_carries_the_version_read(self, program) -> None:
        state = PlanState(program, patient_context())
        due = date.fromisoformat(window(_first_weight_check(state))[1])
        state.edit(_first_weight_check(state)["id"], note=[{"text": "called, no answer"}])  # version 2
        actions = state.sweep(due + timedelta(days=1))
        (mark,) = [a for a in actions if isinstance(a, UpdateTask) and a.id == _first_weight_check(state)["id"]]
        assert mark.if_match_version == 2
        assert _first_weight_check(state)["note"] == [{"text": "called, no answer"}]


class TestEscalationHappensOnceAtTheRightDay:
    def test_escalates_when_overdue_by_the_trigger_delay(self, program) -> None:
        state = PlanState(program, patient_context())
        due = date.fromisoformat(window(_first_weight_check(state))[1])
        state.run(START, due + timedelta(days=2))
        assert _escalations(state) == []
        actions = state.sweep(due + timedelta(days=3))
        (esc,) = [a for a in actions if isinstance(a, CreateTask) and a.reason == "escalation"]
        assert esc.role == "care-coach" and esc.trigger == "weight-overdue"
        assert business_status(_first_weight_check(state)) == "escalated"

    def test_escalation_task_points_at_the_overdue_task(self, program) -> None:
        state = PlanState(program, patient_context())
        overdue = _first_weight_check(state)
        state.run(START, date.fromisoformat(window(overdue)[1]) + timedelta(days=3))
        (esc,) = _escalations(state)
        assert esc["id"] == ids.triggered_task_id("pat-1", program.id, "weight-overdue", overdue["id"])
        assert esc["focus"] == {"reference": f"Task/{overdue['id']}"}
        assert esc["basedOn"] == [{"reference": f"CarePlan/{state.plan['id']}"}]
        assert esc["priority"] == "urgent"
        assert esc["owner"]["reference"] == "PractitionerRole/coach-1"
        assert esc["reasonCode"]["coding"][0] == {"system": TASK_REASON, "code": "escalation",
                                                  "display": "Escalation of an overdue task"}
        assert {"url": EXT_TRIGGER, "valueString": "weight-overdue"} in esc["extension"]
        assert occurrence(esc) is None

    def test_a_month_of_daily_sweeps_escalates_once_per_trigger(self, program) -> None:
        state = PlanState(program, patient_context())
        overdue = _first_weight_check(state)
        state.run(START, START + timedelta(days=45))
        mine = [t for t in _escalations(state) if t["focus"]["reference"] == f"Task/{overdue['id']}"]
        assert len(mine) == 1

    def test_a_second_matching_trigger_does_not_escalate_the_task_again(self, program) -> None:
        # the weight-overdue rule and the later `any` rule both match the same late Task: one escalation
        state = PlanState(program, patient_context())
        overdue = _first_weight_check(state)
        state.run(START, START + timedelta(days=75))
        mine = [t for t in _escalations(state) if t["focus"]["reference"] == f"Task/{overdue['id']}"]
        assert [(t["priority"], occurrence(t)) for t in mine] == [("urgent", None)]
        assert {"url": EXT_TRIGGER, "valueString": "weight-overdue"} in mine[0]["extension"]

    def test_rules_matching_on_the_same_day_escalate_once(self, program) -> None:
        # a sweep after a long downtime finds the Task late past every rule's delay at once
        state = PlanState(program, patient_context())
        overdue = _first_weight_check(state)
        state.sweep(START)
        state.sweep(START + timedelta(days=120))
        mine = [t for t in _escalations(state) if t["focus"]["reference"] == f"Task/{overdue['id']}"]
        assert len(mine) == 1

    def test_escalations_are_not_escalated_again(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, START + timedelta(days=200))
        focus = {t["focus"]["reference"] for t in _escalations(state)}
        assert not focus & {f"Task/{t['id']}" for t in _escalations(state)}
        assert any(business_status(t) == "overdue" for t in _escalations(state))

    def test_without_a_team_member_the_care_team_owns_the_escalation(self, program) -> None:
        state = PlanState(program, patient_context(team={}))
        state.run(START, START + timedelta(days=12))
        (esc,) = _escalations(state)
        assert esc["owner"]["reference"] == f"CareTeam/{ids.careteam_id('pat-1')}"

    def test_a_completed_late_task_stops_escalating(self, program) -> None:
        state = PlanState(program, patient_context())
        overdue = _first_weight_check(state)
        state.run(START, date.fromisoformat(window(overdue)[1]) + timedelta(days=3))
        state.complete(overdue["id"], START + timedelta(days=11))
        state.run(START + timedelta(days=11), START + timedelta(days=80))
        mine = [t for t in _escalations(state) if t["focus"]["reference"] == f"Task/{overdue['id']}"]
        assert len(mine) == 1
