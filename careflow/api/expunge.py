"""``Patient/[id]/$expunge``: a patient's right to erasure (GDPR art. 17).

A FHIR delete keeps history, which is right for care but not for erasure. This removes the patient
and every resource of their record for good: all versions, index rows, conditional-create keys,
grants and outbox events (``UnitOfWork.expunge``). Only the system may call it (the engine's own
principal, or a service granted ``system/*.cruds``); the audit trail records that it happened, by
whom and on which patient id, and nothing of what was removed. ``careflow purge`` does the same
from the command line, for a patient or a single resource.
"""

from __future__ import annotations

from typing import Any

from careflow.api.errors import MethodNotAllowed
from careflow.api.interactions import Context, FhirRequest, FhirResult
from careflow.errors import NotFound as NotFoundError
from careflow.store.port import UnitOfWork

DEFINITION = "http://careflow.dev/fhir/OperationDefinition/Patient-expunge"


def expunge(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    if req.method != "POST":
        raise MethodNotAllowed("$expunge erases data: use POST")
    assert req.type is not None and req.id is not None
    removed = uow.expunge(req.type, req.id)
    if not removed:
        raise NotFoundError(req.type, req.id)
    return FhirResult(200, {"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational",
        "diagnostics": f"{req.type}/{req.id} and its record were erased: {len(removed)} resources, every version"}]})


def register(state: Any) -> None:
    state.operations[("Patient", "$expunge")] = expunge
    state.operation_docs.append(("Patient", "$expunge", DEFINITION,
                                 "Erase the patient and their whole record for good (GDPR art. 17); system only, POST."))
