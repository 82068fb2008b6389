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
    EXT_SHARED_ACTIVITY,
    GOAL_CATEGORY,
    GOAL_CATEGORY_HL7,
    PROFILE_CAREPLAN,
    PROFILE_CARETEAM,
    PROFILE_GOAL,
    PROFILE_SHARED_CAREPLAN,
    PROFILE_TASK,
    SHARED_CAREPLAN_IDENTIFIER,
    TASK_IDENTIFIER,
    activity_definition_url,
)
from careflow.planning import ids
from careflow.planning.eligibility import ineligibility, qualifying_conditions
from careflow.planning.only_if import restriction_holds
from careflow.planning.patient import ConditionFact, PatientContext
from careflow.planning.shared import CONVERSATION_KEY, NO_SHARING, Part, Sharing, shared_key, sharing
from careflow.programs.codes import SNOMED, UCUM
from careflow.programs.durations import Duration, parse_duration
from careflow.programs.model import Activity, Coding, Goal, Program, Quantity, Target, Text
from careflow.programs.seasons import current_season
from careflow.programs.units import display_unit

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
CARE_PLAN_CATEGORY = {"system": SNOMED, "code": "734163000", "display": "Care plan"}
HL7_GOAL_CATEGORIES = frozenset({"dietary", "safety", "behavioral", "nursing", "physiotherapy"})


def goal_category_system(code: str) -> str:
    """HL7's goal-category where it has the code; careflow's own for the rest (physiologic)."""
    return GOAL_CATEGORY_HL7 if code in HL7_GOAL_CATEGORIES else GOAL_CATEGORY
COMPARATORS = {"below": "<", "at_most": "<=", "above": ">", "at_least": ">="}


@dataclass(frozen=True)
class PlanResult:
    """What planning one patient produced: ``careplans`` has one part per programme, ``shared`` the
    patient's shared plan they are parts of (``careflow.planning.shared``)."""

    careplans: list[dict[str, Any]]
    careteam: dict[str, Any]
    goals: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    shared: dict[str, Any] | None = None

    @property
    def careplan(self) -> dict[str, Any]:
        return self.careplans[0]

    @property
    def resources(self) -> list[dict[str, Any]]:
        head = [self.careteam] if self.shared is None else [self.careteam, self.shared]
        return [*head, *self.goals, *self.careplans, *self.tasks]

    def bundle(self) -> dict[str, Any]:
        """A transaction Bundle of create-if-absent PUTs (``ifNoneMatch: *``).

        Ids are deterministic, so posting it twice duplicates nothing; and because each entry only
        creates what is absent, replaying it after the plan has moved on (a Task completed, the
        CarePlan's activity list grown by the sweep) changes nothing: it never moves data backwards."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}", "ifNoneMatch": "*"},
                }
                for r in self.resources
            ],
        }


def coding(c: Coding) -> dict[str, str]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


def _translated(text_en: str, text_nl: str, text_fr: str | None = None) -> tuple[str, dict[str, Any]]:
    """English in the element, Dutch and French (when the programme has it) in HL7 translation
    extensions on ``_element``: every reader of the Task shows it in their own language."""
    return text_en, {"extension": [
        {"url": TRANSLATION, "extension": [{"url": "lang", "valueCode": code}, {"url": "content", "valueString": text}]}
        for code, text in (("nl-BE", text_nl), ("fr-BE", text_fr)) if text
    ]}


def _text(text: Text) -> tuple[str, dict[str, Any]]:
    return _translated(text.en, text.nl, text.fr)


def _quantity(q: Quantity, comparator: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": q.value, "system": UCUM, "code": q.unit}
    if display_unit(q.unit):  # a score has no unit to show (Quantity.unit is for people, code for machines)
        out["unit"] = display_unit(q.unit)
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
    elif kind == "ratio":
        assert t.ratio is not None
        out["detailRatio"] = {"numerator": _quantity(t.ratio.numerator), "denominator": _quantity(t.ratio.denominator)}
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


@dataclass(frozen=True)
class _ActivityTemplate:
    """What every Task of one activity shares; built once per programme, reused for every patient."""

    activity: Activity
    instantiates: str
    code: dict[str, Any]
    description: str
    description_ext: dict[str, Any]
    performer_type: list[dict[str, Any]]
    owner_display: str
    first_open: Duration
    due_within: Duration


@dataclass(frozen=True)
class _Compiled:
    program: Program
    activities: dict[str, _ActivityTemplate]
    roles_in_use: list[str]
    role_concepts: dict[str, dict[str, Any]]
    wanted: dict[str, list[str]]
    title: str
    title_ext: dict[str, Any]
    category: list[dict[str, Any]]
    plan_period: Duration
    goal_texts: dict[str, tuple[str, dict[str, Any]]]
    at_start: list[_ActivityTemplate]  # no dependency, first window opens on the start day
    goal_targets: dict[str, list[dict[str, Any] | None]]  # None where the target needs the patient's baseline
    days: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # per-date parts, memoised (dates repeat)


_COMPILED: dict[int, _Compiled] = {}
_TASK_META = {"profile": [PROFILE_TASK]}
_GOAL_META = {"profile": [PROFILE_GOAL]}
_NOBODY = PatientContext(id="")


def compiled(program: Program) -> _Compiled:
    """Per-programme templates (cached by identity: programmes are frozen)."""
    hit = _COMPILED.get(id(program))
    if hit is not None and hit.program is program:
        return hit
    role_concepts = {r: role_concept(program, r) for r in program.roles}
    acts = {}
    for a in program.activities:
        desc, desc_ext = _text(a.description)
        acts[a.id] = _ActivityTemplate(
            activity=a,
            instantiates=f"{activity_definition_url(program.url, program.id, a.id)}|{program.version}",
            code={"coding": [coding(a.code)], "text": a.title.en, "_text": _text(a.title)[1]},
            description=desc,
            description_ext=desc_ext,
            performer_type=[role_concepts[a.role]],
            owner_display=program.roles[a.role].title.en,
            first_open=parse_duration(a.timing.start),
            due_within=parse_duration(a.timing.due_within),
        )
    title, title_ext = _text(program.title)
    c = _Compiled(
        program=program,
        activities=acts,
        roles_in_use=_roles_in_use(program),
        role_concepts=role_concepts,
        wanted={},
        title=title,
        title_ext=title_ext,
        category=[{"coding": [CARE_PLAN_CATEGORY], "text": program.title.en}],
        plan_period=parse_duration(program.plan_period),
        goal_texts={g.id: _text(g.title) for g in program.goals},
        at_start=[t for t in acts.values() if not t.activity.after and not t.first_open.approx_days],
        goal_targets={
            g.id: [None if t.kind == "stable_within" else _target(t, _NOBODY, None) for t in g.targets] for g in program.goals
        },
    )
    if len(_COMPILED) > 256:
        _COMPILED.clear()
    _COMPILED[id(program)] = c
    return c


def applies(
    activity: Activity, program: Program, ctx: PatientContext, start: date, qualifying: list[ConditionFact] | None = None,
    today: date | None = None,
) -> bool:
    """Whether ``only_if`` lets this activity into this patient's plan (facts judged on ``today``, else
    on the start: see ``careflow.planning.only_if``)."""
    only = activity.only_if
    return only is None or restriction_holds(only, program, ctx, start, qualifying, today)


def build_task(
    program: Program,
    activity: Activity,
    ctx: PatientContext,
    careplan_id: str,
    occurrence: int,
    opens: date,
    authored: date,
    based_on: list[str] | None = None,
) -> dict[str, Any]:
    """One Task for one occurrence of an activity; shared by the planner and the follow-up sweep.

    ``based_on``: the CarePlan ids it serves (its own part first) when the activity is shared by
    several of the patient's programmes; just ``careplan_id`` otherwise.

    Nested template parts are shared between Tasks: treat the result as read-only (copy to change).
    """
    c = compiled(program)
    t = c.activities[activity.id]
    member = ctx.team.get(activity.role)
    owner = member or f"CareTeam/{ids.careteam_id(ctx.id)}"
    key = (activity.id, opens, authored, occurrence)
    dated = c.days.get(key)
    if dated is None:
        if len(c.days) > 50_000:
            c.days.clear()
        day = authored.isoformat()
        dated = c.days[key] = (
            day,
            {"period": {"start": opens.isoformat(), "end": t.due_within.after(opens).isoformat()}},
            [{"url": EXT_OCCURRENCE, "valuePositiveInt": occurrence}]
            + ([{"url": EXT_SHARED_ACTIVITY, "valueId": activity.shared}] if activity.shared else []),
        )
    day, restriction, occurrence_ext = dated
    return {
        "resourceType": "Task",
        "id": ids.task_id(ctx.id, program.id, activity.id, occurrence),
        "meta": _TASK_META,
        "extension": occurrence_ext,
        "identifier": [{"system": TASK_IDENTIFIER, "value": ids.task_identifier_value(careplan_id, activity.id, occurrence)}],
        "instantiatesCanonical": t.instantiates,
        "basedOn": [{"reference": f"CarePlan/{c}"} for c in based_on or (careplan_id,)],
        "status": "requested",
        "intent": "order",
        "priority": activity.priority,
        "code": t.code,
        "description": t.description,
        "_description": t.description_ext,
        "for": {"reference": f"Patient/{ctx.id}"},
        "authoredOn": day,
        "lastModified": day,
        "owner": {"reference": owner, "display": t.owner_display},
        "performerType": t.performer_type,
        "restriction": restriction,
    }


def _goal(program: Program, goal: Goal, ctx: PatientContext, start: date, addresses: list[dict[str, str]]) -> dict[str, Any]:
    c = compiled(program)
    key = (goal.id, start)
    shared = c.days.get(key)
    if shared is None:  # what every patient starting that day shares
        due = parse_duration(goal.due).after(start) if goal.due else None
        due_iso = due.isoformat() if due else None
        text, text_ext = c.goal_texts[goal.id]
        fixed_targets = [
            None if fixed is None else ({**fixed, "dueDate": due_iso} if due_iso else fixed)
            for fixed in c.goal_targets[goal.id]
        ]
        category = [{"coding": [{"system": goal_category_system(goal.category), "code": goal.category}]}]
        shared = c.days[key] = (due, due_iso, fixed_targets, category, {"text": text, "_text": text_ext}, start.isoformat())
    due, due_iso, fixed_targets, category, description, start_iso = shared
    targets = [_target(t, ctx, due) if fixed is None else fixed for t, fixed in zip(goal.targets, fixed_targets)]
    out: dict[str, Any] = {
        "resourceType": "Goal",
        "id": ids.goal_id(ctx.id, program.id, goal.id),
        "meta": _GOAL_META,
        "lifecycleStatus": "active",
        "category": category,
        "description": description,
        "subject": {"reference": f"Patient/{ctx.id}"},
        "startDate": start_iso,
    }
    if targets:
        out["target"] = targets
    elif due:
        out["target"] = [{"dueDate": due.isoformat()}]
    if addresses:
        out["addresses"] = addresses
    return out


def _careteam(programs: list[Program], ctx: PatientContext, start: date) -> dict[str, Any]:
    participants: list[dict[str, Any]] = []
    seen: set[str] = set()
    day = start.isoformat()
    for program in programs:
        c = compiled(program)
        for role_id in c.roles_in_use:
            if role_id in seen:
                continue
            seen.add(role_id)
            p: dict[str, Any] = {"role": [c.role_concepts[role_id]], "period": {"start": day}}
            member = ctx.team.get(role_id)
            if member:
                p["member"] = {"reference": member}
            participants.append(p)
    out: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": ids.careteam_id(ctx.id),
        "meta": {"profile": [PROFILE_CARETEAM]},
        "status": "active",
        "name": "Care team",
        "subject": {"reference": f"Patient/{ctx.id}"},
        "period": {"start": day},
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


def first_tasks(
    program: Program, ctx: PatientContext, careplan_id: str, start: date, qualifying: list[ConditionFact] | None = None,
    share: Sharing = NO_SHARING, covered: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Tasks for activities whose first window is open at the start and that wait on nothing (a
    seasonal one only when the plan starts inside its season). A shared activity is opened by the
    programme leading its key only, and not at all when ``covered`` (a Task of the key is open)."""
    out = []
    for t in compiled(program).at_start:
        activity = t.activity
        season = activity.timing.season
        if season is not None and current_season(season, start, start, None, activity.timing.times) is None:
            continue  # the plan starts between seasons: the sweep opens it when the season comes
        if activity.shared and (activity.shared in covered or not share.leads(program, activity)):
            continue
        if activity.only_if and not applies(activity, program, ctx, start, qualifying):
            continue
        based_on = share.based_on(activity, careplan_id) if activity.shared else None
        out.append(build_task(program, activity, ctx, careplan_id, 1, start, start, based_on))
    return out


def _careplan(
    program: Program,
    ctx: PatientContext,
    start: date,
    addresses: list[dict[str, str]],
    goals: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    status: str = "active",
) -> dict[str, Any]:
    c = compiled(program)
    cid = ids.careplan_id(ctx.id, program.id)
    day = start.isoformat()
    out: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": cid,
        "meta": {"profile": [PROFILE_CAREPLAN]},
        "identifier": [{"system": CAREPLAN_IDENTIFIER, "value": f"{ctx.id}/{program.id}"}],
        "instantiatesCanonical": [program.canonical],
        "status": status,
        "intent": "plan",
        "category": c.category,
        "title": c.title,
        "_title": c.title_ext,
        "subject": {"reference": f"Patient/{ctx.id}"},
        "period": {"start": day, "end": c.plan_period.after(start).isoformat()},
        "created": day,
        "careTeam": [{"reference": f"CareTeam/{ids.careteam_id(ctx.id)}"}],
        "partOf": [{"reference": f"CarePlan/{ids.shared_careplan_id(ctx.id)}"}],
    }
    if program.description:
        out["description"] = program.description.en
    if addresses:
        out["addresses"] = addresses
    if goals:
        out["goal"] = [{"reference": f"Goal/{g['id']}"} for g in goals]
    if tasks:
        out["activity"] = [{"reference": {"reference": f"Task/{t['id']}", "display": t["code"]["text"]}} for t in tasks]
    return out


SHARED_TITLE = _translated("Shared care plan", "Gedeeld zorgplan", "Plan de soins partagé")


def shared_careplan(ctx: PatientContext, start: date, goals: list[dict[str, Any]],
                    addresses: list[dict[str, str]]) -> dict[str, Any]:
    """The patient's one shared care plan: the whole the programme parts belong to (``partOf``), with
    every goal, the conditions it addresses and the one CareTeam. Open-ended: it lasts while a part
    does. Its activities live in the parts."""
    day = start.isoformat()
    title, title_ext = SHARED_TITLE
    out: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": ids.shared_careplan_id(ctx.id),
        "meta": {"profile": [PROFILE_SHARED_CAREPLAN]},
        "identifier": [{"system": SHARED_CAREPLAN_IDENTIFIER, "value": ctx.id}],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [CARE_PLAN_CATEGORY], "text": title}],
        "title": title,
        "_title": title_ext,
        "subject": {"reference": f"Patient/{ctx.id}"},
        "period": {"start": day},
        "created": day,
        "careTeam": [{"reference": f"CareTeam/{ids.careteam_id(ctx.id)}"}],
    }
    if addresses:
        out["addresses"] = addresses
    if goals:
        out["goal"] = [{"reference": f"Goal/{g['id']}"} for g in goals]
    return out


def plan_all(
    programs: Iterable[Program], ctx: PatientContext, start: date, *,
    existing: Iterable[Part] = (), open_shared: Iterable[str] = (), draft: bool = False,
) -> PlanResult:
    """Plan every programme given for one patient as parts of one shared plan, sharing one CareTeam;
    NotEligible if any does not apply.

    ``existing``: the patient's active parts from earlier enrolments (they take part in choosing who
    leads a shared activity); ``open_shared``: shared keys of which the patient has an open Task, so
    no second one is opened beside it. ``draft``: the plan of an inclusion (``careflow.planning.
    inclusion``): parts and whole in ``draft`` with only the care-planning conversation opened (a
    plan whose programmes have no such conversation is active at once).

    The output's nested template parts are shared between resources: treat it as read-only.
    """
    progs = list(programs)
    if not progs:
        raise NotEligible("no programme to plan")
    careplans: list[dict[str, Any]] = []
    all_goals: list[dict[str, Any]] = []
    all_tasks: list[dict[str, Any]] = []
    all_addresses: list[dict[str, str]] = []
    qualifying_of = {}
    for program in progs:
        qualifying = qualifying_of[program.id] = qualifying_conditions(program, ctx)
        reason = ineligibility(program, ctx, start, qualifying)
        if reason:
            raise NotEligible(f"Patient/{ctx.id} is not eligible for {program.id}: {reason}")
    share = sharing([*existing, *(Part(p, ids.careplan_id(ctx.id, p.id), start) for p in progs)], ctx, start)
    covered = frozenset(open_shared)
    draft = draft and any(p.shared_activity(CONVERSATION_KEY) is not None for p in progs)
    for program in progs:
        qualifying = qualifying_of[program.id]
        addresses = [{"reference": c.id} for c in qualifying if c.id]
        goals = [_goal(program, g, ctx, start, addresses) for g in program.goals]
        cid = ids.careplan_id(ctx.id, program.id)
        tasks = first_tasks(program, ctx, cid, start, qualifying, share, covered)
        if draft:
            tasks = [t for t in tasks if shared_key(t) == CONVERSATION_KEY]
        careplans.append(_careplan(program, ctx, start, addresses, goals, tasks, "draft" if draft else "active"))
        all_goals += goals
        all_tasks += tasks
        all_addresses += [a for a in addresses if a not in all_addresses]
    for task in all_tasks:  # a shared Task is an activity of every part it serves
        for ref in task["basedOn"][1:]:
            part = next((cp for cp in careplans if f"CarePlan/{cp['id']}" == ref["reference"]), None)
            if part is not None:
                part["activity"] = [*part.get("activity", ()),
                                    {"reference": {"reference": f"Task/{task['id']}", "display": task["code"]["text"]}}]
    whole = shared_careplan(ctx, start, all_goals, all_addresses)
    if draft:
        whole["status"] = "draft"
    return PlanResult(careplans, _careteam(progs, ctx, start), all_goals, all_tasks, whole)


def plan(program: Program, ctx: PatientContext, start: date) -> PlanResult:
    return plan_all([program], ctx, start)
