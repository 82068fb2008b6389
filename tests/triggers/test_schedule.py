"""Recurrence, later starts and dependencies: Tasks open when their window comes, once."""

from __future__ import annotations

import copy
from datetime import date, timedelta

from trigger_state import START, PlanState, occurrence, patient_context, window

from careflow.programs.durations import parse_duration
from careflow.programs.model import Timing
from careflow.triggers.actions import CreateTask
from careflow.triggers.schedule import current_occurrence
from careflow.triggers.sweep import sweep_plan


def _complete_all_on_open(state: PlanState, day: date) -> None:
    for t in list(state.tasks.values()):
        if t["status"] == "requested" and window(t)[0] <= day.isoformat():
            state.complete(t["id"], day)


class TestRecurringActivityOpensEachWindowOnTime:
    def test_weight_check_opens_monthly_from_the_plan_start_without_drifting(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, START + timedelta(days=400), _complete_all_on_open)
        checks = state.of("weight-check")
        assert [occurrence(t) for t in checks] == list(range(1, 13))
        expected = [parse_duration("P1M").after(START, n) for n in range(12)]
        assert [window(t)[0] for t in checks] == [d.isoformat() for d in expected]
        assert window(checks[1]) == ("2026-02-28", "2026-03-07")  # clamped to month end ...
        assert window(checks[2])[0] == "2026-03-31"  # ... and back to the 31st, not the 28th

    def test_no_task_opens_before_its_window(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, date(2026, 2, 27))
        assert [occurrence(t) for t in state.of("weight-check")] == [1]

    def test_recurrence_stops_at_the_plan_period_end(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, START + timedelta(days=500), _complete_all_on_open)
        end = state.plan["period"]["end"]
        assert all(window(t)[0] < end for t in state.tasks.values())

    def test_times_limits_the_number_of_occurrences(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, START + timedelta(days=400), _complete_all_on_open)
        assert [occurrence(t) for t in state.of("review")] == [1, 2]


class TestDowntimeDoesNotBurstStaleTasks:
    def test_only_the_current_occurrence_is_created_after_a_gap(self, program) -> None:
        state = PlanState(program, patient_context())
        day = date(2026, 6, 5)  # windows opened Feb 28, Mar 31, Apr 30, May 31: only May's is current
        actions = state.sweep(day)
        opened = [a for a in actions if isinstance(a, CreateTask) and a.role == "home-nurse"
                  and "weight-check" in a.resource["instantiatesCanonical"]]
        assert len(opened) == 1
        assert occurrence(opened[0].resource) == 5
        assert window(opened[0].resource)[0] == "2026-05-31"

    def test_current_occurrence_is_exact_for_long_gaps(self) -> None:
        timing = Timing(every="P1M", due_within="P7D")
        for gap in range(0, 400, 7):
            today = START + timedelta(days=gap)
            n = current_occurrence(timing, START, today, None)
            assert n is not None
            every = parse_duration("P1M")
            assert every.after(START, n - 1) <= today < every.after(START, n)


class TestLaterStartOffsetHonoured:
    def test_an_activity_starting_later_opens_on_its_offset(self, program) -> None:
        state = PlanState(program, patient_context())
        assert state.of("bloods") == []
        state.run(START, date(2026, 3, 30))
        assert state.of("bloods") == []
        state.sweep(date(2026, 3, 31))
        assert [window(t)[0] for t in state.of("bloods")] == ["2026-03-31"]

    def test_only_if_excludes_activities_the_patient_does_not_qualify_for(self, program) -> None:
        established = PlanState(program, patient_context(onset="2015-01-01"))
        established.run(START, date(2026, 4, 1))
        assert established.of("education") == []
        new = PlanState(program, patient_context(onset="2025-12-01"))
        new.run(START, date(2026, 4, 1))
        assert [window(t)[0] for t in new.of("education")] == ["2026-02-28"]


class TestDependantsWaitForTheirPrerequisites:
    def test_nothing_starts_while_the_prerequisite_is_open(self, program) -> None:
        state = PlanState(program, patient_context())
        state.run(START, date(2026, 8, 1))
        assert state.of("home-visit") == [] and state.of("review") == []

    def test_window_is_derived_from_the_completion_day(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        state.complete(start_plan["id"], date(2026, 2, 10))
        state.run(date(2026, 2, 11), date(2026, 5, 9))
        (visit,) = state.of("home-visit")[:1]
        assert window(visit) == ("2026-02-10", "2026-02-17")
        assert state.of("review") == []  # opens at completion + P3M
        state.sweep(date(2026, 5, 10))
        (review,) = state.of("review")
        assert window(review) == ("2026-05-10", "2026-05-24")
        state.run(date(2026, 5, 11), date(2026, 11, 10))
        assert [window(t)[0] for t in state.of("review")] == ["2026-05-10", "2026-11-10"]

    def test_execution_end_wins_over_last_modified(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        state.edit(start_plan["id"], status="completed", executionPeriod={"end": "2026-02-03T16:00:00+01:00"},
                   lastModified="2026-02-09")
        state.sweep(date(2026, 2, 9))
        (visit,) = state.of("home-visit")
        assert window(visit)[0] == "2026-02-03"

    def test_last_modified_is_the_completion_time_without_an_execution_period(self, program) -> None:
        state = PlanState(program, patient_context())
        (start_plan,) = state.of("start-plan")
        state.edit(start_plan["id"], status="completed", lastModified="2026-02-05T09:00:00Z")
        state.sweep(date(2026, 2, 6))
        (visit,) = state.of("home-visit")
        assert window(visit)[0] == "2026-02-05"


class TestSweepIsIdempotentAndPure:
    def test_a_second_sweep_on_the_applied_state_does_nothing(self, program) -> None:
        state = PlanState(program, patient_context())
        day = date(2026, 7, 1)
        assert state.sweep(day)
        assert state.sweep(day) == []

    def test_two_evaluations_of_the_same_state_give_the_same_ids(self, program) -> None:
        state = PlanState(program, patient_context())
        day = date(2026, 7, 1)
        a = sweep_plan(program, state.plan, state.task_list, state.ctx, day)
        b = sweep_plan(program, state.plan, state.task_list, state.ctx, day)
        assert [x.id for x in a] == [x.id for x in b] and a

    def test_inputs_are_never_mutated(self, program) -> None:
        state = PlanState(program, patient_context())
        plan, tasks = copy.deepcopy(state.plan), copy.deepcopy(state.task_list)
        sweep_plan(program, state.plan, state.task_list, state.ctx, date(2026, 9, 1))
        assert state.plan == plan and state.task_list == tasks

    def test_a_plan_that_is_not_active_is_left_alone(self, program) -> None:
        state = PlanState(program, patient_context())
        plan = {**state.plan, "status": "on-hold"}
        assert sweep_plan(program, plan, state.task_list, state.ctx, date(2026, 9, 1)) == []
