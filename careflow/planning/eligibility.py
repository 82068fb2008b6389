"""Who qualifies for a programme, and why not.

Planning an ineligible patient must be a clear refusal, never an empty plan, so the check returns
the reason in words a GP understands.
"""

from __future__ import annotations

from datetime import date
from typing import Iterable

from careflow.planning.patient import ConditionFact, PatientContext
from careflow.programs.codes import ICD10, ICPC2
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program

PREFIX_SYSTEMS = {ICD10, ICPC2}  # I50 covers I50.9; K77 covers K77.01 extensions


def _code_matches(system: str, wanted: str, have: str) -> bool:
    if system in PREFIX_SYSTEMS:
        return have == wanted or have.startswith(wanted + ".") or (len(wanted) == 3 and have.startswith(wanted))
    return have == wanted


_WANTED: dict[int, tuple[Program, dict[str, list[str]]]] = {}


def _wanted(program: Program) -> dict[str, list[str]]:
    """Eligibility codes by system, cached per programme object (programmes are frozen)."""
    hit = _WANTED.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1]
    wanted: dict[str, list[str]] = {}
    for c in program.eligibility.conditions:
        wanted.setdefault(c.system, []).append(c.code)
    _WANTED[id(program)] = (program, wanted)
    return wanted


def qualifying_conditions(program: Program, ctx: PatientContext) -> list[ConditionFact]:
    """The patient's active Conditions coded as one of the programme's eligibility codes."""
    wanted = _wanted(program)
    out = []
    for cond in ctx.conditions:
        if not cond.active:
            continue
        if any(_code_matches(s, w, c) for s, c in cond.codes for w in wanted.get(s, ())):
            out.append(cond)
    return out


def record_problem(ctx: PatientContext) -> str | None:
    """Why this Patient record cannot take a plan at all (died, merged, inactive); None when it can."""
    if ctx.deceased:
        return "the patient has died"
    if ctx.replaced_by:
        return f"the record was merged into {ctx.replaced_by}; plan that record instead"
    if ctx.inactive:
        return "the Patient record is inactive (Patient.active is false)"
    return None


def ineligibility(
    program: Program, ctx: PatientContext, on: date, qualifying: list[ConditionFact] | None = None
) -> str | None:
    """Why the patient does not qualify on ``on``; None when they do.

    A record that is not a living, current patient comes first: a deceased patient is never
    enrolled or proposed, and a merged record's care belongs to the record it was merged into."""
    status = record_problem(ctx)
    if status:
        return status
    if not (qualifying if qualifying is not None else qualifying_conditions(program, ctx)):
        codes = ", ".join(f"{c.code}" for c in program.eligibility.conditions[:4])
        return f"the patient has no active condition coded for {program.title.en} ({codes}…)"
    bounds = program.eligibility.age
    if bounds and (bounds.min is not None or bounds.max is not None):
        age = ctx.age_on(on)
        if age is None:
            return "the patient's birth date is unknown, and the programme has age bounds"
        if bounds.min is not None and age < bounds.min:
            return f"the patient is {age}, younger than the programme's minimum age {bounds.min}"
        if bounds.max is not None and age > bounds.max:
            return f"the patient is {age}, older than the programme's maximum age {bounds.max}"
    if ctx.group and ctx.group not in program.eligibility.groups:
        return f"the patient is in population group {ctx.group}; the programme is for {', '.join(program.eligibility.groups)}"
    return None


def is_new_diagnosis(
    program: Program, ctx: PatientContext, on: date, qualifying: list[ConditionFact] | None = None
) -> bool:
    """True when a qualifying Condition began within the programme's new-diagnosis window."""
    since = parse_duration(program.eligibility.new_diagnosis_within).before(on)
    conds = qualifying if qualifying is not None else qualifying_conditions(program, ctx)
    return any(c.onset is not None and c.onset >= since for c in conds)


def eligible_programs(programs: Iterable[Program], ctx: PatientContext, on: date) -> list[Program]:
    return [p for p in programs if p.status == "active" and ineligibility(p, ctx, on) is None]
