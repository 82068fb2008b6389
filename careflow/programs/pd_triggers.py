"""Programme triggers as PlanDefinition actions, and back.

Each trigger becomes one top-level action (id ``trigger-<id>``) whose ``trigger`` holds a standard
TriggerDefinition and whose nested ``action``s are the steps of its ``then``:

* when overdue   -> ``periodic`` (checked daily); activity and ``by`` in extensions
* when completed -> ``named-event`` ``task-completed``; activity in an extension
* when rejected  -> ``named-event`` ``task-rejected``; activity (or ``any``) in an extension
* when discharged -> ``named-event`` ``hospital-discharge`` with a DataRequirement on Encounter
* when observation -> ``data-changed`` with a DataRequirement on Observation filtered by the rule's
  code(s); the test (threshold, change, baseline, coded value, persistence) in an ``observation-rule``
  extension and, where FHIRPath on one resource can say it, a ``condition``

The ``then`` steps are nested actions so a FHIR reader sees what happens, typed with the standard
action-type codes: ``create`` for escalate_to / create_task / start (start points at the activity's
ActivityDefinition), ``update`` for reassign_to and flag_plan. A ``then-step`` extension on each says
which careflow step it is, since create-an-escalation and create-a-task look alike in FHIR. The
``then.priority`` is the trigger action's own ``priority``: how urgently its response is handled.
"""

from __future__ import annotations

from typing import Any, Callable

from careflow.naming import (
    ACTION_TYPE,
    CAREPLAN_FLAG,
    EXT_DUE_WITHIN,
    EXT_OBSERVATION_RULE,
    EXT_OVERDUE_BY,
    EXT_THEN_STEP,
    EXT_TRIGGER_ACTIVITY,
)
from careflow.programs.model import THRESHOLDS
from careflow.programs.pd_datatypes import (
    Json,
    Node,
    coding,
    concept,
    duration,
    number_text,
    quantity,
    read_coding,
    read_duration,
    read_quantity,
    read_single_coding,
    read_text,
    text_element,
)
from careflow.programs.pd_only_if import only_if_condition, read_only_if
from careflow.programs.pd_roles import participant, read_participant_role

TRIGGER_PREFIX = "trigger-"
_DAILY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
_EVENTS = {"completed": "task-completed", "rejected": "task-rejected"}
_DISCHARGE = "hospital-discharge"
_RULE_QUANTITIES = (
    ("above", "above"), ("below", "below"), ("at_least", "at-least"), ("at_most", "at-most"),
    ("rises_by", "rises-by"), ("falls_by", "falls-by"),
    ("below_baseline", "below-baseline"), ("above_baseline", "above-baseline"),
)
_STEPS = ("escalate", "create-task", "start", "reassign", "flag-plan")


def _action_type(code: str) -> Json:
    return {"coding": [{"system": ACTION_TYPE, "code": code}]}


def _step(kind: str) -> Json:
    return {"url": EXT_THEN_STEP, "valueCode": kind}


# ---------------------------------------------------------------- writing


def _quoted(text: str) -> str:
    """Escape a string for a single-quoted FHIRPath literal."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _observation_condition(rule: Any) -> Json | None:
    if rule.persists is not None:
        return None  # repeated measurements: FHIRPath on one resource cannot say it
    threshold = next((k for k in THRESHOLDS if getattr(rule, k) is not None), None)
    if threshold is not None:
        op, q = THRESHOLDS[threshold], getattr(rule, threshold)
        text = f"value.ofType(Quantity) {op} {number_text(q.value)} '{_quoted(q.unit)}'"
        said = f"the value is {threshold.replace('_', ' ')} {number_text(q.value)} {q.unit}"
    elif rule.value_in is not None:
        tests = [f"(system = '{_quoted(c.system)}' and code = '{_quoted(c.code)}')" for c in rule.value_in]
        text = f"value.ofType(CodeableConcept).coding.where({' or '.join(tests)}).exists()" if tests else "false"
        said = "the coded value is one of the listed codes"
    else:
        return None  # a change or a baseline needs earlier observations: FHIRPath on one resource cannot say it
    return {"description": f"Fires when {said}.", "language": "text/fhirpath", "expression": text}


def _observation_trigger(rule: Any) -> Json:
    parts: list[Json] = []
    for attr, url in _RULE_QUANTITIES:
        q = getattr(rule, attr)
        if q is not None:
            parts.append({"url": url, "valueQuantity": quantity(q)})
    if rule.value_in is not None:
        cc: Json = {"coding": [coding(c) for c in rule.value_in]} if rule.value_in else {}
        cc["text"] = "one of: " + ", ".join(c.display or c.code for c in rule.value_in) if rule.value_in else "no value"
        parts.append({"url": "value-in", "valueCodeableConcept": cc})
    if rule.within is not None:
        parts.append({"url": "within", "valueDuration": duration(rule.within)})
    if rule.persists is not None:
        if rule.persists.times is not None and rule.persists.within is not None:
            parts.append({"url": "persists-times", "valuePositiveInt": rule.persists.times})
            parts.append({"url": "persists-within", "valueDuration": duration(rule.persists.within)})
        if rule.persists.lasting is not None:
            parts.append({"url": "persists-lasting", "valueDuration": duration(rule.persists.lasting)})
    out: Json = {
        "extension": [{"url": EXT_OBSERVATION_RULE, "extension": parts}],
        "type": "data-changed",
        "name": "observation",
        "data": [{"type": "Observation", "codeFilter": [{"path": "code", "code": [coding(c) for c in rule.codes]}]}],
    }
    condition = _observation_condition(rule)
    if condition is not None:
        out["condition"] = condition
    return out


def trigger_definition(when: Any) -> Json:
    kind = when.kind
    if kind == "overdue":
        return {
            "extension": [
                {"url": EXT_TRIGGER_ACTIVITY, "valueCode": when.overdue.activity},
                {"url": EXT_OVERDUE_BY, "valueDuration": duration(when.overdue.by)},
            ],
            "type": "periodic",
            "name": "task-overdue",
            "timingTiming": _DAILY,
        }
    if kind == "discharged":
        return {"type": "named-event", "name": _DISCHARGE, "data": [{"type": "Encounter"}]}
    if kind in _EVENTS:
        return {
            "extension": [{"url": EXT_TRIGGER_ACTIVITY, "valueCode": getattr(when, kind)}],
            "type": "named-event",
            "name": _EVENTS[kind],
        }
    return _observation_trigger(when.observation)


def then_actions(then: Any, roles: dict[str, Any], canonical: Callable[[str], str]) -> list[Json]:
    out: list[Json] = []
    if then.escalate_to is not None:
        out.append({"extension": [_step("escalate")], "type": _action_type("create"), "participant": [participant(then.escalate_to, roles)]})
    if then.create_task is not None:
        t = then.create_task
        step: Json = {
            "extension": [_step("create-task"), {"url": EXT_DUE_WITHIN, "valueDuration": duration(t.due_within)}],
            **text_element("title", t.title),
        }
        if t.description is not None:
            step.update(text_element("description", t.description))
        if t.code is not None:
            step["code"] = [concept(t.code)]
        step.update({"priority": t.priority, "type": _action_type("create"), "participant": [participant(t.role, roles)]})
        out.append(step)
    for activity_id in then.start:
        out.append({"extension": [_step("start")], "type": _action_type("create"), "definitionCanonical": canonical(activity_id)})
    if then.reassign_to is not None:
        out.append({"extension": [_step("reassign")], "type": _action_type("update"), "participant": [participant(then.reassign_to, roles)]})
    if then.flag_plan:
        out.append(
            {
                "extension": [_step("flag-plan")],
                "type": _action_type("update"),
                "code": [{"coding": [{"system": CAREPLAN_FLAG, "code": "attention", "display": "Needs attention"}]}],
            }
        )
    return out


def trigger_action(trigger: Any, roles: dict[str, Any], canonical: Callable[[str], str]) -> Json:
    out: Json = {"id": f"{TRIGGER_PREFIX}{trigger.id}"}
    if trigger.title is not None:
        out.update(text_element("title", trigger.title))
    if trigger.then.priority is not None:
        out["priority"] = trigger.then.priority
    out["trigger"] = [trigger_definition(trigger.when)]
    if trigger.only_if is not None:
        out["condition"] = [only_if_condition(trigger.only_if)]
    out["action"] = then_actions(trigger.then, roles, canonical)
    return out


# ---------------------------------------------------------------- reading


def _activity_ref(td: Node) -> str:
    ext = td.extension(EXT_TRIGGER_ACTIVITY)
    if ext is None:
        raise td.fail(f"needs a {EXT_TRIGGER_ACTIVITY} extension naming the activity (or any)", "extension")
    return ext.req_string("valueCode")


def _read_rule(td: Node) -> Json:
    data = td.children("data")
    if len(data) != 1 or data[0].string("type") != "Observation":
        raise td.fail("an observation trigger needs exactly one data requirement of type Observation", "data")
    filters = [f for f in data[0].children("codeFilter") if f.string("path") == "code"]
    if len(filters) != 1:
        raise data[0].fail("needs exactly one codeFilter on path code", "codeFilter")
    codes = filters[0].children("code")
    if not codes:
        raise filters[0].fail("must hold at least one code", "code")
    read = [read_coding(c) for c in codes]
    rule: Json = {"code": read[0] if len(read) == 1 else read}
    ext = td.extension(EXT_OBSERVATION_RULE)
    if ext is None:
        raise td.fail(f"needs a {EXT_OBSERVATION_RULE} extension saying when it fires", "extension")
    for attr, url in _RULE_QUANTITIES:
        part = ext.extension(url)
        if part is not None:
            rule[attr] = read_quantity(part.req_child("valueQuantity"))
    value_in = ext.extension("value-in")
    if value_in is not None:
        rule["value_in"] = [read_coding(c) for c in value_in.req_child("valueCodeableConcept").children("coding")]
    within = ext.extension("within")
    if within is not None:
        rule["within"] = read_duration(within.req_child("valueDuration"))
    times, window = ext.extension("persists-times"), ext.extension("persists-within")
    lasting = ext.extension("persists-lasting")
    if (times is None) != (window is None):
        raise ext.fail("persists-times and persists-within come together", "extension")
    persists: Json = {}
    if times is not None and window is not None:
        count = times.integer("valuePositiveInt")
        if count is None:
            raise times.fail("is missing", "valuePositiveInt")
        persists.update({"times": count, "within": read_duration(window.req_child("valueDuration"))})
    if lasting is not None:
        persists["lasting"] = read_duration(lasting.req_child("valueDuration"))
    if persists:
        rule["persists"] = persists
    return rule


def read_when(td: Node) -> Json:
    kind = td.string("type")
    name = td.string("name")
    if kind == "periodic" and name == "task-overdue":
        by = td.extension(EXT_OVERDUE_BY)
        if by is None:
            raise td.fail(f"an overdue trigger needs a {EXT_OVERDUE_BY} extension", "extension")
        return {"overdue": {"activity": _activity_ref(td), "by": read_duration(by.req_child("valueDuration"))}}
    if kind == "named-event" and name == _DISCHARGE:
        return {"discharged": "hospital"}
    if kind == "named-event":
        for when_kind, event in _EVENTS.items():
            if name == event:
                return {when_kind: _activity_ref(td)}
        raise td.fail(f"careflow knows the named events {', '.join([*_EVENTS.values(), _DISCHARGE])}, not {name!r}", "name")
    if kind in ("data-changed", "data-added", "data-modified"):
        return {"observation": _read_rule(td)}
    raise td.fail(
        "careflow reads periodic task-overdue, named-event task-completed / task-rejected / hospital-discharge and data-changed "
        f"Observation triggers, not {kind!r} {name or ''}".rstrip(),
        "type",
    )


def _read_then(action: Node, roles: dict[str, Json], activity_of: Callable[[Node], str]) -> Json:
    then: Json = {}
    steps = action.children("action")
    if not steps:
        raise action.fail("a trigger action needs nested actions saying what happens", "action")
    for step in steps:
        marker = step.extension(EXT_THEN_STEP)
        kind = marker.string("valueCode") if marker else None
        if kind not in _STEPS:
            raise step.fail(f"needs a {EXT_THEN_STEP} extension with one of {', '.join(_STEPS)}", "extension")
        if kind == "escalate":
            then["escalate_to"] = read_participant_role(step, roles)
        elif kind == "reassign":
            then["reassign_to"] = read_participant_role(step, roles)
        elif kind == "start":
            then.setdefault("start", []).append(activity_of(step))
        elif kind == "flag-plan":
            then["flag_plan"] = True
        else:
            task: Json = {"role": read_participant_role(step, roles), "title": read_text(step, "title", required=True)}
            description = read_text(step, "description")
            if description is not None:
                task["description"] = description
            codes = step.children("code")
            if len(codes) > 1:
                raise step.fail("a new task has at most one code", "code")
            if codes:
                task["code"] = read_single_coding(codes[0])
            priority = step.string("priority")
            if priority is not None:
                task["priority"] = priority
            due = step.extension(EXT_DUE_WITHIN)
            if due is not None:
                task["due_within"] = read_duration(due.req_child("valueDuration"))
            then["create_task"] = task
    priority = action.string("priority")
    if priority is not None:
        then["priority"] = priority
    return then


def read_trigger_action(action: Node, roles: dict[str, Json], activity_of: Callable[[Node], str]) -> Json:
    """The programme trigger mapping for an action written by :func:`trigger_action`."""
    action_id = action.req_string("id")
    if not action_id.startswith(TRIGGER_PREFIX):
        raise action.fail(f"a trigger action's id starts with {TRIGGER_PREFIX!r}", "id")
    tds = action.children("trigger")
    if len(tds) != 1:
        raise action.fail(f"needs exactly one trigger, found {len(tds)}", "trigger")
    out: Json = {"id": action_id[len(TRIGGER_PREFIX):]}
    title = read_text(action, "title")
    if title is not None:
        out["title"] = title
    out["when"] = read_when(tds[0])
    conditions = action.children("condition")
    if len(conditions) > 1:
        raise action.fail("careflow reads one applicability condition per trigger", "condition")
    if conditions:
        out["only_if"] = read_only_if(conditions[0])
    out["then"] = _read_then(action, roles, activity_of)
    return out
