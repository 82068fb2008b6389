"""Compile a care programme to a FHIR R4 PlanDefinition with ActivityDefinitions, and read it back.

Why: other systems (and other careflow servers) exchange care pathways as PlanDefinitions, so the
programme must be publishable in FHIR and come back *unchanged*: ``from_bundle(to_bundle(p)) == p``.

Standard elements carry everything FHIR has a place for: url, version, name, title (Dutch in the
translation extension), status, type ``clinical-protocol``, description, the qualifying conditions
as ``useContext`` ``focus`` and the age as ``useContext`` ``age``, goals with measures, comparator
quantities / ranges and due durations, one action per activity (code, priority, participant role
codes, ``timingDuration`` or a repeating ``timingTiming``, ``relatedAction`` ``after-end`` for
dependencies, an applicability ``condition`` in FHIRPath for ``only_if``) pointing at its
ActivityDefinition, and one action per trigger (see ``pd_triggers``).

careflow semantics FHIR has no element for ride in small structured extensions whose URLs live in
``careflow.naming``: the plan period, eligibility groups and the new-diagnosis window, the role
registry (``pd_roles``), ``due_within``, the start offset of a repeating activity, a stable-within
target, trigger thresholds, patient instructions (on the ActivityDefinition: FHIR's Task-kind
definition has no patient-facing text), and the exact ISO text of a duration that a FHIR Duration
cannot spell (P1Y6M is 18 months, but not the same text).

Where defaults exist, the compiler writes the value anyway, so "absent" on reading means a foreign
PlanDefinition left it out and the programme default applies.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from careflow.errors import PlanDefinitionError, ProgramNotExportable
from careflow.naming import (
    ACTION_TYPE,
    EXT_DUE_WITHIN,
    EXT_ELIGIBILITY,
    EXT_PATIENT_INSTRUCTION,
    EXT_PLAN_PERIOD,
    EXT_SEASON,
    EXT_SHARED_ACTIVITY,
    EXT_START_OFFSET,
    EXT_TARGET_RATIO,
    EXT_TARGET_STABLE_WITHIN,
    GOAL_CATEGORY,
    GOAL_CATEGORY_HL7,
    PLAN_DEFINITION_TYPE,
    POPULATION_GROUP,
    RESOURCE_TYPES,
    USAGE_CONTEXT_TYPE,
    activity_definition_url,
)
from careflow.programs.codes import UCUM
from careflow.programs.model import Activity, Goal, Program, Target
from careflow.programs.pd_datatypes import (
    Json,
    Node,
    concept,
    duration,
    number_text,
    period_fields,
    quantity,
    read_duration,
    read_period,
    read_quantity,
    read_single_coding,
    read_text,
    text_element,
    translations,
)
from careflow.programs.pd_only_if import only_if_condition, read_only_if
from careflow.programs.pd_roles import participant, read_participant_role, read_role_registry, role_concept, role_registry
from careflow.programs.pd_triggers import TRIGGER_PREFIX, read_trigger_action, trigger_action

_COMPARATORS = {"below": "<", "at_most": "<=", "above": ">", "at_least": ">="}
_KIND_OF_COMPARATOR = {v: k for k, v in _COMPARATORS.items()}
_HL7_GOAL_CATEGORIES = {"dietary", "safety", "behavioral", "nursing"}
_MAX_ID = 64


def _name(*ids: str) -> str:
    """A computable FHIR name (``[A-Z][A-Za-z0-9_]*``) from careflow ids: heart-failure -> HeartFailure."""
    return "".join(part[:1].upper() + part[1:] for i in ids for part in i.split("-"))


def _canonical(program: Program, activity_id: str) -> str:
    return f"{activity_definition_url(program.url, program.id, activity_id)}|{program.version}"


def _ucum_years(n: int) -> Json:
    return {"value": n, "unit": "years", "system": UCUM, "code": "a"}


def _usage(code: str) -> Json:
    return {"system": USAGE_CONTEXT_TYPE, "code": code}


# ---------------------------------------------------------------- writing


def _check_exportable(program: Program) -> None:
    """Element ids must be unique within a resource, and resource ids at most 64 characters."""
    seen: dict[str, str] = {}
    parts = [(g.id, f"goal {g.id!r}") for g in program.goals]
    parts += [(a.id, f"activity {a.id!r}") for a in program.activities]
    parts += [(f"{TRIGGER_PREFIX}{t.id}", f"trigger {t.id!r}") for t in program.triggers]
    for element_id, what in parts:
        if element_id in seen:
            raise ProgramNotExportable(
                f"programme {program.id!r}: {what} and {seen[element_id]} would share the PlanDefinition "
                f"element id {element_id!r}; rename one"
            )
        seen[element_id] = what
    for a in program.activities:
        if len(f"{program.id}-{a.id}") > _MAX_ID:
            raise ProgramNotExportable(
                f"programme {program.id!r}: the ActivityDefinition id {program.id}-{a.id} is longer than "
                f"{_MAX_ID} characters; shorten the programme or activity id"
            )


def _eligibility(program: Program) -> tuple[list[Json], Json]:
    e = program.eligibility
    contexts: list[Json] = [{"code": _usage("focus"), "valueCodeableConcept": concept(c)} for c in e.conditions]
    parts: list[Json] = [
        {"url": "group", "valueCoding": {"system": POPULATION_GROUP, "code": g}} for g in e.groups
    ]
    parts.append({"url": "new-diagnosis-within", "valueDuration": duration(e.new_diagnosis_within)})
    if e.age is not None:
        bounds: Json = {}
        if e.age.min is not None:
            bounds["low"] = _ucum_years(e.age.min)
        if e.age.max is not None:
            bounds["high"] = _ucum_years(e.age.max)
        if bounds:
            contexts.append({"code": _usage("age"), "valueRange": bounds})
        else:  # an age block without bounds: FHIR has no empty Range, so say it in the extension
            parts.append({"url": "any-age", "valueBoolean": True})
    return contexts, {"url": EXT_ELIGIBILITY, "extension": parts}


def _target(t: Target, due: str | None) -> Json:
    out: Json = {"measure": concept(t.measure)}
    kind = t.kind
    if kind in _COMPARATORS:
        out["detailQuantity"] = quantity(getattr(t, kind), _COMPARATORS[kind])
    elif kind == "between":
        assert t.between is not None
        out["detailRange"] = {"low": quantity(t.between[0]), "high": quantity(t.between[1])}
    elif kind == "ratio":
        r = t.ratio
        assert r is not None
        out["extension"] = [{"url": EXT_TARGET_RATIO, "valueRatio": {"numerator": quantity(r.numerator), "denominator": quantity(r.denominator)}}]
        out["detailCodeableConcept"] = {
            "text": f"{number_text(r.numerator.value)} {r.numerator.unit} / {number_text(r.denominator.value)} {r.denominator.unit}"
        }
    else:
        q = t.stable_within
        assert q is not None
        out["extension"] = [{"url": EXT_TARGET_STABLE_WITHIN, "valueQuantity": quantity(q)}]
        out["detailCodeableConcept"] = {"text": f"within {number_text(q.value)} {q.unit} of the baseline"}
    if due is not None:
        out["due"] = duration(due)
    return out


def _goal(g: Goal) -> Json:
    system = GOAL_CATEGORY_HL7 if g.category in _HL7_GOAL_CATEGORIES else GOAL_CATEGORY
    targets = [_target(t, g.due) for t in g.targets]
    if not targets and g.due is not None:
        targets = [{"due": duration(g.due)}]  # FHIR keeps due on targets; a bare one carries it
    out: Json = {
        "id": g.id,
        "category": {"coding": [{"system": system, "code": g.category}]},
        "description": {"text": g.title.en, "_text": {"extension": translations(g.title)}},
    }
    if targets:
        out["target"] = targets
    return out


def _season_extension(season: Any) -> Json:
    return {
        "url": EXT_SEASON,
        "extension": [{"url": "opens", "valueString": season.opens}, {"url": "closes", "valueString": season.closes}],
    }


def _yearly(times: int | None) -> Json:
    """A season as FHIR Timing can say it: once a year (the window rides in the season extension)."""
    repeat: Json = {"count": times} if times is not None else {}
    repeat.update({"frequency": 1, "period": 1, "periodUnit": "a"})
    return {"repeat": repeat}


def _activity_action(a: Activity, program: Program) -> Json:
    t = a.timing
    extensions: list[Json] = [{"url": EXT_DUE_WITHIN, "valueDuration": duration(t.due_within)}]
    timing: Json = {}
    if t.season is not None:
        extensions.append(_season_extension(t.season))
        timing["timingTiming"] = _yearly(t.times)
        if t.start != "P0D":
            extensions.append({"url": EXT_START_OFFSET, "valueDuration": duration(t.start)})
    elif t.every is not None or t.times is not None:
        repeat: Json = {}
        if t.times is not None:
            repeat["count"] = t.times
        if t.every is not None:
            repeat.update(period_fields(t.every))
            if t.times is None:  # "until the plan ends": bounded by the plan period (informative)
                repeat["boundsDuration"] = duration(program.plan_period)
        timing["timingTiming"] = {"repeat": repeat}
        if not a.after and t.start != "P0D":
            extensions.append({"url": EXT_START_OFFSET, "valueDuration": duration(t.start)})
    elif not a.after:
        timing["timingDuration"] = duration(t.start)
    if a.shared:
        extensions.append({"url": EXT_SHARED_ACTIVITY, "valueId": a.shared})
    out: Json = {
        "id": a.id,
        "extension": extensions,
        **text_element("title", a.title),
        **text_element("description", a.description),
        "code": [concept(a.code)],
        "priority": a.priority,
    }
    if a.only_if is not None:
        out["condition"] = [only_if_condition(a.only_if)]
    if a.after:
        offset = {"offsetDuration": duration(t.start)} if t.start != "P0D" else {}
        out["relatedAction"] = [{"actionId": dep, "relationship": "after-end", **offset} for dep in a.after]
    out.update(timing)
    out["participant"] = [participant(a.role, program.roles)]
    out["type"] = {"coding": [{"system": ACTION_TYPE, "code": "create"}]}
    out["definitionCanonical"] = _canonical(program, a.id)
    return out


def to_plan_definition(program: Program) -> Json:
    """The programme as an R4 PlanDefinition (JSON dict), id = programme id."""
    _check_exportable(program)
    contexts, eligibility = _eligibility(program)
    pd: Json = {
        "resourceType": "PlanDefinition",
        "id": program.id,
        "extension": [
            {"url": EXT_PLAN_PERIOD, "valueDuration": duration(program.plan_period)},
            eligibility,
            *role_registry(program.roles),
        ],
        "url": program.url,
        "version": program.version,
        "name": _name(program.id),
        **text_element("title", program.title),
        "type": {"coding": [{"system": PLAN_DEFINITION_TYPE, "code": "clinical-protocol", "display": "Clinical Protocol"}]},
        "status": program.status,
        "subjectCodeableConcept": {"coding": [{"system": RESOURCE_TYPES, "code": "Patient"}]},
    }
    if program.description is not None:
        pd.update(text_element("description", program.description))
    pd["useContext"] = contexts
    if program.goals:
        pd["goal"] = [_goal(g) for g in program.goals]
    canonical = lambda activity_id: _canonical(program, activity_id)  # noqa: E731
    pd["action"] = [_activity_action(a, program) for a in program.activities] + [
        trigger_action(t, program.roles, canonical) for t in program.triggers
    ]
    return pd


def to_activity_definitions(program: Program) -> list[Json]:
    """One ActivityDefinition (kind Task) per activity, id ``<programme>-<activity>``."""
    _check_exportable(program)
    out: list[Json] = []
    for a in program.activities:
        t = a.timing
        ad: Json = {"resourceType": "ActivityDefinition", "id": f"{program.id}-{a.id}"}
        if a.instructions is not None:
            ad["extension"] = [
                {
                    "url": EXT_PATIENT_INSTRUCTION,
                    "extension": [{"url": lang, "valueString": text}
                                  for lang, text in (("en", a.instructions.en), *a.instructions.translations().items())],
                }
            ]
        ad.update(
            {
                "url": activity_definition_url(program.url, program.id, a.id),
                "version": program.version,
                "name": _name(program.id, a.id),
                **text_element("title", a.title),
                "status": program.status,
                **text_element("description", a.description),
                "kind": "Task",
                "code": concept(a.code),
            }
        )
        if t.season is not None:
            ad["extension"] = [*ad.get("extension", []), _season_extension(t.season)]
            ad["timingTiming"] = _yearly(t.times)
        elif t.every is not None or t.times is not None:
            repeat: Json = {"count": t.times} if t.times is not None else {}
            if t.every is not None:
                repeat.update(period_fields(t.every))
            ad["timingTiming"] = {"repeat": repeat}
        elif not a.after:
            ad["timingDuration"] = duration(t.start)
        role = program.roles.get(a.role)
        ad["participant"] = [{"type": "practitioner", **({"role": role_concept(role)} if role else {})}]
        ad["priority"] = a.priority
        out.append(ad)
    return out


def _full_url(resource: Json) -> dict[str, str]:
    url = resource.get("url", "")
    tail = f"/{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": url} if url.endswith(tail) else {}


def to_bundle(program: Program) -> Json:
    """A ``collection`` Bundle: the PlanDefinition first, then its ActivityDefinitions in activity order."""
    resources = [to_plan_definition(program), *to_activity_definitions(program)]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{**_full_url(r), "resource": r} for r in resources],
    }


# ---------------------------------------------------------------- reading


def _read_eligibility(pd: Node) -> Json:
    out: Json = {"conditions": []}
    age: Json | None = None
    for ctx in pd.children("useContext"):
        code = ctx.req_child("code").string("code")
        if code == "focus" and ctx.has("valueCodeableConcept"):
            out["conditions"].append(read_single_coding(ctx.req_child("valueCodeableConcept")))
        elif code == "age":
            if age is not None:
                raise ctx.fail("the age may be given only once", "code")
            rng = ctx.child("valueRange")
            if rng is None:
                raise ctx.fail("an age context needs a valueRange in years", "valueRange")
            age = {}
            for bound, key in (("low", "min"), ("high", "max")):
                q = rng.child(bound)
                if q is not None:
                    if q.string("code") not in (None, "a"):
                        raise q.fail("ages are in years (UCUM a)", "code")
                    value = q.integer("value")
                    if value is None:
                        raise q.fail("is missing", "value")
                    age[key] = value
    if not out["conditions"]:
        raise pd.fail("names no qualifying condition (a useContext with code focus)", "useContext")
    ext = pd.extension(EXT_ELIGIBILITY)
    if ext is not None:
        groups = []
        for g in ext.extensions("group"):
            c = g.req_child("valueCoding")
            if c.string("system") != POPULATION_GROUP:
                raise c.fail(f"a population group is coded in {POPULATION_GROUP}", "system")
            groups.append(c.req_string("code"))
        out["groups"] = groups
        window = ext.extension("new-diagnosis-within")
        if window is not None:
            out["new_diagnosis_within"] = read_duration(window.req_child("valueDuration"))
        any_age = ext.extension("any-age")
        if any_age is not None and any_age.boolean("valueBoolean") and age is None:
            age = {}
    if age is not None:
        out["age"] = age
    return out


def _read_target(node: Node) -> Json | None:
    """A target mapping, or None for a bare target that only carries the goal's due."""
    measure = node.child("measure")
    stable = node.extension(EXT_TARGET_STABLE_WITHIN)
    ratio = node.extension(EXT_TARGET_RATIO)
    quantity_detail = node.child("detailQuantity")
    range_detail = node.child("detailRange")
    if measure is None:
        if stable or ratio or quantity_detail or range_detail:
            raise node.fail("a target with a detail needs a measure", "measure")
        return None
    out: Json = {"measure": read_single_coding(measure)}
    if stable is not None:
        out["stable_within"] = read_quantity(stable.req_child("valueQuantity"))
    elif ratio is not None:
        value = ratio.req_child("valueRatio")
        out["ratio"] = {"numerator": read_quantity(value.req_child("numerator")), "denominator": read_quantity(value.req_child("denominator"))}
    elif quantity_detail is not None:
        comparator = quantity_detail.string("comparator")
        if comparator not in _KIND_OF_COMPARATOR:
            raise quantity_detail.fail("careflow targets need a comparator (<, <=, > or >=)", "comparator")
        out[_KIND_OF_COMPARATOR[comparator]] = read_quantity(quantity_detail)
    elif range_detail is not None:
        out["between"] = [read_quantity(range_detail.req_child("low")), read_quantity(range_detail.req_child("high"))]
    else:
        raise node.fail("needs a detailQuantity, a detailRange or a stable-within extension", "detailQuantity")
    return out


def _read_goal(node: Node) -> Json:
    out: Json = {"id": node.req_string("id"), "title": read_text(node.req_child("description"), "text", required=True)}
    category = node.child("category")
    if category is not None:
        c = read_single_coding(category)
        known = _HL7_GOAL_CATEGORIES if c["system"] == GOAL_CATEGORY_HL7 else {"physiologic"}
        if c["system"] not in (GOAL_CATEGORY_HL7, GOAL_CATEGORY) or c["code"] not in known:
            raise category.fail(f"careflow knows goal categories {', '.join(sorted(_HL7_GOAL_CATEGORIES | {'physiologic'}))}", "coding")
        out["category"] = c["code"]
    targets: list[Json] = []
    dues: list[tuple[str, Node]] = []
    for t in node.children("target"):
        target = _read_target(t)
        if target is not None:
            targets.append(target)
        due = t.child("due")
        if due is not None:
            dues.append((read_duration(due), due))
        elif target is None:
            raise t.fail("a target needs a measure or a due", "measure")
    if dues:
        first = dues[0][0]
        for text, due_node in dues[1:]:
            if text != first:
                raise due_node.fail(f"careflow goals have one due for all targets: {text} differs from {first}")
        out["due"] = first
    out["targets"] = targets
    return out


def _season_day(season: Node, part: str) -> str:
    found = season.extension(part)
    if found is None:
        raise season.fail(f"a season needs its {part} day (MM-DD)", "extension")
    return found.req_string("valueString")


def _read_timing(action: Node) -> Json:
    timing: Json = {}
    related = action.children("relatedAction")
    repeat_node = None
    if action.has("timingTiming"):
        repeat_node = action.req_child("timingTiming").child("repeat")
        if repeat_node is None:
            raise action.fail("careflow reads a timingTiming with a repeat", "timingTiming")
    if related:
        offsets = []
        for r in related:
            off = r.child("offsetDuration")
            offsets.append(read_duration(off) if off is not None else "P0D")
        if len(set(offsets)) > 1:
            raise related[1].fail("careflow starts an activity once all its predecessors are done: offsets must agree", "offsetDuration")
        timing["start"] = offsets[0]
    elif action.has("timingDuration"):
        timing["start"] = read_duration(action.req_child("timingDuration"))
    else:
        start = action.extension(EXT_START_OFFSET)
        if start is not None:
            timing["start"] = read_duration(start.req_child("valueDuration"))
    season = action.extension(EXT_SEASON)
    if season is not None:
        timing["season"] = {part: _season_day(season, part) for part in ("opens", "closes")}
    if repeat_node is not None:
        if repeat_node.has("period") and season is None:
            timing["every"] = read_period(repeat_node)
        count = repeat_node.integer("count")
        if count is not None:
            timing["times"] = count
    due = action.extension(EXT_DUE_WITHIN)
    if due is not None:
        timing["due_within"] = read_duration(due.req_child("valueDuration"))
    return timing


class _Definitions:
    """The ActivityDefinitions supplied with a PlanDefinition, found by canonical ``url|version``."""

    def __init__(self, nodes: list[Node], pd_url: str, program_id: str) -> None:
        self.nodes = nodes
        self.prefix = activity_definition_url(pd_url, program_id, "")

    def find(self, action: Node) -> Node:
        canonical = action.req_string("definitionCanonical")
        url, _, version = canonical.partition("|")
        found = [n for n in self.nodes if n.data.get("url") == url and (not version or n.data.get("version") == version)]
        if not found:
            raise action.fail(f"no ActivityDefinition {canonical} was supplied", "definitionCanonical")
        if len(found) > 1:
            raise action.fail(f"{len(found)} ActivityDefinitions match {canonical}", "definitionCanonical")
        return found[0]

    def activity_of(self, action: Node) -> str:
        """The activity id a ``start`` step's canonical names (the url is minted from it)."""
        url = action.req_string("definitionCanonical").partition("|")[0]
        if not url.startswith(self.prefix) or len(url) == len(self.prefix):
            raise action.fail(f"must point at one of this programme's ActivityDefinitions ({self.prefix}...)", "definitionCanonical")
        return url[len(self.prefix):]


def _read_instructions(ad: Node) -> dict[str, str] | None:
    ext = ad.extension(EXT_PATIENT_INSTRUCTION)
    if ext is None:
        return None
    out = {}
    for lang in ("en", "nl"):
        part = ext.extension(lang)
        if part is None:
            raise ext.fail(f"patient instructions need both en and nl (missing {lang})", "extension")
        out[lang] = part.req_string("valueString")
    french = ext.extension("fr")
    if french is not None:
        out["fr"] = french.req_string("valueString")
    return out


def _read_activity(action: Node, roles: dict[str, Json], definitions: _Definitions) -> Json:
    out: Json = {
        "id": action.req_string("id"),
        "title": read_text(action, "title", required=True),
        "description": read_text(action, "description", required=True),
        "role": read_participant_role(action, roles),
    }
    codes = action.children("code")
    if len(codes) != 1:
        raise action.fail(f"an activity has exactly one code, found {len(codes)}", "code")
    out["code"] = read_single_coding(codes[0])
    out["timing"] = _read_timing(action)
    after = []
    for r in action.children("relatedAction"):
        if r.string("relationship") != "after-end":
            raise r.fail("careflow dependencies are after-end relations", "relationship")
        after.append(r.req_string("actionId"))
    out["after"] = after
    conditions = action.children("condition")
    if len(conditions) > 1:
        raise action.fail("careflow reads one applicability condition per activity", "condition")
    if conditions:
        out["only_if"] = read_only_if(conditions[0])
    priority = action.string("priority")
    if priority is not None:
        out["priority"] = priority
    instructions = _read_instructions(definitions.find(action))
    if instructions is not None:
        out["instructions"] = instructions
    shared = action.extension(EXT_SHARED_ACTIVITY)
    if shared is not None:
        out["shared"] = shared.req_string("valueId")
    return out


def _read(pd: Node, ads: list[Node]) -> Program:
    if pd.data.get("resourceType") != "PlanDefinition":
        raise pd.fail(f"is a {pd.data.get('resourceType')!r}, not a PlanDefinition", "resourceType")
    for ad in ads:
        if ad.data.get("resourceType") != "ActivityDefinition":
            raise ad.fail(f"is a {ad.data.get('resourceType')!r}, not an ActivityDefinition", "resourceType")
    program_id = pd.req_string("id")
    url = pd.req_string("url")
    data: Json = {
        "id": program_id,
        "version": pd.req_string("version"),
        "url": url,
        "status": pd.req_string("status"),
        "title": read_text(pd, "title", required=True),
    }
    description = read_text(pd, "description")
    if description is not None:
        data["description"] = description
    period = pd.extension(EXT_PLAN_PERIOD)
    if period is not None:
        data["plan_period"] = read_duration(period.req_child("valueDuration"))
    data["eligibility"] = _read_eligibility(pd)
    roles = read_role_registry(pd)
    data["roles"] = roles
    data["goals"] = [_read_goal(g) for g in pd.children("goal")]
    definitions = _Definitions(ads, url, program_id)
    activities: list[Json] = []
    triggers: list[Json] = []
    for action in pd.children("action"):
        if action.has("trigger"):
            triggers.append(read_trigger_action(action, roles, definitions.activity_of))
        else:
            activities.append(_read_activity(action, roles, definitions))
    data["activities"] = activities
    data["triggers"] = triggers
    try:
        return Program.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise PlanDefinitionError(pd.path, f"does not describe a valid care programme: {problems}") from None


def from_plan_definition(plan_definition: dict[str, Any], activity_definitions: list[dict[str, Any]]) -> Program:
    """The programme a PlanDefinition (and the ActivityDefinitions it points at) describes.

    Raises ``PlanDefinitionError`` naming the element path when something cannot be read.
    """
    if not isinstance(activity_definitions, list):
        raise PlanDefinitionError("ActivityDefinition", "expected a list of ActivityDefinition resources")
    ads = [Node(ad, f"ActivityDefinition[{i}]") for i, ad in enumerate(activity_definitions)]
    return _read(Node(plan_definition, "PlanDefinition"), ads)


def from_bundle(bundle: dict[str, Any]) -> Program:
    """The programme in a Bundle holding one PlanDefinition and its ActivityDefinitions (other resources are ignored)."""
    root = Node(bundle, "Bundle")
    if root.data.get("resourceType") != "Bundle":
        raise root.fail(f"is a {root.data.get('resourceType')!r}, not a Bundle", "resourceType")
    pds: list[Node] = []
    ads: list[Node] = []
    for entry in root.children("entry"):
        resource = entry.child("resource")
        if resource is None:
            continue
        kind = resource.data.get("resourceType")
        if kind == "PlanDefinition":
            pds.append(resource)
        elif kind == "ActivityDefinition":
            ads.append(resource)
    if len(pds) != 1:
        raise root.fail(f"must hold exactly one PlanDefinition, found {len(pds)}", "entry")
    return _read(pds[0], ads)
