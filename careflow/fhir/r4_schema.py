"""Check a resource dict against the official FHIR R4 JSON Schema.

Why this exists: careflow builds and validates with ``fhir.resources.R4B`` models, but speaks R4 on
the wire. R4B is a superset for some elements (``ActivityDefinition.subjectCanonical``,
``Extension.valueCodeableReference`` ...), so an R4B model happily accepts JSON an R4 server would
reject. The HL7 JSON Schema for R4 closes every object (``additionalProperties: false``), so it
catches exactly that drift. It checks structure and primitive syntax only, not invariants,
cardinalities beyond ``required`` or terminology: profiles (``careflow.fhir.profiles``) do the rest.

The schema (about 3 MB) ships gzip-compressed inside the package (``careflow/fhir/data``, so an
installed wheel has it too); see the NOTICE beside it for source and licence.
``CAREFLOW_R4_SCHEMA`` points elsewhere (plain or ``.gz``).
"""

from __future__ import annotations

import gzip
import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from careflow.errors import R4SchemaUnavailable

if TYPE_CHECKING:  # jsonschema is a test dependency; only validation needs it, not definitions()
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

SCHEMA_ENV = "CAREFLOW_R4_SCHEMA"
DEFAULT_SCHEMA = Path(__file__).resolve().parent / "data" / "fhir.r4.schema.json.gz"
_MAX_MESSAGE = 240


def schema_path() -> Path:
    """Where the schema is read from: ``$CAREFLOW_R4_SCHEMA`` if set, else the copy in the package."""
    configured = os.environ.get(SCHEMA_ENV)
    return Path(configured) if configured else DEFAULT_SCHEMA


@cache
def _schema() -> dict[str, Any]:
    path = schema_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise R4SchemaUnavailable(
            f"the FHIR R4 JSON Schema is not at {path} ({exc.strerror}); set {SCHEMA_ENV} to a copy of fhir.schema.json"
        ) from exc
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        schema = json.loads(text)
    except (OSError, ValueError) as exc:
        raise R4SchemaUnavailable(f"{path} is not a readable JSON Schema: {exc}") from exc
    if not isinstance(schema, dict) or "definitions" not in schema:
        raise R4SchemaUnavailable(f"{path} has no 'definitions': not the FHIR JSON Schema")
    _apply_401_corrections(schema)
    return schema


def _apply_401_corrections(schema: dict[str, Any]) -> None:
    """Bring the 4.0.0 build of the schema (the only one a registry ships) up to R4 4.0.1.

    The 4.0.1 technical correction changed two things the schema encodes: "4.0.1" joined the
    FHIRVersion codes (StructureDefinition.fhirVersion, CapabilityStatement.fhirVersion ...), and Meta
    became an open type (``Extension.valueMeta`` and every other ``[x]`` that takes any type). Both
    are found structurally, not by a list of element names, so nothing else is touched.
    """

    def widen_versions(node: Any) -> None:
        if isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and "4.0.0" in enum and "4.0.1" not in enum:
                enum.append("4.0.1")
            for child in node.values():
                widen_versions(child)
        elif isinstance(node, list):
            for child in node:
                widen_versions(child)

    widen_versions(schema["definitions"])
    for definition in schema["definitions"].values():
        props = definition.get("properties", {})
        open_choices = [k[: -len("Base64Binary")] for k in props if k.endswith("Base64Binary")]
        for prefix in open_choices:
            if f"{prefix}Dosage" in props and f"{prefix}Meta" not in props:  # Dosage is the last open type
                props[f"{prefix}Meta"] = {"$ref": "#/definitions/Meta"}


def resource_types() -> frozenset[str]:
    """Every resource type R4 defines (the schema's discriminator mapping)."""
    return frozenset(_schema()["discriminator"]["mapping"])


def definitions() -> dict[str, Any]:
    """The schema's ``definitions`` (one per resource, datatype and backbone element), read-only by convention."""
    return _schema()["definitions"]  # type: ignore[no-any-return]


@cache
def _validator(resource_type: str) -> Validator:
    """A validator for one resource type.

    The schema's root is a ``oneOf`` over all ~150 resource types, which makes every error a useless
    "not valid under any of the given schemas". Pointing the root at the one definition gives errors
    with paths, and is about 150 times less work.
    """
    from jsonschema import Draft6Validator
    from jsonschema.validators import validator_for

    root = _schema()
    narrowed = {k: v for k, v in root.items() if k not in ("oneOf", "discriminator")}
    narrowed["$ref"] = f"#/definitions/{resource_type}"
    cls = validator_for(root, default=Draft6Validator)
    return cls(narrowed)  # type: ignore[no-any-return,unused-ignore]


def _where(path: list[str | int]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _explain(error: ValidationError, prefix: str) -> list[str]:
    """Lines for one schema error; a ``oneOf`` over resources (contained, Bundle.entry.resource) is
    re-checked against the one type the instance names, since the generic message names none."""
    here = prefix + _where(list(error.absolute_path))
    instance = error.instance
    if error.validator == "oneOf" and isinstance(instance, dict) and "resourceType" in instance:
        return _errors(instance, here)
    if error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        return _explain(deepest, prefix)
    return [f"{here}: {_short(error.message)}"]


def _errors(resource: dict[str, Any], prefix: str) -> list[str]:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return [f"{prefix or 'resource'}: resourceType is missing"]
    if resource_type not in resource_types():
        return [f"{prefix or resource_type}: {resource_type} is not a resource type in FHIR R4"]
    here = prefix or resource_type
    found = sorted(_validator(resource_type).iter_errors(resource), key=lambda e: list(map(str, e.absolute_path)))
    return [line for e in found for line in _explain(e, here)]


def r4_errors(resource: dict[str, Any]) -> list[str]:
    """Everything the R4 JSON Schema rejects in ``resource``, as ``"Type.path: message"`` lines; [] when valid.

    Raises ``R4SchemaUnavailable`` when the schema file cannot be read (never silently passes).
    """
    if not isinstance(resource, dict):
        return [f"not a JSON object but {type(resource).__name__}"]
    return _errors(resource, "")
