"""Observation rules: a new measurement that crosses a programme threshold raises a follow-up.

For each of the patient's active plans, each ``observation`` trigger of its programme is tested
against the new Observation (same code system and code):

* ``above`` / ``below``: the value, converted to the rule's unit (``units.convert``), strictly above /
  below the threshold; units that do not convert never match;
* ``rises_by`` / ``falls_by`` with ``within``: the value compared with the lowest (rise) / highest
  (fall) earlier value of the same code effective in [effective - within, effective); no earlier
  value in the window, no match;
* ``value_in``: a coded value (valueCodeableConcept) carrying one of the listed codes.

A match yields, per trigger: ``create_task`` -> a Task for that role (priority from the rule, focus
and reasonReference the Observation, reason ``observation``, id keyed by (trigger, Observation) so a
replayed event changes nothing); ``start`` -> the activities started as a completion would;
``flag_plan`` -> the plan's attention flag raised. Cancelled or entered-in-error Observations are
ignored.
"""

from __future__ import annotations

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
    fact = observation_fact(observation)
    if fact.when is None:
        return None
    starts_at = [
        window_start(t.when.observation, fact.when)
        for p in programs for t in p.triggers
        if t.when.observation is not None and t.when.observation.within is not None
        and (t.when.observation.rises_by or t.when.observation.falls_by)
        and (t.when.observation.code.system, t.when.observation.code.code) in fact.codes
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
    fact = observation_fact(observation)
    history = [observation_fact(e) for e in earlier]
    obs_ref = f"Observation/{observation['id']}"
    out: list[Action] = []
    for program, careplan in plans:
        if careplan.get("status") != "active":
            continue
        created: list[CreateTask] = []
        flag = False
        for trigger in program.triggers:
            rule = trigger.when.observation
            if rule is None or not rule_matches(rule, fact, history):
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
