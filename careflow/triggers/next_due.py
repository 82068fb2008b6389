"""The next day on which the sweep could have work for a plan: what the due-date index stores.

``sweep_plan`` reads the calendar in a handful of places only, each a test of the form "has day X
come": an occurrence's window opening (``schedule``), a Task's due day passing and its escalation
delay (``overdue``), the review lead before ``period.end`` (``renewal``) and the end itself
(``plan_status``), plus the patient's facts as known on the day (``only_if``: an Observation dated
later, a latest value growing older than ``within``, a medication's ``until``). Between two such
days every input the rules see is the same, so once a sweep found nothing to do on ``today``, it finds
nothing until the earliest of them. These functions list those days; an early answer costs one more
read of the plan, a late one would miss work, so where a rule's day is not known exactly the answer
leans early (``tests/engine/test_next_due.py`` checks every day in between with ``sweep_plan`` itself).
Everything that is not the calendar (a Task completed, a plan revised, a new Observation) is a write,
and every write marks its patient due at once (``careflow.store.unit_of_work``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Iterable, Iterator

from careflow.planning.patient import PatientContext
from careflow.programs.durations import Duration, parse_duration
from careflow.programs.model import Program
from careflow.programs.seasons import season_opening
from careflow.triggers.renewal import REVIEW_LEAD
from careflow.triggers.schedule import by_activity, current_occurrence, dependency_anchor, opening, plan_period
from careflow.triggers.task_facts import task_facts

MAX_SEASONS = 200  # a season's occurrences are looked for this many years ahead at most


def _after(today: date, days: Iterable[date | None]) -> date | None:
    later = [d for d in days if d is not None and d > today]
    return min(later) if later else None


def plan_next_due(program: Program, careplan: dict[str, Any], tasks: list[dict[str, Any]], ctx: PatientContext,
                  today: date) -> date | None:
    """The first day after ``today`` on which the calendar alone could give ``sweep_plan`` work for
    this plan (None: never, until something is written). The patient's facts are ``fact_next_due``'s;
    which programme leads a shared activity follows from them too, so both leaders' days are listed."""
    if careplan.get("status") != "active":
        return None
    return _after(today, _plan_days(program, careplan, tasks, ctx, today))


def _plan_days(program: Program, careplan: dict[str, Any], tasks: list[dict[str, Any]], ctx: PatientContext,
               today: date) -> Iterator[date | None]:
    start, end = plan_period(careplan)
    if end is not None:
        yield end  # completed once its work is done
        yield parse_duration(REVIEW_LEAD).before(end)  # the review Task opens
    facts = [task_facts(t, program) for t in tasks]
    delays = sorted({parse_duration(t.when.overdue.by) for t in program.triggers if t.when.overdue is not None},
                    key=str)
    for f in facts:
        if f.final or f.due is None:
            continue
        yield f.due + timedelta(days=1)  # overdue
        for by in delays:
            yield by.after(f.due)  # escalated
    if start is None:
        return
    grouped = by_activity(facts)
    for activity in program.activities:
        timing = activity.timing
        if activity.after:
            regular = {f.occurrence: f for f in grouped.get(activity.id, ()) if f.regular and f.own}
            if not regular:
                # every prerequisite done: the first window opens then (facts aside, which are the patient's)
                # (a prerequisite's only_if judged on a later day is one of the patient's fact days)
                anchor = dependency_anchor(program, activity, grouped, ctx, start, today)
                if anchor is not None:
                    yield max(parse_duration(timing.start).after(anchor), start)
                continue
            first = regular.get(1)
            if first is None or first.opens is None:
                continue
            base = first.opens
        else:
            base = parse_duration(timing.start).after(start)
        yield _next_opening(timing, base, today, end)


def _next_opening(timing: Any, base: date, today: date, end: date | None) -> date | None:
    """The first opening of an occurrence after ``today`` (the occurrence count changes then)."""
    if timing.season is not None:
        for k in range(1, MAX_SEASONS):
            d = season_opening(timing.season, base, k)
            if d > today:
                return d
        return None
    if base > today:
        return base
    if not timing.every:
        return None
    n = current_occurrence(timing, base, today, None) or 1
    if timing.times is not None and n + 1 > timing.times:
        return None
    nxt = opening(timing, base, n + 1)
    while nxt <= today:  # current_occurrence stops at the end: step past it
        n += 1
        nxt = opening(timing, base, n + 1)
    return nxt


def _within_durations(programs: Iterable[Program]) -> list[Duration]:
    found: dict[str, Duration] = {}
    for program in programs:
        for activity in program.activities:
            if activity.only_if is None:
                continue
            for fact in activity.only_if.facts():
                if fact.observation is not None and fact.observation.within is not None:
                    found[fact.observation.within] = parse_duration(fact.observation.within)
    return [found[k] for k in sorted(found)]


def fact_next_due(ctx: PatientContext, programs: Iterable[Program], today: date) -> date | None:
    """The first day after ``today`` on which a fact the programmes' ``only_if`` read changes by the
    calendar alone: an Observation dated later becomes the latest, a latest value grows older than a
    ``within``, a medication's ``until`` passes."""
    withins = _within_durations(programs)
    days: list[date | None] = []
    for obs in ctx.observations:
        if obs.when is None:
            continue
        seen = obs.when.date()
        days.append(seen)
        for within in withins:
            days.append(_expiry(within, seen, today))
    for med in ctx.medications:
        if med.until is not None:
            days.append(med.until + timedelta(days=1))
    return _after(today, days)


def _expiry(within: Duration, seen: date, today: date) -> date:
    """The first day after ``today`` on which a value seen on ``seen`` is older than ``within``
    (``observation_holds``: ``seen < within.before(day)``), found with that same function."""
    guess = max(today + timedelta(days=1), within.after(seen) - timedelta(days=4))
    for step in range(12):
        day = guess + timedelta(days=step)
        if seen < within.before(day):
            return day
    return guess  # not found near the guess (cannot happen for month/day durations): stay early
