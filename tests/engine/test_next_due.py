"""The due day the sweep stores for a patient is never late: on every day before it, the pure rules
(``sweep_plan``) find nothing to do for any of the patient's plans, judged day by day.

A generated region is enrolled and swept; for each patient the index then names a later day for,
each day in between is tried with the very inputs the sweep reads (plans, Tasks, patient context,
shared activities).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment
from careflow.engine.context import load_contexts, program_of
from careflow.engine.sweep import _plans_with_tasks, _shared_tasks, plan_patients, sweep
from careflow.planning.shared import Part, is_shared_plan, sharing
from careflow.programs.loader import load_directory
from careflow.store.memory import MemoryRepository
from careflow.store.unit_of_work import DUE_NOW, NEVER_DUE
from careflow.triggers.schedule import plan_period
from careflow.triggers.sweep import sweep_plan

START = date(2026, 11, 2)
HORIZON = 150  # days tried after each sweep


def _at(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _nothing_to_do_until(repo: Any, programs: dict[str, Any], pid: str, today: date, until: date) -> list[str]:
    plans, tasks_of = _plans_with_tasks(repo, [pid])
    contexts, _ = load_contexts(repo, [pid], programs)
    ctx = contexts[pid]
    parts = [(s, program_of(s.resource or {}, programs)) for s in plans if not is_shared_plan(s.resource or {})]
    shared = _shared_tasks([tasks_of.get(s.id, []) for s, _ in parts])
    problems = []
    day = today + timedelta(days=1)
    while day < until:
        share = sharing([Part(p, s.id, plan_period(s.resource or {})[0] or day) for s, p in parts if p], ctx, day)
        for s, program in parts:
            tasks = sorted(tasks_of.get(s.id, []), key=lambda t: str(t.get("id")))
            if program and sweep_plan(program, s.resource or {}, tasks, ctx, _at(day), share=share, shared_tasks=shared):
                problems.append(f"{pid}: work on {day}, index said {until}")
        day += timedelta(days=1)
    return problems


def test_no_plan_has_work_before_its_stored_day() -> None:
    from careflow.region.generate import generate_region
    from workflows.loading import load_resources, region_resources

    programs = load_directory(None)
    repo = MemoryRepository()
    load_resources(repo, region_resources(generate_region(700, 4, chronic_only=True)), what="load")
    enrolment.enrol(repo, programs, enrolment.find_candidates(repo, programs), START)
    checked = 0
    for offset in (1, 40):
        today = START + timedelta(days=offset)
        sweep(repo, programs, _at(today))
        sweep(repo, programs, _at(today))  # the patients written for are read again and get their day
        due_rows = repo._state.due
        problems: list[str] = []
        for pid in plan_patients(repo):
            day, _ = due_rows[pid]
            assert day != DUE_NOW, f"{pid} still due after two sweeps of {today}"
            until = min(day, today + timedelta(days=HORIZON)) if day != NEVER_DUE else today + timedelta(days=HORIZON)
            problems += _nothing_to_do_until(repo, programs, pid, today, until)
            checked += 1
        assert not problems, problems[:5]
    assert checked > 50
    with repo.unit_of_work(SYSTEM) as uow:  # and the index is not simply "everyone, every day"
        assert len(uow.due_patients(START + timedelta(days=41))) < len(plan_patients(repo))
