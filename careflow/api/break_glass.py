"""``Patient/[id]/$break-the-glass``: emergency access to one patient, with a reason, for a while.

The store grants it (careflow.store.unit_of_work.UnitOfWorkBase.grant_emergency): full access for
the policy's ``emergency.max_hours`` (24 h at most), the patient's exclusions still holding, the GP
told by an urgent Communication, and the event recorded for the audit trail.
"""

from __future__ import annotations

from typing import Any

from careflow.api.errors import InvalidRequest
from careflow.api.interactions import Context, FhirRequest, FhirResult
from careflow.fhir.search_values import instant_text
from careflow.store.port import UnitOfWork

DEFINITION = "https://careflow.dev/fhir/OperationDefinition/Patient-break-the-glass"


def _reason(req: FhirRequest) -> str:
    params = dict(req.params)
    if "reason" in params:
        return params["reason"]
    body: Any = req.resource
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            if isinstance(p, dict) and p.get("name") == "reason" and isinstance(p.get("valueString"), str):
                return str(p["valueString"])
    raise InvalidRequest("$break-the-glass needs a reason (parameter 'reason', valueString)", expression="reason")


def break_the_glass(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    if req.method != "POST" or req.id is None:
        raise InvalidRequest("$break-the-glass is POST Patient/[id]/$break-the-glass with a reason")
    grant = uow.grant_emergency(req.id, _reason(req))
    from datetime import timezone

    expires = instant_text(grant.expires.replace(tzinfo=timezone.utc)) if grant.expires else None
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": f"Patient/{req.id}"}},
        {"name": "grantee", "valueReference": {"reference": grant.grantee}},
        *([{"name": "expires", "valueInstant": expires}] if expires else []),
    ]}
    return FhirResult(200, body)


def register(state: Any) -> None:
    state.operations[("Patient", "$break-the-glass")] = break_the_glass
    state.operation_docs.append(("Patient", "$break-the-glass", DEFINITION,
                                 "Emergency access to one patient for a practitioner outside the care team: "
                                 "a reason is required, access lasts at most 24 h, the GP is told, it is audited."))
