"""The OpenAPI document of the FHIR API, generated from what the CapabilityStatement says.

FastAPI's own document would describe the routes as they are written (``/fhir/{rtype}/{rid}`` with
free strings, bodies of type string, only 200 and 422): API tooling, client generators and fuzzers
learn nothing from it.  This one names every served resource type and its interactions, the search
parameters of each type (from the same registry as the CapabilityStatement, with ``_include`` /
``_revinclude`` values, ``_summary`` / ``_total`` codes), the FHIR media types, the headers FHIR
uses (If-Match, If-None-Exist, If-None-Match, Prefer) and the OperationOutcome of every error status
the server answers.  Resource bodies are described as FHIR R4 JSON objects of their type; the full
structure is the R4 specification's (linked from each schema), validated by the server itself.
"""

from __future__ import annotations

from typing import Any, Iterable

from careflow.api.capability import (
    FHIR_VERSION,
    SYSTEM_INTERACTIONS,
    TYPE_INTERACTIONS,
    includes_of,
    param_documentation,
    revincludes_of,
)
from careflow.api.interactions import SERVED_TYPES
from careflow.fhir.search_params import SearchParam, params_for, refused_params
from careflow.fhir.search_query import MAX_COUNT

FHIR_JSON = "application/fhir+json"
MEDIA_TYPES = (FHIR_JSON, "application/json")
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"

_ERRORS: dict[str, str] = {
    "400": "the request is malformed: bad id, invalid resource, unknown or refused search parameter, bad value",
    "401": "no valid bearer token (WWW-Authenticate says why)",
    "403": "the token's scopes do not allow this interaction on this type",
    "404": "no such resource, resource type or operation",
    "405": "method not allowed here (a conditional update or delete without criteria)",
    "406": "the Accept header asks for something other than FHIR JSON",
    "409": "conflict with a concurrent write",
    "410": "the resource was deleted",
    "412": "If-Match names another version, or conditional criteria match more than one resource",
    "413": "the request body is too large",
    "415": "the body is not FHIR JSON",
    "422": "a business rule refuses the request",
}

# which error statuses each interaction can answer (every one may also answer 400 and 406)
_INTERACTION_ERRORS: dict[str, tuple[str, ...]] = {
    "read": ("404", "410"),
    "vread": ("404", "410"),
    "update": ("404", "409", "412", "413", "415"),
    "delete": ("404", "409", "412"),
    "create": ("412", "413", "415"),
    "conditional-update": ("404", "405", "409", "412", "413", "415"),
    "conditional-delete": ("405", "412"),
    "search-type": (),
    "history-instance": ("404",),
    "history-type": (),
    "history-system": (),
    "transaction": ("404", "409", "412", "413", "415", "422"),
    "metadata": (),
    "operation": ("404", "405", "410", "413", "415", "422"),
}

_PARAM_FORMAT: dict[str, str] = {
    "token": "[system|]code, system|, |code; ':not', ':missing'",
    "reference": "[Type/]id or an absolute URL; ':Type', ':missing', chaining (name.param)",
    "date": "[eq|ne|gt|lt|ge|le|sa|eb|ap]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]; ':missing'",
    "string": "case- and accent-insensitive prefix; ':exact', ':contains', ':missing'",
    "quantity": "[prefix]number[|system|code]; ':missing'",
    "number": "[prefix]number; ':missing'",
    "uri": "exact; ':below' (prefix), ':missing'",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {media: {"schema": schema} for media in MEDIA_TYPES}


_PUBLIC = ("metadata",)


def _responses(ok: dict[str, Any], interaction: str) -> dict[str, Any]:
    out = dict(ok)
    auth = () if interaction in _PUBLIC else ("401", "403")
    for status in sorted(("400", *auth, *_INTERACTION_ERRORS[interaction], "406")):
        out[status] = {"$ref": f"#/components/responses/Error{status}"}
    return out


def _resource_response(description: str, schema: str, *, headers: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": _content(_ref(schema))}
    if headers:
        out["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"},
                          "Last-Modified": {"$ref": "#/components/headers/Last-Modified"}}
    return out


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _search_parameter(p: SearchParam, *, location: str = "query") -> dict[str, Any]:
    doc = param_documentation(p)
    description = f"{p.type} search parameter" + (f": {doc}" if doc else "") + f". Values: {_PARAM_FORMAT[p.type]}."
    if p.definition:
        description += f" Definition: {p.definition}"
    return {"name": p.name, "in": location, "required": False, "description": description,
            "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": True}


def _result_parameters(rtype: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": "_count", "in": "query", "description": f"page size (at most {MAX_COUNT}; 0 gives the total only)",
         "schema": {"type": "integer", "minimum": 0}},
        {"name": "_offset", "in": "query", "description": "how many matches to skip", "schema": {"type": "integer", "minimum": 0}},
        {"name": "_cursor", "in": "query", "description": "where the page starts: copy it from a next link",
         "schema": {"type": "string"}},
        {"name": "_sort", "in": "query", "description": "comma-separated parameter names, '-' for descending",
         "schema": {"type": "string"}},
        {"name": "_summary", "in": "query", "schema": {"type": "string", "enum": ["true", "text", "data", "count", "false"]}},
        {"name": "_total", "in": "query", "schema": {"type": "string", "enum": ["none", "estimate", "accurate"]}},
        {"name": "_elements", "in": "query", "description": "comma-separated top-level element names",
         "schema": {"type": "string"}},
        {"name": "_format", "in": "query", "schema": {"type": "string", "enum": ["json", FHIR_JSON, "application/json"]}},
    ]
    for name, values in (("_include", includes_of(rtype)), ("_revinclude", revincludes_of(rtype))):
        if values:
            out.append({"name": name, "in": "query", "style": "form", "explode": True,
                        "description": "resources to include (also '*' and ':iterate')",
                        "schema": {"type": "array", "items": {"type": "string", "enum": [*values, "*"]}}})
    return out


def _param_key(rtype: str, p: SearchParam) -> str:
    """Component name of a search parameter: Resource-level ones are shared by every type."""
    return f"Resource.{p.name}" if p.name.startswith("_") else f"{rtype}.{p.name}"


def _search_parameters(rtype: str) -> list[dict[str, Any]]:
    return [{"$ref": f"#/components/parameters/{_param_key(rtype, p)}"}
            for p in sorted(params_for(rtype).values(), key=lambda p: p.name)]


def _search_parameter_components() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rtype in SERVED_TYPES:
        for p in params_for(rtype).values():
            out.setdefault(_param_key(rtype, p), _search_parameter(p))
    return out


def _refused_note(rtype: str) -> str:
    names = sorted(refused_params(rtype))
    return ("Standard R4 search parameters careflow refuses with 400: " + ", ".join(names) + ".") if names else ""


def _type_paths(rtype: str, operations: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    tag = [rtype]
    rid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
    vid = {"name": "vid", "in": "path", "required": True, "schema": {"type": "string", "pattern": r"^[0-9]{1,18}$"}}
    body = {"required": True, "content": _content(_ref(rtype))}
    search = _search_parameters(rtype)
    paging = _result_parameters(rtype)
    bundle = {"200": {"description": "searchset Bundle", "content": _content(_ref("Bundle"))}}
    history = [
        {"name": "_count", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "_offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "_since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    ]
    history_ok = {"200": {"description": "history Bundle", "content": _content(_ref("Bundle"))}}
    written = {"200": _resource_response("updated (Prefer: return=representation)", rtype),
               "201": _resource_response("created", rtype)}
    paths: dict[str, Any] = {
        f"/fhir/{rtype}": {
            "get": {"operationId": f"search{rtype}", "tags": tag, "summary": f"search {rtype}",
                    "description": _refused_note(rtype),
                    "parameters": [*search, *paging, _header("Prefer")],
                    "responses": _responses(bundle, "search-type")},
            "post": {"operationId": f"create{rtype}", "tags": tag, "summary": f"create a {rtype}",
                     "parameters": [_header("If-None-Exist"), _header("Prefer")], "requestBody": body,
                     "responses": _responses({"201": _resource_response("created", rtype),
                                              "200": _resource_response("If-None-Exist matched one", rtype)},
                                             "create")},
            "put": {"operationId": f"conditionalUpdate{rtype}", "tags": tag,
                    "summary": f"conditional update of a {rtype} (search criteria in the query)",
                    "parameters": [*search, _header("If-Match"), _header("Prefer")], "requestBody": body,
                    "responses": _responses(written, "conditional-update")},
            "delete": {"operationId": f"conditionalDelete{rtype}", "tags": tag,
                       "summary": f"conditional delete of a {rtype}", "parameters": [*search, _header("Prefer")],
                       "responses": _responses({"204": {"description": "deleted (or nothing matched)"},
                                                "200": _resource_response("Prefer: return=OperationOutcome",
                                                                          "OperationOutcome", headers=False)},
                                               "conditional-delete")},
        },
        f"/fhir/{rtype}/_search": {
            "post": {"operationId": f"searchPost{rtype}", "tags": tag, "summary": f"search {rtype} (form body)",
                     "parameters": [_header("Prefer")],
                     "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                         "type": "object",
                         "properties": {p.name: {"type": "string"} for p in params_for(rtype).values()}}}}},
                     "responses": _responses(bundle, "search-type")},
        },
        f"/fhir/{rtype}/_history": {
            "get": {"operationId": f"history{rtype}", "tags": tag, "summary": f"history of every {rtype}",
                    "parameters": history, "responses": _responses(history_ok, "history-type")},
        },
        f"/fhir/{rtype}/{{id}}": {
            "parameters": [rid],
            "get": {"operationId": f"read{rtype}", "tags": tag, "summary": f"read a {rtype}",
                    "parameters": [_header("If-None-Match")],
                    "responses": _responses({"200": _resource_response("the current version", rtype),
                                             "304": {"description": "If-None-Match names the current version"}},
                                            "read")},
            "put": {"operationId": f"update{rtype}", "tags": tag, "summary": f"update (or create) a {rtype}",
                    "parameters": [_header("If-Match"), _header("Prefer")], "requestBody": body,
                    "responses": _responses(written, "update")},
            "delete": {"operationId": f"delete{rtype}", "tags": tag, "summary": f"delete a {rtype}",
                       "parameters": [_header("If-Match"), _header("Prefer")],
                       "responses": _responses({"204": {"description": "deleted (also when absent)"},
                                                "200": _resource_response("Prefer: return=OperationOutcome",
                                                                          "OperationOutcome", headers=False)},
                                               "delete")},
        },
        f"/fhir/{rtype}/{{id}}/_history": {
            "parameters": [rid],
            "get": {"operationId": f"historyInstance{rtype}", "tags": tag, "summary": f"history of one {rtype}",
                    "parameters": history, "responses": _responses(history_ok, "history-instance")},
        },
        f"/fhir/{rtype}/{{id}}/_history/{{vid}}": {
            "parameters": [rid, vid],
            "get": {"operationId": f"vread{rtype}", "tags": tag, "summary": f"read one version of a {rtype}",
                    "responses": _responses({"200": _resource_response("that version", rtype)}, "vread")},
        },
    }
    if rtype == "AuditEvent":
        return _audit_paths(paths)
    for t, name, definition, doc in operations:
        if t != rtype:
            continue
        op_id = name.lstrip("$")
        parameters = [{"name": n, "in": "query", "schema": {"type": "string"}, "description": d}
                      for n, d in _OPERATION_PARAMETERS.get((rtype, name), ())]
        entry = {"tags": tag, "summary": f"{name}: {doc}", "description": f"OperationDefinition: {definition}",
                 "parameters": parameters,
                 "responses": _responses({"200": {"description": "the operation's result (Bundle or resource)",
                                                  "content": _content(_ref("Resource"))}}, "operation")}
        paths[f"/fhir/{rtype}/{{id}}/{name}"] = {
            "parameters": [rid],
            "get": {"operationId": f"{op_id}{rtype}Get", **entry},
            "post": {"operationId": f"{op_id}{rtype}Post", **entry,
                     "requestBody": {"required": False, "content": _content(_ref("Parameters"))}},
        }
    return paths


def _audit_paths(paths: dict[str, Any]) -> dict[str, Any]:
    """The audit trail is read-only and has its own parameters (``careflow.audit.query``): search,
    read and vread of version 1 only, so a client generated from this document offers no write and no
    history, and a fuzzer expects the 405 those answer."""
    from careflow.audit.query import CONTROL, SUPPORTED

    keep = {"/fhir/AuditEvent": ("get",), "/fhir/AuditEvent/_search": ("post",),
            "/fhir/AuditEvent/{id}": ("parameters", "get"), "/fhir/AuditEvent/{id}/_history/{vid}": ("parameters", "get")}
    out = {path: {k: v for k, v in paths[path].items() if k in allowed} for path, allowed in keep.items()}
    search = out["/fhir/AuditEvent"]["get"]
    search["description"] = "The audit trail (IHE BALP), written by the server itself; read-only."
    search["parameters"] = [p for p in search["parameters"]
                            if p.get("$ref", "").rsplit(".", 1)[-1] in SUPPORTED or p.get("name") in (*CONTROL, "Prefer")]
    form = out["/fhir/AuditEvent/_search"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    form["properties"] = {k: v for k, v in form["properties"].items() if k in SUPPORTED}
    return out


_OPERATION_PARAMETERS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("PlanDefinition", "$apply"): (("subject", "Patient/[id] the plan is for (required)"),
                                   ("start", "the plan's first day (YYYY-MM-DD, default today)"),
                                   ("persist", "true stores the plan; false (default) returns it contained")),
    ("Patient", "$everything"): (("_count", "page size"), ("_offset", "how many to skip")),
    ("Measure", "$evaluate-measure"): (("periodStart", "first day of a calendar month or year (YYYY-MM-DD)"),
                                       ("periodEnd", "last day of that month or year"),
                                       ("reportType", "population (default), subject-list or subject"),
                                       ("subject", "Patient/[id] for reportType subject")),
}


def _schemas() -> dict[str, Any]:
    def resource_schema(rtype: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": f"A FHIR R4 {rtype} resource (JSON).",
            "externalDocs": {"url": f"http://hl7.org/fhir/R4/{rtype.lower()}.html"},
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "enum": [rtype]},
                           "id": {"type": "string", "pattern": ID_PATTERN}, "meta": {"type": "object"}},
            "additionalProperties": True,
        }

    schemas = {t: resource_schema(t) for t in (*SERVED_TYPES, "Bundle", "Parameters", "CapabilityStatement")}
    schemas["Resource"] = {"type": "object", "required": ["resourceType"],
                           "properties": {"resourceType": {"type": "string"}}, "additionalProperties": True}
    schemas["OperationOutcome"] = {
        "type": "object", "required": ["resourceType", "issue"],
        "externalDocs": {"url": "http://hl7.org/fhir/R4/operationoutcome.html"},
        "properties": {
            "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code"],
                "properties": {"severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
                               "code": {"type": "string"}, "diagnostics": {"type": "string"},
                               "expression": {"type": "array", "items": {"type": "string"}}}}},
        },
    }
    return schemas


def openapi_document(operations: Iterable[tuple[str, str, str, str]], *, version: str) -> dict[str, Any]:
    """The whole document; ``operations`` as the CapabilityStatement gets them."""
    ops = list(operations)
    smart = {"get": {
        "tags": ["system"], "summary": "SMART App Launch configuration (where to get tokens)", "security": [],
        "responses": {"200": {"description": "the SMART configuration document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    paths: dict[str, Any] = {
        "/.well-known/smart-configuration": {"get": {**smart["get"], "operationId": "smartConfiguration"}},
        "/fhir/.well-known/smart-configuration": {"get": {**smart["get"], "operationId": "smartConfigurationFhir"}},
        "/fhir/metadata": {"get": {
            "operationId": "capabilities", "tags": ["system"], "summary": "CapabilityStatement", "security": [],
            "parameters": [{"name": "_format", "in": "query", "schema": {"type": "string"}}],
            "responses": _responses({"200": {"description": "what this server supports",
                                             "content": _content(_ref("CapabilityStatement"))}}, "metadata")}},
        "/fhir": {"post": {
            "operationId": "transaction", "tags": ["system"], "summary": "transaction or batch Bundle",
            "parameters": [_header("Prefer")],
            "requestBody": {"required": True, "content": _content(_ref("Bundle"))},
            "responses": _responses({"200": {"description": "transaction-response / batch-response Bundle",
                                             "content": _content(_ref("Bundle"))}}, "transaction")}},
        "/fhir/_history": {"get": {
            "operationId": "historySystem", "tags": ["system"], "summary": "history of every resource",
            "parameters": [{"name": "_count", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "_offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                           {"name": "_since", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": _responses({"200": {"description": "history Bundle", "content": _content(_ref("Bundle"))}},
                                    "history-system")}},
    }
    for rtype in SERVED_TYPES:
        paths.update(_type_paths(rtype, ops))
    oo = _content(_ref("OperationOutcome"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "careflow FHIR R4 API",
            "version": version,
            "description": (
                f"FHIR R{FHIR_VERSION[0]} ({FHIR_VERSION}) REST API of careflow, JSON only. Generated from the "
                "same registry as the CapabilityStatement at /fhir/metadata. Type interactions: "
                + ", ".join(TYPE_INTERACTIONS) + "; system: " + ", ".join(SYSTEM_INTERACTIONS) + ". Every error "
                "is an OperationOutcome."
            ),
        },
        "tags": [{"name": "system"}, *({"name": t} for t in SERVED_TYPES)],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "a JWT of a trusted issuer with SMART v2 scopes (see /.well-known/smart-configuration)"}},
            "schemas": _schemas(),
            "responses": {f"Error{status}": {"description": text, "content": oo} for status, text in _ERRORS.items()},
            "headers": {
                "ETag": {"schema": {"type": "string"}, "description": 'the version, W/"n"'},
                "Last-Modified": {"schema": {"type": "string"}},
            },
            "parameters": {
                **_search_parameter_components(),
                "If-Match": {"name": "If-Match", "in": "header", "schema": {"type": "string", "pattern": r'^W/"[0-9]+"$'},
                             "description": 'only if the current version is this one (W/"n")'},
                "If-None-Match": {"name": "If-None-Match", "in": "header",
                                  "schema": {"type": "string", "pattern": r'^W/"[0-9]+"$'},
                                  "description": "304 when the current version is this one"},
                "If-None-Exist": {"name": "If-None-Exist", "in": "header", "schema": {"type": "string"},
                                  "description": "conditional create: search criteria (param=value&...)"},
                "Prefer": {"name": "Prefer", "in": "header", "schema": {"type": "string"},
                           "description": "return=minimal|representation|OperationOutcome, handling=strict|lenient"},
            },
        },
    }
