"""The planner: programme + patient + start date -> CarePlan, Goals, CareTeam and Tasks.

A pure function over plain data. It builds FHIR R4 JSON dicts directly (no model objects): the
templates are proven valid by the tests, and building dicts keeps planning a region's 18,000
patients close to the cost of writing the JSON.

Modelled as FHIR Workflow expects: one CarePlan.activity per top-level Task (reference only),
Tasks ``requested``/``order`` with a business identifier (plan, activity, occurrence) and the
role code in ``performerType``; only activities whose window is open at the start become Tasks,
the follow-up sweep opens the rest as their time comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable

from careflow.errors import NotEligible
from careflow.naming import (
    CAREPLAN_IDENTIFIER,
    EXT_OCCURRENCE,
    PROFILE_CAREPLAN,
    PROFILE_CARETEAM,
    PROFILE_GOAL,
    PROFILE_TASK,
    TASK_IDENTIFIER,
    activity_definition_url,
)
from careflow.planning import ids
from careflow.planning.eligibility import ineligibility, is_new_diagnosis, qualifying_conditions
from careflow.planning.patient import PatientContext
from careflow.programs.codes import SNOMED, UCUM
from careflow.programs.durations import parse_duration
from careflow.programs.model import Activity, Coding, Goal, Program, Quantity, Target

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
CARE_PLAN_CATEGORY = {"system": SNOMED, "code": "734163000", "display": "Care plan"}
GOAL_CATEGORY = "http://terminology.hl7.org/CodeSystem/goal-category"
COMPARATORS = {"below": "<", "at_most": "<=", "above": ">", "at_least": ">="}


@dataclass(frozen=True)
class PlanResult:
    """What planning one patient produced; ``careplans`` has one entry per programme."""

    careplans: list[dict[str, Any]]
    careteam: dict[str, Any]
    goals: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def careplan(self) -> dict[str, Any]:
        return self.careplans[0]

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [self.careteam, *self.goals, *self.careplans, *self.tasks]

    def bundle(self) -> dict[str, Any]:
        """A transaction Bundle of PUTs: ids are deterministic, so posting it twice duplicates nothing."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in self.resources
            ],
        }


def coding(c: Coding) -> dict[str, str]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


def _translated(text_en: str, text_nl: str) -> tuple[str, dict[str, Any]]:
    return text_en, {
        "extension": [
            {"url": TRANSLATION, "extension": [{"url": "lang", "valueCode": "nl-BE"}, {"url": "content", "valueString": text_nl}]}
        ]
    }


def _quantity(q: Quantity, comparator: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": q.value, "unit": q.unit, "system": UCUM, "code": q.unit}
    if comparator:
        out["comparator"] = comparator
    return out


def _latest_value(ctx: PatientContext, measure: Coding) -> float | None:
    best = None
    for obs in ctx.observations:
        if obs.value is not None and (measure.system, measure.code) in obs.codes:
            if best is None or (obs.when and best.when and obs.when > best.when):
                best = obs
    return best.value if best else None


def _target(t: Target, ctx: PatientContext, due: date | None) -> dict[str, Any]:
    out: dict[str, Any] = {"measure": {"coding": [coding(t.measure)], "text": t.measure.display or t.measure.code}}
    kind = t.kind
    if kind in COMPARATORS:
        out["detailQuantity"] = _quantity(getattr(t, kind), COMPARATORS[kind])
    elif kind == "between":
        low, high = t.between  # type: ignore[misc]
        out["detailRange"] = {"low": _quantity(low), "high": _quantity(high)}
    else:  # stable_within: around the latest measured value when we know it
        q = t.stable_within
        assert q is not None
        baseline = _latest_value(ctx, t.measure)
        if baseline is None:
            out["detailString"] = f"within {q.value:g} {q.unit} of the baseline"
        else:
            out["detailRange"] = {
                "low": _quantity(Quantity(value=round(baseline - q.value, 3), unit=q.unit)),
                "high": _quantity(Quantity(value=round(baseline + q.value, 3), unit=q.unit)),
            }
    if due:
        out["dueDate"] = due.isoformat()
    return out


def role_concept(program: Program, role_id: str) -> dict[str, Any]:
    role = program.roles[role_id]
    return {"coding": [coding(c) for c in role.codes], "text": role.title.en}


def _owner(program: Program, ctx: PatientContext, role_id: str, careteam_ref: str) -> dict[str, Any]:
    member = ctx.team.get(role_id)
    display = program.roles[role_id].title.en
    return {"reference": member, "display": display} if member else {"reference": careteam_ref, "display": display}


def applies(activity: Activity, program: Program, ctx: PatientContext, start: date) -> bool:
    """Whether ``only_if`` lets this activity into this patient's plan."""
    only = activity.only_if
    if only is None:
        return True
    if only.new_diagnosis is not None and only.new_diagnosis != is_new_diagnosis(program, ctx, start):
        return False
    if only.groups is not None and ctx.group is not None and ctx.group not in only.groups:
        return False
    if only.min_age is not None:
        age = ctx.age_on(start)
        if age is None or age < only.min_age:
            return False
    return True


def build_task(
    program: Program,
    activity: Activity,
    ctx: PatientContext,
    careplan_id: str,
    occurrence: int,
    opens: date,
    authored: date,
) -> dict[str, Any]:
    """One Task for one occurrence of an activity; shared by the planner and the follow-up sweep."""
    tid = ids.task_id(ctx.id, program.id, activity.id, occurrence)
    due = parse_duration(activity.timing.due_within).after(opens)
    description, description_ext = _translated(activity.description.en, activity.description.nl)
    careteam_ref = f"CareTeam/{ids.careteam_id(ctx.id)}"
    return {
        "resourceType": "Task",
        "id": tid,
        "meta": {"profile": [PROFILE_TASK]},
        "extension": [{"url": EXT_OCCURRENCE, "valuePositiveInt": occurrence}],
        "identifier": [{"system": TASK_IDENTIFIER, "value": ids.task_identifier_value(careplan_id, activity.id, occurrence)}],
        "instantiatesCanonical": f"{activity_definition_url(program.url, program.id, activity.id)}|{program.version}",
        "basedOn": [{"reference": f"CarePlan/{careplan_id}"}],
        "status": "requested",
        "intent": "order",
        "priority": activity.priority,
        "code": {"coding": [coding(activity.code)], "text": activity.title.en},
        "description": description,
        "_description": description_ext,
        "for": {"reference": f"Patient/{ctx.id}"},
        "authoredOn": authored.isoformat(),
        "lastModified": authored.isoformat(),
        "owner": _owner(program, ctx, activity.role, careteam_ref),
        "performerType": [role_concept(program, activity.role)],
        "restriction": {"period": {"start": opens.isoformat(), "end": due.isoformat()}},
    }


def _goal(program: Program, goal: Goal, ctx: PatientContext, start: date, addresses: list[dict[str, str]]) -> dict[str, Any]:
    due = parse_duration(goal.due).after(start) if goal.due else None
    text, text_ext = _translated(goal.title.en, goal.title.nl)
    out: dict[str, Any] = {
        "resourceType": "Goal",
        "id": ids.goal_id(ctx.id, program.id, goal.id),
        "meta": {"profile": [PROFILE_GOAL]},
        "lifecycleStatus": "active",
        "category": [{"coding": [{"system": GOAL_CATEGORY, "code": goal.category}]}],
        "description": {"text": text, "_text": text_ext},
        "subject": {"reference": f"Patient/{ctx.id}"},
        "startDate": start.isoformat(),
    }
    if goal.targets:
        out["target"] = [_target(t, ctx, due) for t in goal.targets]
    elif due:
        out["target"] = [{"dueDate": due.isoformat()}]
    if addresses:
        out["addresses"] = addresses
    return out


def _careteam(programs: list[Program], ctx: PatientContext, start: date) -> dict[str, Any]:
    participants: list[dict[str, Any]] = []
    seen: set[str] = set()
    for program in programs:
        for role_id in _roles_in_use(program):
            if role_id in seen:
                continue
            seen.add(role_id)
            p: dict[str, Any] = {"role": [role_concept(program, role_id)], "period": {"start": start.isoformat()}}
            if ctx.team.get(role_id):
                p["member"] = {"reference": ctx.team[role_id]}
            participants.append(p)
    out: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": ids.careteam_id(ctx.id),
        "meta": {"profile": [PROFILE_CARETEAM]},
        "status": "active",
        "name": "Care team",
        "subject": {"reference": f"Patient/{ctx.id}"},
        "period": {"start": start.isoformat()},
        "participant": participants,
    }
    if ctx.organization:
        out["managingOrganization"] = [{"reference": ctx.organization}]
    return out


def _roles_in_use(program: Program) -> list[str]:
    """Roles in declaration order that the programme's activities or triggers hand work to."""
    used = {a.role for a in program.activities}
    for t in program.triggers:
        for r in (t.then.escalate_to, t.then.reassign_to, t.then.create_task.role if t.then.create_task else None):
            if r:
                used.add(r)
    return [r for r in program.roles if r in used]


def first_tasks(program: Program, ctx: PatientContext, careplan_id: str, start: date) -> list[dict[str, Any]]:
    """Tasks for activities whose first window is open at the start and that wait on nothing."""
    out = []
    for activity in program.activities:
        if activity.after or not applies(activity, program, ctx, start):
            continue
        opens = parse_duration(activity.timing.start).after(start)
        if opens <= start:
            out.append(build_task(program, activity, ctx, careplan_id, 1, opens, start))
    return out


def _careplan(program: Program, ctx: PatientContext, start: date, goals: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    cid = ids.careplan_id(ctx.id, program.id)
    title, title_ext = _translated(program.title.en, program.title.nl)
    out: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": cid,
        "meta": {"profile": [PROFILE_CAREPLAN]},
        "identifier": [{"system": CAREPLAN_IDENTIFIER, "value": f"{ctx.id}/{program.id}"}],
        "instantiatesCanonical": [program.canonical],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [CARE_PLAN_CATEGORY], "text": program.title.en}],
        "title": title,
        "_title": title_ext,
        "subject": {"reference": f"Patient/{ctx.id}"},
        "period": {"start": start.isoformat(), "end": parse_duration(program.plan_period).after(start).isoformat()},
        "created": start.isoformat(),
        "careTeam": [{"reference": f"CareTeam/{ids.careteam_id(ctx.id)}"}],
    }
    if program.description:
        out["description"] = program.description.en
    addresses = [{"reference": c.id} for c in qualifying_conditions(program, ctx) if c.id]
    if addresses:
        out["addresses"] = addresses
    if goals:
        out["goal"] = [{"reference": f"Goal/{g['id']}"} for g in goals]
    if tasks:
        out["activity"] = [{"reference": {"reference": f"Task/{t['id']}", "display": t["code"]["text"]}} for t in tasks]
    return out


def plan_all(programs: Iterable[Program], ctx: PatientContext, start: date) -> PlanResult:
    """Plan every programme given for one patient, sharing one CareTeam; NotEligible if any does not apply."""
    progs = list(programs)
    if not progs:
        raise NotEligible("no programme to plan")
    careplans: list[dict[str, Any]] = []
    all_goals: list[dict[str, Any]] = []
    all_tasks: list[dict[str, Any]] = []
    for program in progs:
        reason = ineligibility(program, ctx, start)
        if reason:
            raise NotEligible(f"Patient/{ctx.id} is not eligible for {program.id}: {reason}")
        addresses = [{"reference": c.id} for c in qualifying_conditions(program, ctx) if c.id]
        goals = [_goal(program, g, ctx, start, addresses) for g in program.goals]
        cid = ids.careplan_id(ctx.id, program.id)
        tasks = first_tasks(program, ctx, cid, start)
        careplans.append(_careplan(program, ctx, start, goals, tasks))
        all_goals += goals
        all_tasks += tasks
    return PlanResult(careplans, _careteam(progs, ctx, start), all_goals, all_tasks)


def plan(program: Program, ctx: PatientContext, start: date) -> PlanResult:
    return plan_all([program], ctx, start)
