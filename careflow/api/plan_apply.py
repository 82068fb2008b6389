"""``PlanDefinition/[id]/$apply``: the FHIR clinical-reasoning operation, backed by careflow's planner.

Inputs (query string, or a ``Parameters`` body on POST):

* ``subject`` (required, one): ``Patient/<id>`` of a stored patient; their stored Conditions and
  Observations feed eligibility and goal targets, and their GP's neighbourhood team (the
  PractitionerRoles of its Organization) gives the Tasks concrete owners, as enrolment does.
* ``start`` (careflow-defined, date, default today): the plan start date.
* ``persist`` (careflow-defined, boolean, default false): also store the CarePlan, Goals, CareTeam
  and Tasks, atomically, each with create-if-absent on its deterministic id, so applying the same
  plan again changes nothing.

Output: the CarePlan (R4 ``$apply`` returns a CarePlan). Without ``persist`` the Goals, CareTeam and
Tasks are *contained* in it (nothing is stored); with ``persist`` it is the stored CarePlan, which
references the stored resources. A patient the programme does not take -> 422.

The programme is found by the PlanDefinition's ``url`` and ``version`` among the programmes the
server loaded; failing that, it is read back from the stored PlanDefinition and its
ActivityDefinitions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from careflow.api.errors import BusinessRuleViolation, InvalidRequest
from careflow.api.interactions import Context, FhirRequest, FhirResult, require
from careflow.errors import CareflowError, InvalidSearch
from careflow.fhir.search_query import MAX_COUNT, parse_search
from careflow.fhir.validation import validate_resource
from careflow.store.port import UnitOfWork

APPLY_DEFINITION = "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"
_PARAMS = ("subject", "start", "persist")


def _parameters(req: FhirRequest) -> dict[str, str]:
    """Operation inputs from the query string and a Parameters body (valueString/valueDate/valueBoolean...)."""
    values: dict[str, str] = {}
    for name, value in req.params:
        if name not in _PARAMS:
            raise InvalidSearch(name, f"$apply takes {', '.join(_PARAMS)} here")
        if name in values:
            raise InvalidSearch(name, "given more than once")
        values[name] = value
    body = req.resource
    if body is not None:
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise InvalidRequest("the body of $apply must be a Parameters resource")
        validate_resource(body, "Parameters")
        for i, p in enumerate(body.get("parameter") or []):
            name = p.get("name")
            if name not in _PARAMS:
                raise InvalidRequest(f"unsupported $apply parameter {name!r}", expression=f"Parameters.parameter[{i}]")
            found = [v for k, v in p.items() if k.startswith("value")]
            if len(found) != 1 or isinstance(found[0], (dict, list)):
                raise InvalidRequest(f"$apply parameter {name!r} needs one primitive value",
                                     expression=f"Parameters.parameter[{i}]")
            if name in values:
                raise InvalidRequest(f"$apply parameter {name!r} given more than once")
            values[name] = str(found[0]).lower() if isinstance(found[0], bool) else str(found[0])
    return values


def _all(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        q = parse_search(rtype, [*params, ("_count", str(MAX_COUNT)), ("_offset", str(offset))], strict=True)
        page = uow.search(q).matches
        out += [s.resource for s in page if s.resource is not None]
        if len(page) < MAX_COUNT:
            return out
        offset += MAX_COUNT


def _program(uow: UnitOfWork, pd: dict[str, Any], programs: dict[tuple[str, str], Any]) -> Any:
    key = (pd.get("url"), pd.get("version"))
    if key in programs:
        return programs[key]
    from careflow.programs.plandefinition import from_plan_definition

    canonicals = [a.get("definitionCanonical") for a in pd.get("action") or [] if isinstance(a, dict)]
    ads = []
    for c in {c.split("|", 1)[0] for c in canonicals if isinstance(c, str)}:
        ads += _all(uow, "ActivityDefinition", [("url", c)])
    try:
        return from_plan_definition(pd, ads)
    except CareflowError as exc:
        raise BusinessRuleViolation(f"PlanDefinition/{pd.get('id')} is not a careflow care programme: {exc}") from None


def _contained(result: Any) -> dict[str, Any]:
    """The CarePlan with Goals, CareTeam and Tasks contained and references pointing inside it."""
    careplan = dict(result.careplan)
    others = [r for r in result.resources if r is not result.careplan]
    local = {f"{r['resourceType']}/{r['id']}": f"#{r['id']}" for r in others}
    local[f"CarePlan/{careplan['id']}"] = "#"

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (local.get(x, x) if k == "reference" and isinstance(x, str) else walk(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    contained = [walk({k: v for k, v in r.items() if k != "meta"}) for r in others]
    body = walk(careplan)
    if contained:
        body["contained"] = contained
    return body


def make_apply(programs: list[Any]) -> Any:
    by_canonical = {(p.url, p.version): p for p in programs}

    def apply(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
        from careflow.engine.team import TeamDirectory
        from careflow.planning.patient import context_from_resources
        from careflow.planning.planner import plan

        assert req.type == "PlanDefinition" and req.id is not None
        args = _parameters(req)
        subject = args.get("subject")
        if not subject:
            raise InvalidSearch("subject", "$apply needs subject=Patient/<id>")
        kind, _, pid = subject.partition("/")
        if kind != "Patient" or not pid:
            raise InvalidSearch("subject", f"'{subject}' is not Patient/<id>")
        try:
            start = date.fromisoformat(args["start"]) if "start" in args else ctx.now().date()
        except ValueError:
            raise InvalidSearch("start", f"'{args['start']}' is not a date (YYYY-MM-DD)") from None
        persist = args.get("persist", "false")
        if persist not in ("true", "false"):
            raise InvalidSearch("persist", "takes true or false")
        pd = uow.read("PlanDefinition", req.id).resource or {}
        program = _program(uow, pd, by_canonical)
        patient = uow.read("Patient", pid).resource or {}
        conditions = _all(uow, "Condition", [("patient", f"Patient/{pid}")])
        observations = _all(uow, "Observation", [("patient", f"Patient/{pid}")])
        team, organization = TeamDirectory(uow).team_for(patient)  # type: ignore[arg-type]  # a uow searches like a repo
        pctx = context_from_resources(patient, conditions, observations, team=team, organization=organization)
        result = plan(program, pctx, start)
        for r in result.resources:
            validate_resource(r)
        if persist == "false":
            return FhirResult(200, _contained(result))
        for rtype in sorted({r["resourceType"] for r in result.resources}):
            require(uow.principal, rtype, "c")  # persisting creates them: the scopes must allow it
        careplan_stored = None
        for r in result.resources:
            stored, _created = uow.create_if_absent(dict(r))
            if r is result.careplan:
                careplan_stored = stored
        assert careplan_stored is not None
        return FhirResult(200, careplan_stored.resource, careplan_stored)

    return apply


def register(state: Any, programs: list[Any]) -> None:
    """$apply needs the planner; it is registered (and claimed in /metadata) only when it imports."""
    try:
        import careflow.planning.patient  # noqa: F401
        import careflow.planning.planner  # noqa: F401
    except ImportError:  # pragma: no cover - the planner ships with careflow
        return
    state.operations[("PlanDefinition", "$apply")] = make_apply(programs)
    state.operation_docs.append((
        "PlanDefinition", "$apply", APPLY_DEFINITION,
        "subject=Patient/<id> (required); careflow-defined: start=<date> (default today), persist=true|false "
        "(default false; true stores the plan atomically with create-if-absent, so re-applying changes "
        "nothing). Returns the CarePlan (contained Goals/CareTeam/Tasks unless persisted); 422 when the "
        "patient is not eligible.",
    ))
