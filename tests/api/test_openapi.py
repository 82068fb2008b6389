"""The published OpenAPI describes the FHIR API: every served type, its interactions, its search
parameters (the CapabilityStatement's), FHIR media types and OperationOutcome errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from careflow.api.app import create_app
from careflow.api.interactions import SERVED_TYPES
from careflow.store.memory import MemoryRepository

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def documents(programs):
    client = TestClient(create_app(MemoryRepository(), programs), raise_server_exceptions=False)
    doc = client.get("/openapi.json").json()
    cs = client.get("/fhir/metadata", headers={"Accept": FHIR_JSON}).json()
    return doc, {r["type"]: r for r in cs["rest"][0]["resource"]}


def _resolve(doc, node):
    while "$ref" in node:
        section, kind, name = node["$ref"].lstrip("#/").split("/")
        node = doc[section][kind][name]
    return node


def test_every_served_type_and_interaction_has_its_path(documents):
    doc, statement = documents
    assert set(statement) == set(SERVED_TYPES)
    paths = doc["paths"]
    for rtype, res in statement.items():
        codes = {i["code"] for i in res["interaction"]}
        expected = {
            "search-type": (f"/fhir/{rtype}", "get"), "create": (f"/fhir/{rtype}", "post"),
            "read": (f"/fhir/{rtype}/{{id}}", "get"), "update": (f"/fhir/{rtype}/{{id}}", "put"),
            "delete": (f"/fhir/{rtype}/{{id}}", "delete"), "vread": (f"/fhir/{rtype}/{{id}}/_history/{{vid}}", "get"),
            "history-instance": (f"/fhir/{rtype}/{{id}}/_history", "get"),
            "history-type": (f"/fhir/{rtype}/_history", "get"),
        }
        for code in codes:
            path, method = expected[code]
            assert method in paths[path], (rtype, code)
        for op in res.get("operation", []):
            assert "get" in paths[f"/fhir/{rtype}/{{id}}/${op['name']}"]
        id_param = paths[f"/fhir/{rtype}/{{id}}"]["parameters"][0]
        assert id_param["in"] == "path" and id_param["schema"]["pattern"]  # not a free string
    assert {"/fhir", "/fhir/metadata", "/fhir/_history"} <= set(paths)
    assert not any("{rtype}" in p for p in paths)  # no generic route left


def test_search_parameters_are_the_capability_statements(documents):
    doc, statement = documents
    for rtype, res in statement.items():
        get = doc["paths"][f"/fhir/{rtype}"]["get"]
        names = {_resolve(doc, p)["name"] for p in get["parameters"]}
        claimed = {p["name"] for p in res["searchParam"]}
        assert claimed <= names, rtype
        assert names - claimed <= {"_count", "_offset", "_cursor", "_sort", "_summary", "_total", "_elements", "_format",
                                   "_include", "_revinclude", "Prefer"}, rtype
        include = next((_resolve(doc, p) for p in get["parameters"] if _resolve(doc, p)["name"] == "_include"), None)
        if res.get("searchInclude"):
            assert set(res["searchInclude"]) <= set(include["schema"]["items"]["enum"])
    task = {_resolve(doc, p)["name"]: _resolve(doc, p) for p in doc["paths"]["/fhir/Task"]["get"]["parameters"]}
    assert "performer" in task and "token" in task["performer"]["description"]
    assert "careflow.dev" in task["due-date"]["description"]  # careflow-defined, its definition cited


def test_media_types_and_operation_outcome_errors(documents):
    doc, _ = documents
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            if "requestBody" in op:
                media = "application/x-www-form-urlencoded" if path.endswith("/_search") else FHIR_JSON
                assert media in op["requestBody"]["content"], (path, method)
            responses = op["responses"]
            if path.endswith("/.well-known/smart-configuration"):  # plain JSON discovery, public
                assert op["security"] == []
                continue
            assert "400" in responses and "406" in responses, (path, method)
            if path != "/fhir/metadata":
                assert {"401", "403"} <= set(responses), (path, method)
            for status, response in responses.items():
                response = _resolve(doc, response)
                if status.startswith("4"):
                    schema = response["content"][FHIR_JSON]["schema"]
                    assert schema == {"$ref": "#/components/schemas/OperationOutcome"}, (path, method, status)
                elif "content" in response:
                    assert FHIR_JSON in response["content"], (path, method, status)
    read = doc["paths"]["/fhir/Patient/{id}"]["get"]["responses"]
    assert {"200", "304", "404", "410"} <= set(read)
    assert read["200"]["content"][FHIR_JSON]["schema"] == {"$ref": "#/components/schemas/Patient"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    patient = doc["components"]["schemas"]["Patient"]
    assert patient["properties"]["resourceType"]["enum"] == ["Patient"]
