"""Whether an activity's ``only_if`` lets it into one patient's plan on one day.

Pure and cheap: it runs for every activity of every plan the sweep touches. The population-pyramid
group, the age and the new-diagnosis test are judged at the plan's start (the plan is drawn up for
the patient as they were then); the facts (latest Observation, active medication, active Condition)
on the day asked, from what the patient context holds, so an activity follows the patient through
the year: smoking-cessation support stops once the latest smoking status says ex-smoker, the
podiatrist comes in when a foot examination records a higher risk grade.

Latest Observation: the one with the latest effective time on or before the day (undated ones count
as older than any dated one); a value older than ``within`` counts as unknown, and unknown is
``if_unknown``. Quantities are compared in the rule's unit (``careflow.triggers.units``); a value in a
unit that does not convert is unknown too, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING

from careflow.planning.eligibility import _code_matches, is_new_diagnosis
from careflow.planning.patient import Code, ConditionFact, ObservationFact, PatientContext
from careflow.programs.codes import ATC
from careflow.programs.durations import parse_duration
from careflow.programs.model import ConditionPresent, Fact, LatestObservation, MedicationClass, Only
from careflow.triggers.units import convert

if TYPE_CHECKING:
    from careflow.programs.model import Program

_EPSILON = 1e-9
_OLDEST = datetime.min


def latest_observation(test: LatestObservation, ctx: PatientContext, on: date) -> ObservationFact | None:
    """The patient's latest Observation of the test's codes on or before ``on`` (None when none)."""
    wanted = {(c.system, c.code) for c in test.codes}
    best: ObservationFact | None = None
    best_key: datetime | None = None
    for obs in ctx.observations:
        if not wanted.intersection(obs.codes):
            continue
        when = obs.when
        if when is not None and when.date() > on:
            continue
        key = when.replace(tzinfo=None) if when is not None else _OLDEST
        if best_key is None or key > best_key:
            best, best_key = obs, key
    return best


def observation_holds(test: LatestObservation, ctx: PatientContext, on: date) -> bool:
    obs = latest_observation(test, ctx, on)
    if obs is not None and test.within is not None:
        since = parse_duration(test.within).before(on)
        if obs.when is None or obs.when.date() < since:
            obs = None
    if obs is None:
        return test.if_unknown
    if test.value_in is not None:
        if not obs.value_codes:
            return test.if_unknown
        return bool({(c.system, c.code) for c in test.value_in}.intersection(obs.value_codes))
    for kind in ("above", "below", "at_least", "at_most"):
        bound = getattr(test, kind)
        if bound is None:
            continue
        value = None if obs.value is None else convert(obs.value, obs.unit, bound.unit)
        if value is None:
            return test.if_unknown
        limit = float(bound.value)
        if kind == "above":
            return value > limit
        if kind == "below":
            return value < limit
        if kind == "at_least":
            return value >= limit - _EPSILON
        return value <= limit + _EPSILON
    return test.if_unknown  # unreachable: the model demands one test


def _medication_matches(wanted: tuple[Code, ...], have: tuple[Code, ...]) -> bool:
    for system, code in have:
        for w_system, w_code in wanted:
            if system != w_system:
                continue
            if code == w_code or (system == ATC and code.startswith(w_code)):
                return True
    return False


def medication_holds(test: MedicationClass, ctx: PatientContext, on: date) -> bool:
    wanted = tuple((c.system, c.code) for c in test.codes)
    taking = any(
        (m.until is None or m.until >= on) and _medication_matches(wanted, m.codes) for m in ctx.medications
    )
    return taking == test.taking


def has_condition(codes: tuple[Code, ...], conditions: tuple[ConditionFact, ...]) -> bool:
    for cond in conditions:
        if not cond.active:
            continue
        for system, code in cond.codes:
            for w_system, w_code in codes:
                if system == w_system and _code_matches(system, w_code, code):
                    return True
    return False


def condition_holds(test: ConditionPresent, ctx: PatientContext) -> bool:
    return has_condition(tuple((c.system, c.code) for c in test.codes), ctx.conditions) == test.present


def fact_holds(fact: Fact, ctx: PatientContext, on: date) -> bool:
    if fact.observation is not None:
        return observation_holds(fact.observation, ctx, on)
    if fact.medication is not None:
        return medication_holds(fact.medication, ctx, on)
    assert fact.condition is not None
    return condition_holds(fact.condition, ctx)


def facts_hold(only: Only, ctx: PatientContext, on: date) -> bool:
    """The fact part of ``only`` (observation, medication, condition, any_of) on ``on``."""
    if only.observation is not None and not observation_holds(only.observation, ctx, on):
        return False
    if only.medication is not None and not medication_holds(only.medication, ctx, on):
        return False
    if only.condition is not None and not condition_holds(only.condition, ctx):
        return False
    if only.any_of is not None and not any(fact_holds(f, ctx, on) for f in only.any_of):
        return False
    return True


def restriction_holds(
    only: Only,
    program: Program,
    ctx: PatientContext,
    start: date,
    qualifying: list[ConditionFact] | None = None,
    on: date | None = None,
) -> bool:
    """Every restriction of ``only`` for a plan started on ``start``, the facts judged on ``on``
    (the start when not given)."""
    if only.new_diagnosis is not None and only.new_diagnosis != is_new_diagnosis(program, ctx, start, qualifying):
        return False
    if only.groups is not None and ctx.group is not None and ctx.group not in only.groups:
        return False
    if only.min_age is not None:
        age = ctx.age_on(start)
        if age is None or age < only.min_age:
            return False
    if only.has_facts and not facts_hold(only, ctx, on or start):
        return False
    return True


def fact_observation_codes(programs: Mapping[str, Program] | Iterable[Program]) -> list[str]:
    """``system|code`` of every Observation an ``only_if`` of these programmes reads (sorted), so the
    engine loads exactly those for the patient context."""
    found: set[str] = set()
    for program in _programs(programs):
        for activity in program.activities:
            if activity.only_if is None:
                continue
            for fact in activity.only_if.facts():
                if fact.observation is not None:
                    found.update(f"{c.system}|{c.code}" for c in fact.observation.codes)
    return sorted(found)


def reads_medications(programs: Mapping[str, Program] | Iterable[Program]) -> bool:
    """Whether any ``only_if`` of these programmes tests a medication class."""
    return any(
        fact.medication is not None
        for program in _programs(programs)
        for activity in program.activities if activity.only_if is not None
        for fact in activity.only_if.facts()
    )


def _programs(programs: Mapping[str, Program] | Iterable[Program]) -> list[Program]:
    return list(programs.values()) if isinstance(programs, Mapping) else list(programs)
