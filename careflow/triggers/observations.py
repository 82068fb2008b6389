"""Observation rules: a new measurement that crosses a programme threshold raises a follow-up.

For each of the patient's active plans, each ``observation`` trigger of its programme is tested
against the new Observation when it carries one of the rule's codes (a rule may list several codes for
one measurement: eGFR by CKD-EPI 2021 98979-8, CKD-EPI 62238-1 and MDRD 33914-3; earlier values of any
of them count as the same series):

* ``above`` / ``below``: the value, converted to the rule's unit (``units.convert``), strictly above /
  below the threshold; ``at_least`` / ``at_most`` include it; units that do not convert never match;
* ``rises_by`` / ``falls_by`` with ``within``: the value compared with the lowest (rise) / highest
  (fall) earlier value of the same code effective in [effective - within, effective); no earlier
  value in the window, no match;
* ``below_baseline`` / ``above_baseline`` with ``within``: the value more than the margin below /
  above the patient's own baseline, the median of their earlier values in [effective - within,
  effective); fewer than three earlier values, no baseline, no match;
* ``value_in``: a coded value (valueCodeableConcept) carrying one of the listed codes (e.g. the HL7
  Belgium patient-monitoring symptom severity answers);
* ``persists: {times, within}``: the test must also have held for the measurements before this one
  so that ``times`` crossing measurements fall within ``within`` in one unbroken run (no measurement
  between them that does not cross); the rule fires on the measurement that first completes that, and
  stays quiet for the rest of the run, so a patient living at a low SpO2 raises one Task, not one per
  measurement. ``lasting`` asks instead (or as well) that the run span that long from its first
  crossing measurement ("eGFR below 45, confirmed after three months"). A run is looked for back to ten
  windows (two ``lasting`` spans) before the measurement.

A trigger's ``only_if`` (the same restrictions as an activity's, facts judged on the day) keeps the
rule to some patients: "LDL at or above 55 mg/dL" only with established cardiovascular disease.

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
from statistics import median
from typing import Any, Iterable, Sequence

from careflow.planning.only_if import restriction_holds
from careflow.planning.patient import ObservationFact, PatientContext, observation_fact
from careflow.programs.durations import parse_duration
from careflow.programs.model import WINDOWED_TESTS, ObservationRule, Program
from careflow.triggers.actions import Action, CreateTask
from careflow.triggers.plan_status import plan_update
from careflow.triggers.sweep import day_of
from careflow.triggers.task_events import fired
from careflow.triggers.units import convert

IGNORED_STATUSES = frozenset({"cancelled", "entered-in-error"})
BASELINE_MIN_VALUES = 3  # earlier values needed before the median is the patient's baseline
RUN_LOOK_BACK = 10  # a persistence rule reads back this many of its windows to find where a run began


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _back(within: str, when: datetime) -> datetime:
    """``when`` minus a calendar duration (months clamp to the month's end), same time of day."""
    day = parse_duration(within).before(when.date())
    return _aware(when).replace(year=day.year, month=day.month, day=day.day)


def window_start(rule: ObservationRule, when: datetime) -> datetime:
    assert rule.within is not None
    return _back(rule.within, when)


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


def rule_codes(rule: ObservationRule) -> frozenset[tuple[str, str]]:
    return frozenset((c.system, c.code) for c in rule.codes)


def _earlier_values(rule: ObservationRule, obs: ObservationFact, earlier: Iterable[ObservationFact],
                    unit: str) -> list[float]:
    """Values of the rule's codes effective in [obs - within, obs), other than obs itself."""
    assert obs.when is not None
    codes = rule_codes(rule)
    when = _aware(obs.when)
    since = window_start(rule, obs.when)
    return [
        x for e in earlier
        if e.id != obs.id and codes.intersection(e.codes) and e.when is not None and since <= _aware(e.when) < when
        and (x := _value(e, unit)) is not None
    ]


def _crosses(rule: ObservationRule, obs: ObservationFact, earlier: Iterable[ObservationFact]) -> bool:
    """The rule's one-measurement test on ``obs`` (persistence aside); ``obs`` is of the rule's codes."""
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
    delta = rule.rises_by or rule.falls_by or rule.below_baseline or rule.above_baseline
    if delta is None or obs.when is None:
        return False
    v = _value(obs, delta.unit)
    if v is None:
        return False
    before = _earlier_values(rule, obs, earlier, delta.unit)
    if rule.rises_by is not None or rule.falls_by is not None:
        if not before:
            return False
        if rule.rises_by is not None:
            return v - min(before) >= delta.value - 1e-9
        return max(before) - v >= delta.value - 1e-9
    if len(before) < BASELINE_MIN_VALUES:
        return False  # too few earlier values to know the patient's own baseline
    baseline = median(before)
    if rule.below_baseline is not None:
        return baseline - v > delta.value + 1e-9
    return v - baseline > delta.value + 1e-9


def _series(rule: ObservationRule, obs: ObservationFact, earlier: Iterable[ObservationFact]) -> list[ObservationFact]:
    """The dated measurements of the rule's codes up to ``obs`` (one per Observation), oldest first,
    ``obs`` last."""
    assert obs.when is not None
    codes = rule_codes(rule)
    when = _aware(obs.when)
    seen = {obs.id}
    out = []
    for e in earlier:
        if e.id in seen or e.when is None or not codes.intersection(e.codes) or _aware(e.when) > when:
            continue
        seen.add(e.id)
        out.append(e)
    out.sort(key=lambda e: (_aware(e.when), str(e.id)))  # type: ignore[arg-type]
    return [*out, obs]


def _persists(rule: ObservationRule, obs: ObservationFact, earlier: list[ObservationFact]) -> bool:
    """Fires on the measurement that first makes the test hold ``times`` times within the window (and
    the run last ``lasting``) in a run of crossing measurements; the ones after it in the run stay quiet."""
    assert rule.persists is not None and obs.when is not None
    times, within, lasting = rule.persists.times, rule.persists.within, rule.persists.lasting
    series = _series(rule, obs, earlier)
    run: list[ObservationFact] = []
    for m in reversed(series):
        if not _crosses(rule, m, earlier):
            break
        run.append(m)
    run.reverse()
    if not run or run[-1] is not obs:
        return False

    first = run[0].when
    assert first is not None  # the series holds dated measurements only

    def persistent(i: int) -> bool:
        when = run[i].when
        assert when is not None
        if lasting is not None and _back(lasting, when) < _aware(first):
            return False
        if times is None or within is None:
            return True
        since = _back(within, when)
        return sum(1 for m in run[: i + 1] if m.when is not None and _aware(m.when) >= since) >= times

    return persistent(len(run) - 1) and not any(persistent(i) for i in range(len(run) - 1))


def rule_matches(rule: ObservationRule, obs: ObservationFact, earlier: Iterable[ObservationFact]) -> bool:
    """Whether the new Observation ``obs`` fires ``rule`` given the patient's ``earlier`` ones."""
    if not rule_codes(rule).intersection(obs.codes):
        return False
    if rule.persists is None:
        return _crosses(rule, obs, earlier)
    if obs.when is None:
        return False
    history = list(earlier)
    return _crosses(rule, obs, history) and _persists(rule, obs, history)


def _look_back(rule: ObservationRule, when: datetime) -> datetime | None:
    """How far back the earlier Observations this rule reads reach (None: it reads none)."""
    starts_at: list[datetime] = []
    own = window_start(rule, when) if rule.test in WINDOWED_TESTS else None
    if rule.persists is not None:
        run_start = when
        if rule.persists.within is not None:
            for _ in range(RUN_LOOK_BACK):
                run_start = _back(rule.persists.within, run_start)
        if rule.persists.lasting is not None:  # two spans back: a run that began earlier is found persistent
            run_start = min(run_start, _back(rule.persists.lasting, _back(rule.persists.lasting, when)))
        starts_at.append(run_start if own is None else min(run_start, _back(rule.within or "P0D", run_start)))
    elif own is not None:
        starts_at.append(own)
    return min(starts_at) if starts_at else None


def _rules_for(observation: dict[str, Any], programs: Iterable[Program]) -> list[ObservationRule]:
    codes = {c for f in measurements(observation) for c in f.codes}
    return [
        t.when.observation for p in programs for t in p.triggers
        if t.when.observation is not None and rule_codes(t.when.observation).intersection(codes)
    ]


def history_since(observation: dict[str, Any], programs: Iterable[Program]) -> datetime | None:
    """How far back earlier Observations are needed to test this one (None: no rule reads history)."""
    when = measurements(observation)[0].when
    if when is None:
        return None
    starts_at = [s for rule in _rules_for(observation, programs) if (s := _look_back(rule, when)) is not None]
    return min(starts_at) if starts_at else None


def history_codes(observation: dict[str, Any], programs: Iterable[Program]) -> list[str]:
    """``system|code`` of the earlier Observations the rules on this one read: the codes of every rule
    it matches (eGFR by CKD-EPI compares with an earlier eGFR by MDRD in the same rule), sorted."""
    return sorted({f"{c.system}|{c.code}" for rule in _rules_for(observation, programs) for c in rule.codes})


def _plan_start(careplan: dict[str, Any]) -> date | None:
    start = (careplan.get("period") or {}).get("start")
    try:
        return date.fromisoformat(start[:10]) if isinstance(start, str) else None
    except ValueError:
        return None


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
        plan_start = _plan_start(careplan) or today
        for trigger in program.triggers:
            rule = trigger.when.observation
            if rule is None or not any(rule_matches(rule, fact, history) for fact in facts):
                continue
            if trigger.only_if is not None and not restriction_holds(trigger.only_if, program, ctx, plan_start, on=today):
                continue
            tasks, flags = fired(program, careplan, ctx, trigger, cause=str(observation["id"]), focus=obs_ref,
                                 reason="observation", today=today)
            created += tasks
            flag = flag or flags
        out += created
        update = plan_update(careplan, today, new_tasks=[c.resource for c in created], raise_flag=flag)
        if update is not None:
            out.append(update)
    return out
