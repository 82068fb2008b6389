"""The search parameters careflow supports, per resource type: one registry for every consumer.

Index extraction (``careflow.fhir.search_index``), the query parser (``search_query``), the SQL and
in-memory stores, the CapabilityStatement and the OpenAPI document all read this registry, so a
parameter is declared once and behaves the same everywhere.

The R4 parameters are not typed here: they come from ``data/r4_search_parameters.json``, which
``tools/r4_search_parameters.py`` derives from the official R4 SearchParameter definitions (a test
checks the file against them when they are at hand).  Each row carries the R4 name, type, canonical
URL, expression and targets, and either the element paths careflow indexes (the expression
translated to JSON paths, choice elements expanded) or the reason careflow refuses it.  A standard
parameter careflow does not support is refused with a 400 naming it, never ignored: ignoring it
would answer "everything".  careflow's own parameters live below, under careflow's canonical base.

Path syntax (what ``search_index`` evaluates): dotted JSON keys, lists flattened at every step;
``key[child=literal]`` keeps the items whose ``child`` equals ``literal`` (FHIRPath
``where(child='literal')``); a ``:Type`` suffix keeps only references to ``Type`` (FHIRPath
``where(resolve() is Type)``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from careflow.naming import EXT_NEIGHBOURHOOD, POPULATION_GROUP, SUBSCRIPTION_OWNER

ParamType = Literal["token", "reference", "date", "string", "quantity", "uri", "number"]

PARAM_TYPES: tuple[str, ...] = ("token", "reference", "date", "string", "quantity", "uri", "number")

CAREFLOW_PARAM_BASE = "https://careflow.dev/fhir/SearchParameter"

DATA_FILE = "r4_search_parameters.json"


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of one resource type.

    ``targets`` lists the resource types a reference parameter may point to (chaining and
    ``_revinclude`` use them; empty means any).  ``column`` marks the parameters every type has that
    live on the resource row, not in index tables (``_id``, ``_lastUpdated``).  ``definition`` is
    the canonical URL for the CapabilityStatement: the HL7 one, or a careflow one for
    careflow-defined parameters.  ``canonical``: a reference parameter over canonical / uri
    elements, matched by URL as well as by ``Type/id``.  ``skipped``: element types the R4
    expression reaches that careflow does not index for this parameter type (said in the
    CapabilityStatement).  ``kinds``: the FHIR type of the elements at each of ``paths``.
    """

    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    description: str = ""
    column: str | None = None
    definition: str | None = None
    expression: str | None = None
    canonical: bool = False
    skipped: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    @property
    def careflow_defined(self) -> bool:
        return bool(self.definition and self.definition.startswith(CAREFLOW_PARAM_BASE))


# result-shaping parameters the parser understands (not filters)
CONTROL_PARAMS: frozenset[str] = frozenset(
    {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total", "_format", "_elements",
     "_include:iterate", "_revinclude:iterate", "_pretty", "_cursor"}
)

# R4 search (http.html, search.html) names these beside the SearchParameter bundle; careflow does not
# implement them, and a request using one must not get every resource back
SPECIAL_REFUSED: dict[str, str] = {
    "_has": "reverse chaining (_has) is not supported",
    "_list": "_list is not supported",
    "_filter": "_filter is not supported",
    "_type": "_type applies to system-level search, which careflow does not offer",
    "_contained": "searching contained resources is not supported",
    "_containedType": "searching contained resources is not supported",
}

# R4 parameters whose paths translate but whose meaning careflow does not implement
_POLICY_REFUSED: dict[str, str] = {
    "phonetic": "phonetic matching is not implemented",
}

# the Resource-level parameters that are columns of the resource row, not index rows
_COLUMNS = {"_id": "id", "_lastUpdated": "last_updated"}

_CANONICAL_KINDS = frozenset({"canonical", "uri", "url"})

_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def _load_data() -> dict[str, Any]:
    text = resources.files("careflow.fhir").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


DATA: dict[str, Any] = _load_data()

# the resource types the data file carries: the types careflow serves
TYPES: tuple[str, ...] = tuple(sorted(DATA["types"]))


def _from_row(name: str, row: dict[str, Any]) -> SearchParam:
    paths = tuple(p for p, _ in row["paths"])
    kinds = tuple(k for _, k in row["paths"])
    targets_raw = row.get("targets") or []
    targets = TYPES if targets_raw == ["*"] else tuple(targets_raw)
    return SearchParam(
        name, row["type"], paths, targets, row.get("description", ""), _COLUMNS.get(name), row["url"],
        row.get("expression"), row["type"] == "reference" and bool(set(kinds) & _CANONICAL_KINDS),
        tuple(row.get("skipped") or ()), kinds,
    )


def _careflow(rtype: str, name: str, type: ParamType, path: tuple[str, str], expression: str, description: str,
              *, targets: tuple[str, ...] = ()) -> SearchParam:
    return SearchParam(name, type, (path[0],), targets, description, None, f"{CAREFLOW_PARAM_BASE}/{rtype}-{name}",
                       expression, type == "reference" and path[1] in _CANONICAL_KINDS, (), (path[1],))


# careflow-defined parameters (R4 has no SearchParameter for these); each has a canonical URL under
# careflow's base, and the CapabilityStatement cites it
CAREFLOW_PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "Task": (
        _careflow("Task", "due-date", "date", ("restriction.period.end", "dateTime"), "Task.restriction.period.end",
                  "careflow-defined: when the task is due (the end of Task.restriction.period)"),
        _careflow("Task", "instantiates-canonical", "reference", ("instantiatesCanonical", "canonical"),
                  "Task.instantiatesCanonical",
                  "careflow-defined: the ActivityDefinition the task carries out (canonical URL or "
                  "ActivityDefinition/id)", targets=("ActivityDefinition",)),
    ),
    # the pyramid group, the neighbourhood and (through R4's general-practitioner) the practice, so
    # worklists, measures and the dashboard can select on them (careflow.population)
    "Patient": (
        _careflow("Patient", "population-group", "token", (f"meta.tag[system={POPULATION_GROUP}]", "Coding"),
                  f"Patient.meta.tag.where(system='{POPULATION_GROUP}')",
                  "careflow-defined: the population-pyramid group (A-D) the latest stratification gave"),
        _careflow("Patient", "neighbourhood", "token", (f"extension[url={EXT_NEIGHBOURHOOD}].valueString", "string"),
                  f"Patient.extension('{EXT_NEIGHBOURHOOD}').value",
                  "careflow-defined: the neighbourhood (buurt) the patient lives in, exact name"),
    ),
    # whose Subscription it is (the server stamps the owner): access narrows Subscription reads on it
    "Subscription": (
        _careflow("Subscription", "owner", "token", (f"extension[url={SUBSCRIPTION_OWNER}].valueString", "string"),
                  f"Subscription.extension('{SUBSCRIPTION_OWNER}').value",
                  "careflow-defined: the principal who made the subscription (stamped by the server)"),
    ),
    "RiskAssessment": (
        _careflow("RiskAssessment", "population-group", "token", ("prediction.outcome", "CodeableConcept"),
                  "RiskAssessment.prediction.outcome",
                  "careflow-defined: the population-pyramid group a stratification assessment predicts"),
    ),
}


def _build() -> tuple[dict[str, SearchParam], dict[str, dict[str, SearchParam]], dict[str, str],
                      dict[str, dict[str, str]]]:
    common: dict[str, SearchParam] = {}
    common_refused: dict[str, str] = dict(SPECIAL_REFUSED)
    for name, row in DATA["common"].items():
        if "paths" in row:
            common[name] = _from_row(name, row)
        else:
            common_refused[name] = row["refused"]
    registry: dict[str, dict[str, SearchParam]] = {}
    refused: dict[str, dict[str, str]] = {}
    for rtype, rows in DATA["types"].items():
        supported: dict[str, SearchParam] = {}
        no: dict[str, str] = {}
        for name, row in rows.items():
            reason = row.get("refused") or _POLICY_REFUSED.get(name)
            if reason:
                no[name] = reason
            else:
                supported[name] = _from_row(name, row)
        for param in CAREFLOW_PARAMS.get(rtype, ()):
            assert param.name not in rows, f"{rtype}?{param.name} is an R4 parameter: do not redefine it"
            supported[param.name] = param
        registry[rtype] = dict(sorted(supported.items()))
        refused[rtype] = dict(sorted(no.items()))
    return common, registry, common_refused, refused


# COMMON_PARAMS: every type's Resource-level parameters (_id, _lastUpdated on the resource row; _tag,
# _profile, _security, _source in index rows); REGISTRY: per type, the rest of what is supported
COMMON_PARAMS, REGISTRY, COMMON_REFUSED, REFUSED = _build()

_INDEXED_COMMON: tuple[SearchParam, ...] = tuple(p for p in COMMON_PARAMS.values() if p.column is None)


def is_resource_type_name(name: str) -> bool:
    """Shape check only (the API validates the resource itself against fhir.resources at the edge)."""
    return bool(_TYPE_NAME.match(name))


_COLUMN_PARAMS: dict[str, SearchParam] = {n: p for n, p in COMMON_PARAMS.items() if p.column is not None}


def params_for(rtype: str) -> dict[str, SearchParam]:
    """Every supported search parameter of ``rtype`` (its own plus the Resource-level ones; a type
    careflow does not index has only the resource-row columns ``_id`` and ``_lastUpdated``)."""
    if rtype not in REGISTRY:
        return dict(_COLUMN_PARAMS)
    return {**COMMON_PARAMS, **REGISTRY[rtype]}


def get_param(rtype: str, name: str) -> SearchParam | None:
    if rtype not in REGISTRY:
        return _COLUMN_PARAMS.get(name)
    return COMMON_PARAMS.get(name) or REGISTRY[rtype].get(name)


def refusal(rtype: str, name: str) -> str | None:
    """Why careflow refuses the standard parameter ``name`` on ``rtype``; None when it is not one."""
    return COMMON_REFUSED.get(name) or REFUSED.get(rtype, {}).get(name)


def refused_params(rtype: str) -> dict[str, str]:
    """Every standard parameter of ``rtype`` careflow refuses, with the reason."""
    return {**COMMON_REFUSED, **REFUSED.get(rtype, {})}


def indexed_params(rtype: str) -> tuple[SearchParam, ...]:
    """The parameters whose values are extracted into index tables (everything but column params)."""
    return (*REGISTRY.get(rtype, {}).values(), *_INDEXED_COMMON) if rtype in REGISTRY else ()


def searchable_types() -> tuple[str, ...]:
    """The resource types with a registry (others are not served)."""
    return TYPES
