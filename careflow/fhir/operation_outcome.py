"""Build FHIR R4 OperationOutcome resources as plain dicts.

Every failure the API reports, and every informational answer (``Prefer: return=OperationOutcome``),
goes through these helpers so the outcome shape is identical across the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]

# The subset of http://hl7.org/fhir/issue-type this server emits.
IssueType = Literal[
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "conflict",
    "business-rule",
    "processing",
    "exception",
    "informational",
    "incomplete",
    "too-costly",
]


def issue(
    severity: Severity,
    code: IssueType,
    diagnostics: str,
    expression: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One OperationOutcome.issue; ``expression`` holds FHIRPath locations of the problem."""
    out: dict[str, Any] = {"severity": severity, "code": code}
    if diagnostics:
        out["diagnostics"] = diagnostics
    if expression:
        out["expression"] = list(expression)
    return out


def outcome(issues: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Wrap issues in an OperationOutcome; an outcome without issues is invalid FHIR, so we refuse one."""
    items = list(issues)
    if not items:
        raise ValueError("an OperationOutcome needs at least one issue")
    return {"resourceType": "OperationOutcome", "issue": items}


def error(code: IssueType, diagnostics: str, expression: Sequence[str] | None = None) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    return outcome([issue("error", code, diagnostics, expression)])


def information(diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome reporting success (used for ``Prefer: return=OperationOutcome``)."""
    return outcome([issue("information", "informational", diagnostics)])
