"""The CarePlan follows its Tasks: referenced activities, completion at the period end, never revoked."""

from __future__ import annotations

from datetime import date, timedelta

from trigger_state import START, PlanState, patient_context, window

from careflow.naming import EXT_ATTENTION
from careflow.triggers.plan_status import attention, plan_update


def _finish_everything(state: PlanState, day: date) -> None:
    for t in list(state.tasks.values()):
        if t["status"] == "requested" and window(t)[0] <= day.isoformat():
            state.complete(t["id"], day)


class TestPlanReferencesEveryTopLevelTask:
    def test_new_tasks_are_added_to_the_plan_activities(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, START + timedelta(days=70))
        referenced = {a["reference"]["reference"] for a in state.plan["activity"]}
        assert referenced == {f"Task/{i}" for i in state.tasks}


class TestPlanCompletesOnlyWhenItsPeriodIsOverAndWorkIsDone:
    def test_stays_active_while_the_period_runs_even_with_all_tasks_done(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, date(2026, 12, 1), _finish_everything)
        assert state.plan["status"] == "active"

    def test_completes_at_the_period_end_when_every_task_is_final(self, program) -> None:
        state = PlanState(program, patient_context())
        end = date.fromisoformat(state.plan["period"]["end"])
        state.run(START, end - timedelta(days=1), _finish_everything)
        assert state.plan["status"] == "active"
        state.sweep(end)
        assert state.plan["status"] == "completed"

    def test_open_tasks_keep_an_ended_plan_active_and_it_is_never_revoked(self, program) -> None:
        state = PlanState(program, patient_context())
        end = date.fromisoformat(state.plan["period"]["end"])
        state.run(START, end + timedelta(days=30))
        assert state.plan["status"] == "active"


class TestAttentionFlagFollowsObservationTasks:
    def test_cleared_once_the_observation_tasks_are_done(self) -> None:
        plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "meta": {"versionId": "3"},
                "extension": [{"url": EXT_ATTENTION, "valueBoolean": True}]}
        obs_task = {"resourceType": "Task", "id": "t1", "status": "requested", "basedOn": [{"reference": "CarePlan/cp"}],
                    "reasonCode": {"coding": [{"system": "https://careflow.dev/fhir/CodeSystem/task-reason",
                                               "code": "observation"}]}}
        plan["activity"] = [{"reference": {"reference": "Task/t1"}}]
        assert plan_update(plan, date(2026, 3, 1), all_tasks=[obs_task]) is None
        done = {**obs_task, "status": "completed"}
        update = plan_update(plan, date(2026, 3, 1), all_tasks=[done])
        assert update is not None and update.changes == ("unflagged",) and update.if_match_version == 3
        assert attention(update.resource) is False
        assert attention(plan) is True  # the input is untouched

    def test_a_flag_without_observation_tasks_stays_for_a_person_to_clear(self) -> None:
        plan = {"resourceType": "CarePlan", "id": "cp", "status": "active",
                "extension": [{"url": EXT_ATTENTION, "valueBoolean": True}]}
        assert plan_update(plan, date(2026, 3, 1), all_tasks=[]) is None
