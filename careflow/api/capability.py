"""The CapabilityStatement, generated from what the router actually serves.

Resource types come from ``SERVED_TYPES`` (the search-parameter registry), search parameters from
``careflow.fhir.search_params``, operations from the operation table the app was built with: a
claim here is a route there, so the statement cannot promise what the server does not do.  The
registry's refused parameters are not listed: the server answers them with a 400.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from careflow.api.interactions import SERVED_TYPES
from careflow.fhir.bundles import instant
from careflow.fhir.search_params import REGISTRY, SearchParam, params_for

FHIR_VERSION = "4.0.1"

# the interactions every served type supports (see careflow.api.interactions.execute)
TYPE_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")


def _software_version() -> str:
    try:
        from importlib.metadata import version

        return version("careflow")
    except Exception:  # noqa: BLE001 - not installed as a distribution (running from a checkout)
        return "0.0.0"


def includes_of(rtype: str) -> list[str]:
    """``_include`` values: every reference parameter of ``rtype``."""
    return sorted(f"{rtype}:{p.name}" for p in REGISTRY.get(rtype, {}).values() if p.type == "reference")


def revincludes_of(rtype: str) -> list[str]:
    """``_revinclude`` values: reference parameters of served types that may point at ``rtype``."""
    out = []
    for source in SERVED_TYPES:
        for p in REGISTRY.get(source, {}).values():
            if p.type == "reference" and (not p.targets or rtype in p.targets):
                out.append(f"{source}:{p.name}")
    return sorted(out)


def param_documentation(p: SearchParam) -> str:
    """The parameter's description, plus what careflow does not index of its R4 expression."""
    text = p.description
    if p.skipped:
        text += f" (values of type {', '.join(p.skipped)} are not indexed)"
    if p.canonical:
        text += " (a canonical: matched by URL, '|version' ignored, or by Type/id of its tail; :below on the URL)"
    return text.strip()


def search_params_of(rtype: str) -> list[dict[str, Any]]:
    """``searchParam`` entries of ``rtype``: every parameter the server supports, nothing else."""
    return [
        {
            "name": p.name,
            **({"definition": p.definition} if p.definition else {}),
            "type": p.type,
            **({"documentation": doc} if (doc := param_documentation(p)) else {}),
        }
        for p in sorted(params_for(rtype).values(), key=lambda p: p.name)
    ]


def capability_statement(
    base: str,
    operations: Iterable[tuple[str, str, str, str]],
    *,
    now: datetime,
) -> dict[str, Any]:
    """``operations``: (resource type, "$name", canonical OperationDefinition, documentation)."""
    ops = list(operations)
    resources = []
    for rtype in SERVED_TYPES:
        params = search_params_of(rtype)
        entry: dict[str, Any] = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-match",  # If-None-Match on read -> 304
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchParam": params,
        }
        if rtype == "AuditEvent":  # the audit trail: read-only, its own parameters (careflow.audit.query)
            from careflow.audit.query import SUPPORTED

            entry = {"type": rtype, "profile": entry["profile"],
                     "documentation": "The audit trail (IHE BALP), written by the server itself: served to "
                                      "auditors, and to a patient for the events naming them.",
                     "interaction": [{"code": "read"}, {"code": "search-type"}],
                     "searchParam": [p for p in params if p["name"] in SUPPORTED]}
            resources.append(entry)
            continue
        inc, rev = includes_of(rtype), revincludes_of(rtype)
        if inc:
            entry["searchInclude"] = inc
        if rev:
            entry["searchRevInclude"] = rev
        mine = [{"name": name.lstrip("$"), "definition": definition, "documentation": doc}
                for t, name, definition, doc in ops if t == rtype]
        if mine:
            entry["operation"] = mine
        if rtype == "Subscription":
            from careflow.fhir import backport

            entry["supportedProfile"] = [backport.SUBSCRIPTION_PROFILE]
            entry["extension"] = [{"url": backport.TOPIC_CANONICAL_EXT, "valueCanonical": t} for t in backport.TOPICS]
            entry["documentation"] = ("Topic-based Subscriptions (Subscriptions R5 Backport IG): rest-hook, "
                                      "id-only payloads by default, signed (keys at /.well-known/jwks.json).")
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(now),
        "publisher": "careflow",
        "kind": "instance",
        "software": {"name": "careflow", "version": _software_version()},
        "implementation": {"description": "careflow FHIR R4 server", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                             "code": "SMART-on-FHIR"}]}],
                    "description": "Bearer tokens (signed JWTs) with SMART App Launch v2 scopes; endpoints at "
                                   "/.well-known/smart-configuration.",
                },
                "documentation": (
                    "JSON only. Prefer: return=minimal|representation|OperationOutcome and "
                    "handling=strict|lenient are honoured. Transaction and batch responses default to "
                    "return=minimal. Search: the parameters listed per type are supported; a standard R4 "
                    "parameter not listed is refused with 400 and an OperationOutcome naming it; a name R4 "
                    "does not define is ignored and reported (search.mode=outcome) unless "
                    "handling=strict, which refuses it too."
                ),
                "resource": resources,
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            }
        ],
    }
