"""Observation rules: a new measurement that crosses a programme threshold raises a follow-up.

For each of the patient's active plans, each ``observation`` trigger of its programme is tested
against the new Observation (same code system and code):

* ``above`` / ``below``: the value, converted to the rule's unit (``units.convert``), strictly above /
  below the threshold; ``at_least`` / ``at_most`` include it; units that do not convert never match;
* ``rises_by`` / ``falls_by`` with ``within``: the value compared with the lowest (rise) / highest
  (fall) earlier value of the same code effective in [effective - within, effective); no earlier
  value in the window, no match;
* ``value_in``: a coded value (valueCodeableConcept) carrying one of the listed codes.

Components count as measurements of their own code: a blood-pressure panel (85354-9) carries the
systolic value (8480-6) as a component, and a rule on 8480-6 must see it.

A match yields, per trigger: ``create_task`` -> a Task for that role (priority from the rule, focus
and reasonReference the Observation, reason ``observation``, id keyed by (trigger, Observation) so a
replayed event changes nothing); ``start`` -> the activities started as a completion would;
``flag_plan`` -> the plan's attention flag raised. Cancelled or entered-in-error Observations are
ignored.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any, Iterable, Sequence

from careflow.planning.patient import ObservationFact, PatientContext, observation_fact
from careflow.programs.durations import parse_duration
from careflow.programs.model import ObservationRule, Program
from careflow.triggers.actions import Action, CreateTask
from careflow.triggers.building import triggered_task
from careflow.triggers.plan_status import plan_update
from careflow.triggers.sweep import day_of
from careflow.triggers.task_events import starts
from careflow.triggers.units import convert

IGNORED_STATUSES = frozenset({"cancelled", "entered-in-error"})


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def window_start(rule: ObservationRule, when: datetime) -> datetime:
    assert rule.within is not None
    day = parse_duration(rule.within).before(when.date())
    return _aware(when).replace(year=day.year, month=day.month, day=day.day)


def _value(fact: ObservationFact, unit: str) -> float | None:
    return None if fact.value is None else convert(fact.value, fact.unit, unit)


def measurements(observation: dict[str, Any]) -> list[ObservationFact]:
    """The Observation's own value and each component's, as facts sharing its id and time."""
    top = observation_fact(observation)
    out = [top]
    for component in observation.get("component") or ():
        if isinstance(component, dict):
            part = observation_fact({"resourceType": "Observation", **component,
                                     "effectiveDateTime": None, "effectivePeriod": None, "issued": None})
            out.append(replace(part, id=top.id, when=top.when))
    return out


def rule_matches(rule: ObservationRule, obs: ObservationFact, earlier: Iterable[ObservationFact]) -> bool:
    """Whether the new Observation ``obs`` fires ``rule`` given the patient's ``earlier`` ones."""
    code = (rule.code.system, rule.code.code)
    if code not in obs.codes:
        return False
    if rule.value_in is not None:
        wanted = {(c.system, c.code) for c in rule.value_in}
        return bool(wanted & set(obs.value_codes))
    if rule.above is not None:
        v = _value(obs, rule.above.unit)
        return v is not None and v > rule.above.value
    if rule.below is not None:
        v = _value(obs, rule.below.unit)
        return v is not None and v < rule.below.value
    if rule.at_least is not None:
        v = _value(obs, rule.at_least.unit)
        return v is not None and v >= rule.at_least.value - 1e-9
    if rule.at_most is not None:
        v = _value(obs, rule.at_most.unit)
        return v is not None and v <= rule.at_most.value + 1e-9
    delta = rule.rises_by or rule.falls_by
    if delta is None or obs.when is None:
        return False
    v = _value(obs, delta.unit)
    if v is None:
        return False
    when = _aware(obs.when)
    since = window_start(rule, obs.when)
    before = [
        x for e in earlier
        if e.id != obs.id and code in e.codes and e.when is not None and since <= _aware(e.when) < when
        and (x := _value(e, delta.unit)) is not None
    ]
    if not before:
        return False
    if rule.rises_by is not None:
        return v - min(before) >= delta.value - 1e-9
    return max(before) - v >= delta.value - 1e-9


def history_since(observation: dict[str, Any], programs: Iterable[Program]) -> datetime | None:
    """How far back earlier Observations are needed to test this one (None: no change rule applies)."""
    facts = measurements(observation)
    when = facts[0].when
    if when is None:
        return None
    codes = {c for f in facts for c in f.codes}
    starts_at = [
        window_start(t.when.observation, when)
        for p in programs for t in p.triggers
        if t.when.observation is not None and t.when.observation.within is not None
        and (t.when.observation.rises_by or t.when.observation.falls_by)
        and (t.when.observation.code.system, t.when.observation.code.code) in codes
    ]
    return min(starts_at) if starts_at else None


def observation_actions(
    observation: dict[str, Any],
    earlier: Sequence[dict[str, Any]],
    plans: Sequence[tuple[Program, dict[str, Any]]],
    ctx: PatientContext,
    now: datetime | date,
) -> list[Action]:
    """Actions for a new Observation of the patient with active ``plans`` (programme, CarePlan)."""
    if observation.get("status") in IGNORED_STATUSES or not observation.get("id"):
        return []
    today = day_of(now)
    facts = measurements(observation)
    history = [m for e in earlier for m in measurements(e)]
    obs_ref = f"Observation/{observation['id']}"
    out: list[Action] = []
    for program, careplan in plans:
        if careplan.get("status") != "active":
            continue
        created: list[CreateTask] = []
        flag = False
        for trigger in program.triggers:
            rule = trigger.when.observation
            if rule is None or not any(rule_matches(rule, fact, history) for fact in facts):
                continue
            then = trigger.then
            new = then.create_task
            if new is not None:
                task = triggered_task(
                    program, ctx, str(careplan["id"]),
                    trigger_id=trigger.id, cause=str(observation["id"]), role_id=new.role, reason="observation",
                    title_en=new.title.en, title_nl=new.title.nl,
                    description_en=(new.description or new.title).en, description_nl=(new.description or new.title).nl,
                    priority=new.priority, opens=today, due=parse_duration(new.due_within).after(today),
                    authored=today, focus=obs_ref, code=new.code, reason_reference=obs_ref,
                )
                created.append(CreateTask(task, "observation", new.role, trigger.id, obs_ref))
            if then.start:
                created += starts(program, careplan, ctx, trigger.id, then.start, cause=str(observation["id"]),
                                  focus=obs_ref, opens=today, today=today)
            flag = flag or then.flag_plan
        out += created
        update = plan_update(careplan, today, new_tasks=[c.resource for c in created], raise_flag=flag)
        if update is not None:
            out.append(update)
    return out
