"""FHIR operations: ``Patient/[id]/$everything`` and ``PlanDefinition/[id]/$apply``.

Each operation is registered with its canonical OperationDefinition, so the CapabilityStatement
lists exactly the operations that have a handler.
"""

from __future__ import annotations

from typing import Any

from careflow.api.interactions import SERVED_TYPES, Context, FhirRequest, FhirResult
from careflow.errors import CareflowError, InvalidSearch
from careflow.fhir import bundles
from careflow.fhir.search_params import REGISTRY
from careflow.fhir.search_query import MAX_COUNT, MAX_OFFSET, parse_search, whole_number
from careflow.store.port import Stored, UnitOfWork

EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
_PAGE = MAX_COUNT


def _patient_param(rtype: str) -> str | None:
    """The reference parameter linking ``rtype`` to a Patient (patient, else subject)."""
    params = REGISTRY.get(rtype, {})
    for name in ("patient", "subject"):
        p = params.get(name)
        if p is not None and p.type == "reference" and "Patient" in p.targets:
            return name
    return None


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    return whole_number(name, value, MAX_OFFSET)


def everything(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    """The patient, every served resource that points at them (patient/subject), and the resources
    those point to (practitioners, roles, organisations) once; paged with ``_count`` / ``_offset``."""
    assert req.type == "Patient" and req.id is not None
    params = dict(req.params)
    unknown = set(params) - {"_count", "_offset"}
    if unknown:
        raise InvalidSearch(sorted(unknown)[0], "$everything takes only _count and _offset here")
    count = min(_int_param(params, "_count", 100), MAX_COUNT)
    offset = _int_param(params, "_offset", 0)
    patient = uow.read("Patient", req.id)
    found: list[Stored] = [patient]
    seen = {patient.reference}
    for rtype in SERVED_TYPES:
        pname = _patient_param(rtype)
        if pname is None:
            continue
        page_offset = 0
        while True:
            query = parse_search(rtype, [(pname, f"Patient/{req.id}"), ("_count", str(_PAGE)),
                                         ("_offset", str(page_offset))], strict=True)
            result = uow.search(query)
            for s in result.matches:
                if s.reference not in seen:
                    seen.add(s.reference)
                    found.append(s)
            if len(result.matches) < _PAGE:
                break
            page_offset += _PAGE
    for ref in sorted({r for s in list(found) for r in bundles.references_in(s.resource)}):
        kind, _, rid = ref.partition("/")
        if ref in seen or kind not in SERVED_TYPES or not rid or "/" in rid:
            continue
        seen.add(ref)
        try:
            found.append(uow.read(kind, rid))
        except CareflowError:
            continue  # dangling or deleted reference: nothing to include
    bundle = bundles.new_bundle("searchset", now=ctx.now())
    bundle["total"] = len(found)
    url = f"{ctx.base}/Patient/{req.id}/$everything"

    def link(off: int) -> str:
        return f"{url}?_count={count}" + (f"&_offset={off}" if off else "")

    bundle["link"] = bundles.links(
        link(offset),
        next_url=link(offset + count) if count and offset + count < len(found) else None,
        previous_url=link(max(0, offset - count)) if offset else None,
    )
    page = found[offset: offset + count]
    if page:
        bundle["entry"] = [bundles.search_entry(ctx.base, s, "match") for s in page]
    return FhirResult(200, bundle)


def register_operations(state: Any, programs: list[Any]) -> None:
    """Fill ``state.operations`` (handlers) and ``state.operation_docs`` (CapabilityStatement)."""
    state.operations[("Patient", "$everything")] = everything
    state.operation_docs.append(("Patient", "$everything", EVERYTHING_DEFINITION,
                                 "The patient and every resource in their record (patient/subject "
                                 "references) plus what those reference; _count/_offset paging."))
    from careflow.api import break_glass, evaluate_measure, expunge, plan_apply, subscriptions

    plan_apply.register(state, programs)
    expunge.register(state)
    break_glass.register(state)
    subscriptions.register(state)
    evaluate_measure.register(state)
