"""Check that a JSON resource is valid FHIR R4 before anything is stored.

Two passes, because the ``fhir.resources`` models are lenient where FHIR JSON is strict:

1. A JSON pass enforcing the R4 JSON rules the models let through (no ``null`` outside primitive
   arrays, no empty objects / arrays / strings, a bounded nesting depth, the FHIR id syntax) and
   refusing the few elements R4B added that an R4 server must not accept.
2. A JSON-type pass driven by the model fields: the models coerce ``"yes"`` or ``1`` into a
   boolean and ``"3"`` into an integer, FHIR JSON does not (booleans and numbers are JSON
   booleans and numbers, everything else a string).
3. The ``fhir.resources.R4B`` pydantic model of the resource type (structure, cardinality,
   primitive formats, choice types). pydantic's error ``loc`` becomes a FHIRPath expression such
   as ``Patient.name[0].family``, so a client learns *where* its resource is wrong.

R4 vs R4B (the models are R4B; our wire format is R4):
- R4B added ``subjectCanonical`` to ``PlanDefinition``, ``PlanDefinition.action`` and
  ``ActivityDefinition``; the R4B models accept it, we reject it (see ``_R4B_ONLY_ELEMENTS``).
- R4B added the datatypes ``CodeableReference`` and ``RatioRange`` and made them choices of open
  ``[x]`` elements (``Extension.valueCodeableReference`` ...); any choice element ending in those
  type names is refused.
- Resource types that exist only in R4B (``SubscriptionTopic``, ``Citation``, ...) are refused;
  R4-only types removed in R4B (``MedicinalProduct*``, ``EffectEvidenceSynthesis``, ...) cannot
  be validated with these models and are refused too.
- The models do not check code values against required bindings (e.g. ``Patient.gender``),
  nor most FHIRPath invariants; neither does this server.
"""

from __future__ import annotations

import re
import types
import typing
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from careflow.errors import InvalidFhirResource

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_DEPTH = 64  # far above any real resource; orjson cannot serialise beyond ~250 levels

# Resource types introduced in R4B: an R4 server must not accept them.
R4B_ONLY_TYPES = frozenset(
    {
        "AdministrableProductDefinition",
        "Citation",
        "ClinicalUseDefinition",
        "EvidenceReport",
        "Ingredient",
        "ManufacturedItemDefinition",
        "MedicinalProductDefinition",
        "NutritionProduct",
        "PackagedProductDefinition",
        "RegulatedAuthorization",
        "SubscriptionStatus",
        "SubscriptionTopic",
    }
)

# element name -> resource types in which R4B (not R4) defines it
_R4B_ONLY_ELEMENTS: dict[str, frozenset[str]] = {
    "subjectCanonical": frozenset({"PlanDefinition", "ActivityDefinition"}),
}

# choice-element suffixes naming datatypes R4 does not have
_R4B_ONLY_CHOICE_SUFFIXES = ("CodeableReference", "RatioRange")

_MAX_PROBLEMS = 20  # enough to fix a resource; keeps outcomes small for garbage input


@lru_cache(maxsize=None)
def _model_class(resource_type: str) -> Any:
    """The R4B model class for a type name, or None when R4B has no such resource."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    from fhir.resources.R4B.resource import Resource

    # get_fhir_model_class also knows datatypes (HumanName, ...), which are no resources
    return cls if isinstance(cls, type) and issubclass(cls, Resource) else None


def is_known_resource_type(resource_type: str) -> bool:
    """True when ``resource_type`` is an R4 resource this validator can check."""
    return (
        isinstance(resource_type, str)
        and resource_type not in R4B_ONLY_TYPES
        and bool(re.fullmatch(r"[A-Z][A-Za-z]{1,63}", resource_type))
        and _model_class(resource_type) is not None
    )


def _path(resource_type: str, loc: tuple[Any, ...]) -> str:
    """pydantic ``loc`` -> FHIRPath-like expression (``Patient.name[0].given[1]``)."""
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = str(part)
        if name == "resource_type":
            name = "resourceType"
        elif name.endswith("__ext"):
            name = "_" + name[: -len("__ext")]
        elif name.endswith("_fhir"):
            name = name[: -len("_fhir")]
        if not re.fullmatch(r"_?[A-Za-z][A-Za-z0-9]*", name):
            continue  # pydantic internals such as union tags or function-after[...]
        out += "." + name
    return out


def _json_problems(resource: dict[str, Any], resource_type: str) -> list[tuple[str, str]]:
    """FHIR JSON rules the models do not enforce; iterative so deep input cannot blow the stack."""
    problems: list[tuple[str, str]] = []
    # (value, path, depth, enclosing resource type)
    stack: list[tuple[Any, str, int, str]] = [(resource, resource_type, 0, resource_type)]
    while stack and len(problems) < _MAX_PROBLEMS:
        value, path, depth, rtype = stack.pop()
        if depth > MAX_DEPTH:
            problems.append((path, f"nested deeper than {MAX_DEPTH} levels"))
            break
        if isinstance(value, dict):
            if not value:
                problems.append((path, "empty objects are not allowed in FHIR JSON"))
                continue
            inner = value.get("resourceType") if depth > 0 else None
            if isinstance(inner, str):
                rtype = inner
                if inner in R4B_ONLY_TYPES:
                    problems.append((path, f"{inner} is not an R4 resource type"))
            for key, child in value.items():
                if not isinstance(key, str) or not key:
                    problems.append((path, "empty property name"))
                    continue
                child_path = f"{path}.{key}"
                if rtype in _R4B_ONLY_ELEMENTS.get(key, ()):
                    problems.append((child_path, f"{key} is an R4B element, not part of FHIR R4"))
                elif key.endswith(_R4B_ONLY_CHOICE_SUFFIXES) and key[:1].islower():
                    problems.append((child_path, f"{key}: the datatype exists in R4B, not in FHIR R4"))
                if child is None:
                    problems.append((child_path, "null is not allowed in FHIR JSON"))
                    continue
                if isinstance(child, list):
                    if not child:
                        problems.append((child_path, "empty arrays are not allowed in FHIR JSON"))
                        continue
                    companion = key[1:] if key.startswith("_") else "_" + key
                    nulls_ok = companion in value  # primitive arrays pair values with _extensions
                    for i, item in enumerate(child):
                        if item is None:
                            if not nulls_ok:
                                problems.append((f"{child_path}[{i}]", "null is not allowed in FHIR JSON"))
                            continue
                        stack.append((item, f"{child_path}[{i}]", depth + 1, rtype))
                    continue
                stack.append((child, child_path, depth + 1, rtype))
        elif isinstance(value, str):
            if not value.strip():
                problems.append((path, "strings must not be empty or whitespace only"))
        elif isinstance(value, float) and value != value:  # NaN cannot come from JSON, but be safe
            problems.append((path, "not a number"))
    return problems


def _unwrap(annotation: Any) -> Any:
    """``Optional[List[Annotated[bool, ...]]]`` -> ``bool``."""
    t = annotation
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Union or origin is types.UnionType:
            t = next(a for a in typing.get_args(t) if a is not type(None))
        elif origin in (list, typing.List) or origin is typing.Annotated:
            t = typing.get_args(t)[0]
        else:
            return t


# JSON kind per primitive Python type the models use
_KINDS: dict[type, str] = {bool: "boolean", int: "integer", Decimal: "decimal", float: "decimal"}


@lru_cache(maxsize=None)
def _field_kinds(cls: type) -> dict[str, tuple[str, Any]]:
    """JSON name -> (kind, model class for complex elements) for one model class."""
    from fhir.resources.R4B import get_fhir_model_class

    out: dict[str, tuple[str, Any]] = {}
    for field in cls.model_fields.values():  # type: ignore[attr-defined]
        name = field.alias
        if not name or name.startswith("_") or field.annotation is None:
            continue
        base = _unwrap(field.annotation)
        kind = _KINDS.get(base) if isinstance(base, type) else None
        if kind:
            out[name] = (kind, None)
            continue
        type_name = getattr(base, "__name__", "")
        if type_name == "ResourceType":
            out[name] = ("resource", None)
        elif type_name.endswith("Type") and type_name != "FHIRPrimitiveExtensionType" and base.__module__ == "abc":
            try:
                out[name] = ("complex", get_fhir_model_class(type_name[: -len("Type")]))
            except (KeyError, ValueError, ImportError, AttributeError):
                continue
        else:
            out[name] = ("string", None)
    return out


@lru_cache(maxsize=None)
def _binding_facts(definition: str) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """For one R4 JSON Schema definition (a type or a backbone element such as ``CarePlan_Detail``):
    element name -> the codes its *required* binding allows, and element name -> the definition of
    a complex child.

    The official schema spells out exactly the required bindings as ``enum`` (Task.status,
    Patient.gender, Quantity.comparator ...), so no list is kept by hand."""
    from careflow.fhir.r4_schema import definitions

    spec_of = definitions().get(definition) or {}
    codes: dict[str, frozenset[str]] = {}
    children: dict[str, str] = {}
    for name, spec in (spec_of.get("properties") or {}).items():
        if name.startswith("_") or name == "resourceType" or not isinstance(spec, dict):
            continue
        items = spec.get("items")
        item: dict[str, Any] = items if isinstance(items, dict) else spec
        enum = spec.get("enum") or item.get("enum")
        if isinstance(enum, list) and enum:
            codes[name] = frozenset(enum)
        ref = item.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            children[name] = ref[len("#/definitions/"):]
    return codes, children


def required_codes(definition: str) -> dict[str, frozenset[str]]:
    """Element name -> allowed codes of its required binding, for one schema definition."""
    return _binding_facts(definition)[0]


def _not_in_binding(where: str, value: str, codes: frozenset[str]) -> tuple[str, str]:
    shown = sorted(codes)
    listed = ", ".join(shown[:20]) + (f" ... ({len(shown)} codes)" if len(shown) > 20 else "")
    return where, f"'{value[:40]}' is not a code of the required binding (allowed: {listed})"


def _json_type_problems(resource: dict[str, Any], rtype: str) -> list[tuple[str, str]]:
    """Booleans must be JSON booleans, numbers JSON numbers, the other primitives JSON strings; a
    code under a required binding must be one of its codes."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[dict[str, Any], Any, str, str]] = [(resource, _model_class(rtype), rtype, rtype)]
    while stack and len(problems) < _MAX_PROBLEMS:
        node, cls, path, definition = stack.pop()
        kinds = _field_kinds(cls)
        codes, children = _binding_facts(definition)
        for key, value in node.items():
            info = kinds.get(key)
            if info is None:
                continue
            kind, sub = info
            many = isinstance(value, list)
            for i, item in enumerate(value if many else [value]):
                if item is None:
                    continue
                where = f"{path}.{key}[{i}]" if many else f"{path}.{key}"
                t = type(item)
                if kind == "boolean" and t is not bool:
                    problems.append((where, "must be a JSON boolean (true or false)"))
                elif kind == "integer" and t is not int:
                    problems.append((where, "must be a JSON integer"))
                elif kind == "decimal" and (t is bool or not isinstance(item, (int, float))):
                    problems.append((where, "must be a JSON number"))
                elif kind == "string" and t is not str:
                    problems.append((where, "must be a JSON string"))
                elif kind == "string" and key in codes and item not in codes[key]:
                    problems.append(_not_in_binding(where, item, codes[key]))
                elif kind == "complex" and t is dict:
                    stack.append((item, sub, where, children.get(key, "")))
                elif kind == "resource" and t is dict:
                    inner_type = item.get("resourceType", "")
                    inner = _model_class(inner_type)
                    if inner is not None:
                        stack.append((item, inner, where, inner_type))
    return problems


def validate_resource(resource: Any, expected_type: str | None = None) -> None:
    """Raise ``InvalidFhirResource`` (an ``InvalidResource``, with FHIRPath locations) unless ``resource`` is valid R4 JSON.

    ``expected_type`` is the type the URL names; a body of another type is refused here so the
    caller does not have to repeat the check.
    """
    if not isinstance(resource, dict):
        raise InvalidFhirResource("a FHIR resource must be a JSON object", [("Resource", "not a JSON object")])
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InvalidFhirResource("resource has no resourceType", [("Resource.resourceType", "missing or not a string")])
    if expected_type is not None and rtype != expected_type:
        raise InvalidFhirResource(
            f"resource type {rtype} does not match {expected_type}",
            [(f"{rtype}.resourceType", f"expected {expected_type}, got {rtype}")],
        )
    if not is_known_resource_type(rtype):
        raise InvalidFhirResource(f"unknown resource type {rtype!r}", [("Resource.resourceType", "not an R4 resource type")])
    problems = _json_problems(resource, rtype)
    rid = resource.get("id")
    if rid is not None and not (isinstance(rid, str) and ID_RE.match(rid)):
        problems.append((f"{rtype}.id", "id must match [A-Za-z0-9\\-.]{1,64}"))
    if problems:
        raise InvalidFhirResource(f"{rtype} is not valid FHIR R4 JSON", problems[:_MAX_PROBLEMS])
    try:
        _model_class(rtype).model_validate(resource)
        problems = _json_type_problems(resource, rtype)
    except ValidationError as exc:
        found = [
            (_path(rtype, tuple(err.get("loc", ()))), str(err.get("msg", "invalid")).split("\n")[0].strip())
            for err in exc.errors(include_url=False)[:_MAX_PROBLEMS]
        ]
        raise InvalidFhirResource(f"{rtype} failed validation", found) from None
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        # fhir.resources raises bare exceptions for some malformed input (e.g. an unknown contained type)
        raise InvalidFhirResource(f"{rtype} failed validation", [(rtype, f"malformed content ({type(exc).__name__})")]) from None
    if problems:
        raise InvalidFhirResource(f"{rtype} is not valid FHIR R4 JSON", problems)


@lru_cache(maxsize=None)
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements FHIR marks isSummary for ``_summary=true`` (from the R4B model metadata)."""
    return _flagged(resource_type, "summary_element_property")


@lru_cache(maxsize=None)
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements with minimum cardinality 1 (kept by ``_summary=text``)."""
    return _flagged(resource_type, "element_required")


def _flagged(resource_type: str, flag: str) -> frozenset[str]:
    cls = _model_class(resource_type)
    if cls is None:
        return frozenset()
    names = set()
    for field in cls.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if field.alias and not field.alias.startswith("_") and extra.get(flag):
            names.add(field.alias)
    return frozenset(names)
