"""The outbox listener, replay safety of event processing, and concurrent edits during a sweep."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator

from engine_world import HEART_FAILURE, add_patient, add_team, add_weight, all_of, edit_task

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.engine.sweep import sweep
from careflow.planning import ids

START = date(2026, 3, 2)


def _at(day: date) -> datetime:
    return datetime.combine(day, time(7, 0), tzinfo=timezone.utc)


def _enrolled(repo: Any, program: Any, pid: str = "p1") -> dict:
    add_team(repo)
    add_patient(repo, pid, conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    programs = {program.id: program}
    enrolment.enrol(repo, programs, [pid], START)
    return programs


class TestListenerRecordsOnlyTheEventsRulesReactTo:
    def test_new_observation_and_status_changes_only(self, repo: Any, heart_failure: Any) -> None:
        _enrolled(repo, heart_failure)
        events.install(repo)
        events.install(repo)  # twice: still one event per write
        obs = add_weight(repo, "p1", _at(START), 80.0)
        task_id = ids.task_id("p1", heart_failure.id, "care-plan-conversation", 1)
        edit_task(repo, task_id, note=[{"text": "phoned"}])  # no status change: no event
        edit_task(repo, task_id, status="completed", executionPeriod={"end": START.isoformat()})
        edit_task(repo, task_id, note=[{"text": "done"}])  # still completed: no new event
        claimed = repo.outbox_claim(10, exclude=events.SUBSCRIPTION_TOPICS)  # the rules' own events
        assert [(e.topic, e.payload) for e in claimed] == [
            ("observation.created", {"id": obs}),
            ("task.status", {"id": task_id, "status": "completed"}),
        ]
        repo.outbox_done([e.id for e in claimed])


class TestEventProcessingIsSafeToReplay:
    def test_processing_the_same_events_twice_creates_nothing_new(self, repo: Any, heart_failure: Any) -> None:
        programs = _enrolled(repo, heart_failure)
        events.install(repo)
        task_id = ids.task_id("p1", heart_failure.id, "care-plan-conversation", 1)
        edit_task(repo, task_id, status="completed", executionPeriod={"end": START.isoformat()})
        add_weight(repo, "p1", _at(START) - timedelta(days=2), 80.0)
        obs = add_weight(repo, "p1", _at(START), 83.0)
        first = events.process_events(repo, programs, _at(START))
        assert first["events"] == 3 and first["observation-tasks"] == 1 and first["plans-flagged"] == 1
        assert first["tasks-opened"] >= 1  # the dependants of the conversation
        tasks_after_first = {t["id"] for t in all_of(repo, "Task")}
        history_after_first, _ = repo.history(count=1)
        # a crash before outbox_done: the same events come round again
        from careflow.engine.counts import Counts
        from careflow.engine.events import handle_observation, handle_task

        again = Counts()
        handle_task(repo, programs, task_id, _at(START), again)
        handle_observation(repo, programs, obs, _at(START), again)
        assert {t["id"] for t in all_of(repo, "Task")} == tasks_after_first
        assert repo.history(count=1)[0] == history_after_first
        assert repo.outbox_claim(10, exclude=events.SUBSCRIPTION_TOPICS) == []

    def test_events_for_patients_without_plans_are_skipped_and_done(self, repo: Any, heart_failure: Any) -> None:
        events.install(repo)
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create_if_absent({"resourceType": "Patient", "id": "nobody"})
        add_weight(repo, "nobody", _at(START), 70.0)
        counts = events.process_events(repo, {heart_failure.id: heart_failure}, _at(START))
        assert counts["events"] == 1 and counts["skipped"] == 1
        assert repo.outbox_claim(10) == []


class _EditsFirst:
    """The store, with a person saving a Task edit after the engine read the plans and just before
    its next unit of work (the due-date bookkeeping before the reads does not count)."""

    def __init__(self, inner: Any, task_id: str) -> None:
        self._inner, self._task_id, self.fired, self.read = inner, task_id, False, False

    def __getattr__(self, name: str) -> Any:
        if name == "search":
            self.read = True
        return getattr(self._inner, name)

    @contextmanager
    def unit_of_work(self, principal: Any) -> Iterator[Any]:
        if not self.fired and self.read:
            self.fired = True
            edit_task(self._inner, self._task_id, note=[{"text": "nurse called the patient"}])
        with self._inner.unit_of_work(principal) as uow:
            yield uow


class TestConcurrentEditSkipsThePlanWithoutPartialWrites:
    def test_conflict_is_counted_and_the_next_sweep_catches_up(self, repo: Any, heart_failure: Any) -> None:
        programs = _enrolled(repo, heart_failure)
        late = START + timedelta(days=40)  # the conversation (due in 14 days) is overdue
        task_id = ids.task_id("p1", heart_failure.id, "care-plan-conversation", 1)
        racing = _EditsFirst(repo, task_id)
        before = {t["id"] for t in all_of(repo, "Task")}
        counts = sweep(racing, programs, _at(late))
        assert counts["conflict"] == 1 and counts["tasks-overdue"] == 0 and counts["tasks-opened"] == 0
        assert {t["id"] for t in all_of(repo, "Task")} == before  # nothing half-written
        assert repo.read("Task", task_id).resource["note"] == [{"text": "nurse called the patient"}]
        retry = sweep(repo, programs, _at(late))
        assert retry["conflict"] == 0 and retry["tasks-overdue"] >= 1
        task = repo.read("Task", task_id).resource
        assert task["note"] == [{"text": "nurse called the patient"}]  # the person's edit survives
        assert task["businessStatus"]["coding"][0]["code"] in ("overdue", "escalated")

    def test_sweep_of_chosen_patients_only(self, repo: Any, heart_failure: Any) -> None:
        programs = _enrolled(repo, heart_failure, "p1")
        add_patient(repo, "p9", conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
        enrolment.enrol(repo, programs, ["p9"], START)
        counts = sweep(repo, programs, _at(START + timedelta(days=20)), ["p9"])
        assert counts["plans"] == 1
        assert set(counts.by_program) == {heart_failure.id}
