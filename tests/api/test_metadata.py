"""The CapabilityStatement is valid R4, generated from the registry, and every claim in it works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from careflow.access.principal import SYSTEM
from careflow.api.app import create_app
from careflow.api.interactions import SERVED_TYPES
from careflow.errors import UnsupportedSearch
from careflow.fhir.identifying import is_identifying
from careflow.fhir.search_index import parse_path
from careflow.fhir.search_params import DATA, SearchParam, get_param, refused_params
from careflow.fhir.search_query import parse_search
from careflow.fhir.validation import validate_resource
from careflow.store.memory import MemoryRepository

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "hl7-examples"


def capability(client) -> dict:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    return r.json()


UCUM = "http://unitsofmeasure.org"


def synthetic(kind: str, param: SearchParam, identifying: bool = False) -> tuple[Any, str]:
    """A value of FHIR type ``kind`` for ``param`` and a search value that must find it."""
    if param.type == "token":
        return {
            "boolean": (True, "true"),
            "Identifier": ({"system": "urn:zq", "value": "v1"}, "urn:zq|v1"),
            "Coding": ({"system": "urn:zq", "code": "c1"}, "urn:zq|c1"),
            "CodeableConcept": ({"coding": [{"system": "urn:zq", "code": "c1"}]}, "urn:zq|c1"),
            "ContactPoint": ({"value": "v1"}, "v1"),
        }.get(kind, ("zq-1", "zq-1"))
    if param.type == "reference":
        if kind == "Reference":
            served = [t for t in param.targets if t in SERVED_TYPES] or ["Patient"]
            return {"reference": f"{served[0]}/zq1"}, f"{served[0]}/zq1"
        return "https://example.org/fhir/PlanDefinition/zq1|2", "https://example.org/fhir/PlanDefinition/zq1"
    if param.type == "date":
        return {
            "Period": {"start": "2021-02-03", "end": "2021-02-04"},
            "Timing": {"event": ["2021-02-03T10:00:00Z"]},
            "date": "2021-02-03",
        }.get(kind, "2021-02-03T10:00:00Z"), "ge2021"  # year precision: birth dates too
    if param.type == "string":  # a blinded (identifying) parameter matches whole words only, not prefixes
        value = {"HumanName": {"family": "Zqwerty"}, "Address": {"city": "Zqwerty"}}.get(kind, "Zqwerty")
        return value, "zqwerty" if identifying else "zqw"
    if param.type == "quantity":
        return {"value": 5.5, "system": UCUM, "code": "kg", "unit": "kg"}, f"5.5|{UCUM}|kg"
    if param.type == "number":
        return (5 if kind in ("integer", "positiveInt", "unsignedInt") else 5.5), "ge5"
    return "https://example.org/zq", "https://example.org/zq"


def put_at(resource: dict, path: str, value: Any) -> None:
    """Place ``value`` at a registry path, honouring its ``[child=literal]`` filters."""
    parsed = parse_path(path)
    node = resource
    conditions = {i: (child, literal) for i, child, literal in parsed.filters}
    for i, step in enumerate(parsed.steps):
        last = i == len(parsed.steps) - 1
        child = value if last else {}
        if i in conditions:
            child = {**child, conditions[i][0]: conditions[i][1]}
        node[step] = child
        node = child


def test_capability_statement_is_valid_r4(client):
    cs = capability(client)
    validate_resource(cs, "CapabilityStatement")
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    assert cs["format"] == ["json", "application/fhir+json"]
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    ops = {(r["type"], o["name"]) for r in rest["resource"] for o in r.get("operation", [])}
    assert ops == {("Patient", "everything"), ("Patient", "break-the-glass"), ("Patient", "expunge"), ("PlanDefinition", "apply"),
                   ("Subscription", "status"), ("Subscription", "events"), ("Measure", "evaluate-measure")}


def test_every_claimed_type_and_interaction_works(client):
    for res in capability(client)["rest"][0]["resource"]:
        rtype = res["type"]
        codes = {i["code"] for i in res["interaction"]}
        if rtype == "AuditEvent":  # the audit trail, read-only (tests/api/test_audit.py)
            assert codes == {"read", "search-type"}
            assert client.get(f"/fhir/{rtype}").status_code == 200
            continue
        assert codes == {"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
        assert client.get(f"/fhir/{rtype}").status_code == 200
        assert client.get(f"/fhir/{rtype}/_history").status_code == 200
    assert client.get("/fhir/Nothing").status_code == 404


def test_every_claimed_search_parameter_works(client, repo):
    """Each claimed parameter, on each element its expression reaches, finds a resource that has a value
    there and not one that has none; :missing tells them apart the other way round."""
    strict = {"Prefer": "handling=strict"}
    statement = capability(client)["rest"][0]["resource"]
    cases = []
    with repo.unit_of_work(SYSTEM) as uow:
        for res in statement:
            rtype = res["type"]
            if rtype == "AuditEvent":  # served from the audit trail, not the resource store (test_audit.py)
                continue
            uow.update({"resourceType": rtype, "id": "blank"})
            for claimed in res["searchParam"]:
                param = get_param(rtype, claimed["name"])
                assert param is not None and param.type == claimed["type"], (rtype, claimed["name"])
                assert claimed.get("definition") == param.definition
                if param.column:
                    continue
                for path, kind in zip(param.paths, param.kinds):
                    value, query = synthetic(kind, param, is_identifying(rtype, param))
                    fixed = [lit for i, child, lit in parse_path(path).filters if child == "system" and param.type == "token"
                             and i == len(parse_path(path).steps) - 1]
                    if fixed:  # the path keeps only codings of one system (Patient?population-group)
                        query = f"{fixed[0]}|{query.rsplit('|', 1)[-1]}"
                    body: dict = {"resourceType": rtype, "id": f"case-{len(cases)}"}
                    put_at(body, path, value)
                    uow.update(body)
                    cases.append((rtype, param, body["id"], query))
    assert len(cases) > 400
    for rtype, param, rid, query in cases:
        r = client.get(f"/fhir/{rtype}", params={param.name: query, "_count": "1000", "_elements": "id"},
                       headers=strict)
        assert r.status_code == 200, (rtype, param.name, r.text)
        found = {e["resource"]["id"] for e in r.json().get("entry", [])}
        assert rid in found and "blank" not in found, (rtype, param.name, query, found)
        # the same parser the API runs, straight on the store (saves an HTTP round trip per case)
        missing = repo.search(parse_search(rtype, [(f"{param.name}:missing", "true"), ("_count", "1000")],
                                           strict=True))
        found = {m.id for m in missing.matches}
        assert "blank" in found and rid not in found, (rtype, param.name)
    for res in statement:
        rtype = res["type"]
        if rtype == "AuditEvent":
            continue
        r = client.get(f"/fhir/{rtype}", params={"_id": "blank", "_lastUpdated": "ge2000"}, headers=strict)
        assert [e["resource"]["id"] for e in r.json()["entry"]] == ["blank"], rtype


def test_every_refused_parameter_is_refused(programs, verifier, system_headers):
    """The R4 parameters careflow does not support are a 400 naming them in either handling mode, and
    the statement claims none of them (refusal happens in the parser: one backend is enough)."""
    client = TestClient(create_app(MemoryRepository(), programs, auth=verifier), raise_server_exceptions=False)
    client.headers.update(system_headers)
    statement = {res["type"]: res for res in capability(client)["rest"][0]["resource"]}
    refused_count = 0
    for rtype, res in statement.items():
        claimed = {p["name"] for p in res["searchParam"]}
        if rtype == "AuditEvent":  # the audit trail's own parser refuses what it does not serve
            for name in set(DATA["types"][rtype]) - claimed:
                r = client.get(f"/fhir/{rtype}", params={name: "x"})
                assert r.status_code == 400 and r.json()["issue"][0]["code"] == "not-supported", name
            continue
        refused = refused_params(rtype)
        assert not claimed & set(refused), rtype
        # every R4 parameter of the type is either claimed or refused
        assert set(DATA["types"][rtype]) | set(DATA["common"]) <= claimed | set(refused), rtype
        for name in refused:
            r = client.get(f"/fhir/{rtype}", params={name: "x"})  # lenient by default
            assert r.status_code == 400, (rtype, name, r.status_code)
            body = r.json()
            assert body["resourceType"] == "OperationOutcome"
            assert name in body["issue"][0]["diagnostics"] and body["issue"][0]["code"] == "not-supported"
            for strict in (True, False):
                with pytest.raises(UnsupportedSearch):
                    parse_search(rtype, [(name, "x")], strict=strict)
            refused_count += 1
    assert refused_count > 100
    r = client.get("/fhir/Task", params={"performer": "x", "colour": "blue"})
    assert r.status_code == 200  # performer is supported; colour is no R4 parameter: ignored and reported
    outcome = r.json()["entry"][-1]
    assert outcome["search"]["mode"] == "outcome" and "colour" in outcome["resource"]["issue"][0]["diagnostics"]
    assert client.get("/fhir/Task", params={"colour": "blue"}, headers={"Prefer": "handling=strict"}).status_code == 400
    assert client.get("/fhir/Patient", params={"_has:Observation:patient:code": "x"}).status_code == 400
    assert client.get("/fhir/Task", params={"patient.phonetic": "x"}).status_code == 400


def test_claimed_includes_are_accepted(client):
    strict = {"Prefer": "handling=strict"}
    for res in capability(client)["rest"][0]["resource"]:
        for name, claims in (("_include", res.get("searchInclude", [])), ("_revinclude", res.get("searchRevInclude", []))):
            if claims:  # one request with every claimed value: each is refused alone under handling=strict
                r = client.get(f"/fhir/{res['type']}", params=[(name, c) for c in claims], headers=strict)
                assert r.status_code == 200, (res["type"], name, r.text)


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json"])
def test_metadata_format(client, fmt):
    assert client.get("/fhir/metadata", params={"_format": fmt}).status_code == 200
