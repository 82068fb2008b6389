"""A programme as a readable timeline per role: what the author wrote, as a GP would hear it.

Two readers share one account of the pathway: ``render`` (the terminal view of ``careflow programs
show``) and the pages' pathway viewer, which draws the same lanes over a time axis. ``pathway``
therefore works out, once, which activities fall in which role's lane in which order, when each
opens (counted in days from the plan's start; an ``after`` chain from its dependencies' first
opening), when it recurs within the plan's period, and where each trigger acts and can fire.
"""

from __future__ import annotations

from dataclasses import dataclass

from careflow.programs.durations import humanise, parse_duration
from careflow.programs.model import (
    Activity,
    Fact,
    ObservationRule,
    Only,
    Program,
    Role,
    Target,
    Trigger,
    WhenKind,
    codes_of,
)
from careflow.programs.seasons import describe as describe_season


def _when(a: Activity) -> str:
    t = a.timing
    start = parse_duration(t.start)
    if a.after:
        base = f"after {' and '.join(a.after)} completed" + (f", +{humanise(t.start)}" if start.approx_days else "")
    else:
        base = "at the start" if not start.approx_days else f"after {humanise(t.start)}"
    if t.season:
        base = describe_season(t.season) + (f", from {humanise(t.start)} after the start" if start.approx_days else "")
        base += f" ({t.times} seasons in all)" if t.times else " until the plan ends"
    elif t.every:
        base += f", then every {humanise(t.every)}"
        base += f" ({t.times} times in all)" if t.times else " until the plan ends"
    return f"{base}; due within {humanise(t.due_within)}"


def _target(t: Target) -> str:
    name = t.measure.display or t.measure.code
    q = getattr(t, t.kind)
    words = {"below": "below", "at_most": "at most", "above": "above", "at_least": "at least"}
    if t.kind in words:
        return f"{name} {words[t.kind]} {q.value:g} {q.unit}"
    if t.kind == "ratio":
        return f"{name} at {q.numerator.value:g} {q.numerator.unit} / {q.denominator.value:g} {q.denominator.unit}"
    if t.kind == "between":
        return f"{name} between {q[0].value:g} and {q[1].value:g} {q[1].unit}"
    return f"{name} stable within {q.value:g} {q.unit}"


def _names(codes: object) -> str:
    return " / ".join(c.display or c.code for c in codes_of(codes))  # type: ignore[arg-type]


def _fact(f: Fact) -> str:
    if f.observation:
        o = f.observation
        name = f"latest {_names(o.code)}"
        for kind in ("above", "below", "at_least", "at_most"):
            q = getattr(o, kind)
            if q is not None:
                test = f"{name} {kind.replace('_', ' ')} {q.value:g} {q.unit}"
                break
        else:
            test = f"{name} is " + " or ".join(c.display or c.code for c in o.value_in or [])
        return test + (" (or unknown)" if o.if_unknown else "")
    if f.medication:
        return ("taking " if f.medication.taking else "not taking ") + " / ".join(c.display or c.code for c in f.medication.codes)
    assert f.condition
    return ("with " if f.condition.present else "without ") + " / ".join(c.display or c.code for c in f.condition.codes)


def _only(only: Only) -> str:
    said = []
    if only.new_diagnosis is not None:
        said.append("only at a new diagnosis" if only.new_diagnosis else "only for an established diagnosis")
    if only.groups is not None:
        said.append("groups " + (", ".join(only.groups) or "none"))
    if only.min_age is not None:
        said.append(f"from age {only.min_age}")
    facts = only.facts()
    top = len(facts) - len(only.any_of or ())
    said += [_fact(f) for f in facts[:top]]
    if only.any_of:
        said.append(" or ".join(_fact(f) for f in only.any_of))
    return f" ({'; '.join(said)})" if said else ""


def only_text(only: Only | None) -> str:
    """An activity's or trigger's restriction, as the terminal view says it: " (groups A, B; from age 65)"."""
    return _only(only) if only else ""


def rule_text(o: ObservationRule) -> str:
    """An observation rule's test as a sentence: "Body weight rises by more than 2 kg within 3 days"."""
    return _rule(o)


def _rule(o: ObservationRule) -> str:
    name = _names(o.code)
    persists = ""
    if o.persists and o.persists.times and o.persists.within:
        persists += f", {o.persists.times} times within {humanise(o.persists.within)}"
    if o.persists and o.persists.lasting:
        persists += f", for at least {humanise(o.persists.lasting)}"
    return _rule_test(o, name) + persists


def _rule_test(o: ObservationRule, name: str) -> str:
    if o.below_baseline:
        return f"{name} more than {o.below_baseline.value:g} {o.below_baseline.unit} below the patient's baseline over {humanise(o.within or 'P0D')}"
    if o.above_baseline:
        return f"{name} more than {o.above_baseline.value:g} {o.above_baseline.unit} above the patient's baseline over {humanise(o.within or 'P0D')}"
    if o.above:
        return f"{name} above {o.above.value:g} {o.above.unit}"
    if o.below:
        return f"{name} below {o.below.value:g} {o.below.unit}"
    if o.at_least:
        return f"{name} at least {o.at_least.value:g} {o.at_least.unit}"
    if o.at_most:
        return f"{name} at most {o.at_most.value:g} {o.at_most.unit}"
    if o.rises_by:
        return f"{name} rises by more than {o.rises_by.value:g} {o.rises_by.unit} within {humanise(o.within or 'P0D')}"
    if o.falls_by:
        return f"{name} falls by more than {o.falls_by.value:g} {o.falls_by.unit} within {humanise(o.within or 'P0D')}"
    return f"{name} is " + " or ".join(c.display or c.code for c in o.value_in or [])


def describe_trigger(t: Trigger) -> str:
    w = t.when
    if w.overdue:
        what = "any task" if w.overdue.activity == "any" else w.overdue.activity
        cause = f"when {what} is overdue by {humanise(w.overdue.by)}"
    elif w.completed:
        cause = f"when {w.completed} is completed"
    elif w.rejected:
        cause = f"when {'any task' if w.rejected == 'any' else w.rejected} is rejected"
    elif w.discharged:
        cause = "after a hospital stay"
    else:
        assert w.observation
        cause = f"when {_rule(w.observation)}" + (_only(t.only_if) if t.only_if else "")
    th = t.then
    acts = []
    if th.escalate_to:
        acts.append(f"escalate to {th.escalate_to}" + (f" ({th.priority})" if th.priority else ""))
    if th.start:
        acts.append("start " + ", ".join(th.start))
    if th.reassign_to:
        acts.append(f"reassign to {th.reassign_to}")
    if th.create_task:
        acts.append(f"create a {th.create_task.priority} task for {th.create_task.role}: {th.create_task.title.en}")
    if th.flag_plan:
        acts.append("flag the plan for attention")
    return f"{cause}: {'; '.join(acts)}"


@dataclass(frozen=True)
class Mark:
    """One activity in its role's lane: when it opens and recurs (days after the plan's start)."""

    activity: Activity
    when: str  # the terminal view's sentence (English)
    opens: float  # the earliest first opening; an `after` activity's counts from its dependencies' first
    due_days: float  # how long each Task stays open before it is due
    occurrences: tuple[float, ...]  # every opening inside the plan's period (a season's: none, its phase is the calendar's)


@dataclass(frozen=True)
class TriggerMark:
    """One follow-up rule: which roles it acts on and, when it follows the schedule, when it can first fire."""

    trigger: Trigger
    kind: WhenKind
    text: str  # the terminal view's sentence (English)
    watches: str | None  # the activity it follows (overdue, completed, rejected), None for 'any' and measurements
    acts_on: tuple[str, ...]  # role ids it gives work to (escalate_to, create_task, reassign_to, started activities)
    at: float | None  # the earliest day it can fire; None: at any time (a measurement, a discharge, any task)


@dataclass(frozen=True)
class Lane:
    role_id: str
    role: Role
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Pathway:
    program: Program
    period_days: float
    lanes: tuple[Lane, ...]  # every declared role, in the programme's order (a role with no activity has an empty lane)
    triggers: tuple[TriggerMark, ...]  # in the programme's order (the first matching one escalates)


def _first_openings(program: Program) -> dict[str, float]:
    """Earliest first opening per activity; an `after` activity opens when its last dependency can first be done."""
    known: dict[str, float] = {}

    def opens(a: Activity, seen: frozenset[str]) -> float:
        if a.id in known:
            return known[a.id]
        base = 0.0
        for dep in a.after:
            if dep in seen:  # a cycle: the loader refuses it, so this only guards the recursion
                continue
            base = max(base, opens(program.activity(dep), seen | {a.id}))
        known[a.id] = base + parse_duration(a.timing.start).approx_days
        return known[a.id]

    for a in program.activities:
        opens(a, frozenset())
    return known


def _occurrences(a: Activity, first: float, period: float) -> tuple[float, ...]:
    t = a.timing
    if t.season:
        return ()
    if not t.every:
        return (first,) if first <= period else ()
    step = max(parse_duration(t.every).approx_days, 1.0)
    out: list[float] = []  # the first opening may fall on the period's last day; a recurrence there is the next plan's
    day = first
    while (day <= period if not out else day < period) and (t.times is None or len(out) < t.times) and len(out) < 400:
        out.append(day)
        day += step
    return tuple(out)


def _acts_on(t: Trigger, program: Program) -> tuple[str, ...]:
    th = t.then
    roles = [th.escalate_to, th.create_task.role if th.create_task else None, th.reassign_to]
    roles += [program.activity(s).role for s in th.start if any(a.id == s for a in program.activities)]
    out: list[str] = []
    for r in roles:
        if r and r not in out:
            out.append(r)
    return tuple(out)


def _trigger_mark(t: Trigger, program: Program, first: dict[str, float]) -> TriggerMark:
    w = t.when
    watches: str | None = None
    at: float | None = None
    if w.overdue and w.overdue.activity != "any" and w.overdue.activity in first:
        watches = w.overdue.activity
        a = program.activity(watches)
        at = first[watches] + parse_duration(a.timing.due_within).approx_days + parse_duration(w.overdue.by).approx_days
    elif w.completed and w.completed in first:
        watches, at = w.completed, first[w.completed]
    elif w.rejected and w.rejected != "any":
        watches = w.rejected
    return TriggerMark(t, w.kind, describe_trigger(t), watches, _acts_on(t, program), at)


def _order(a: Activity) -> tuple[bool, float]:
    return bool(a.after), parse_duration(a.timing.start).approx_days


def pathway(program: Program) -> Pathway:
    """The programme as lanes per role over the plan's period, with its triggers placed."""
    period = parse_duration(program.plan_period).approx_days
    first = _first_openings(program)
    lanes = []
    for role_id, role in program.roles.items():
        acts = sorted((a for a in program.activities if a.role == role_id), key=_order)
        marks = tuple(Mark(a, _when(a), first[a.id], parse_duration(a.timing.due_within).approx_days,
                           _occurrences(a, first[a.id], period)) for a in acts)
        lanes.append(Lane(role_id, role, marks))
    triggers = tuple(_trigger_mark(t, program, first) for t in program.triggers)
    return Pathway(program, period, tuple(lanes), triggers)


def render(program: Program, language: str = "en") -> str:
    def tr(text: object) -> str:
        return str(getattr(text, language))

    lines = [f"{tr(program.title)}  ({program.id} {program.version}, {program.status})", ""]
    conds = ", ".join(f"{c.code}" + (f" {c.display}" if c.display else "") for c in program.eligibility.conditions)
    lines.append(f"Who: patients with {conds}")
    age = program.eligibility.age
    if age and (age.min is not None or age.max is not None):
        lines.append(f"     aged {age.min if age.min is not None else 0}–{age.max if age.max is not None else '…'}")
    lines.append(f"     population groups {', '.join(program.eligibility.groups)}; plan runs {humanise(program.plan_period)}")
    if program.goals:
        lines += ["", "Goals:"]
        for g in program.goals:
            due = f" (within {humanise(g.due)})" if g.due else ""
            lines.append(f"  - {tr(g.title)}{due}")
            for t in g.targets:
                lines.append(f"      {_target(t)}")
    view = pathway(program)
    for lane in view.lanes:
        if not lane.marks:
            continue
        lines += ["", f"{tr(lane.role.title)} [{lane.role_id}]:"]
        for mark in lane.marks:
            a = mark.activity
            flag = f" [{a.priority}]" if a.priority != "routine" else ""
            lines.append(f"  - {tr(a.title)}{flag}{only_text(a.only_if)}: {mark.when}")
    if view.triggers:
        lines += ["", "Follow-up rules:"]
        for tm in view.triggers:
            lines.append(f"  - {tm.trigger.id}: {tm.text}")
    return "\n".join(lines) + "\n"
