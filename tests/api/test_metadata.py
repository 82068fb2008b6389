"""The CapabilityStatement is valid R4, generated from the registry, and every claim in it works."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from careflow.fhir.identifying import is_identifying
from careflow.fhir.search_params import get_param
from careflow.fhir.validation import validate_resource

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "hl7-examples"


def capability(client) -> dict:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    return r.json()


def values_at(resource: dict, path: str) -> list[Any]:
    current: list[Any] = [resource]
    for part in path.split("."):
        nxt: list[Any] = []
        for c in current:
            if isinstance(c, dict) and part in c:
                v = c[part]
                nxt.extend(v if isinstance(v, list) else [v])
        current = nxt
    return current


def query_value(kind: str, value: Any, whole: bool = False) -> str | None:
    """A search value that must match ``value`` (an element found at the parameter's path); ``whole``:
    a blinded (identifying) string parameter matches whole parts only, not prefixes."""
    if kind == "token":
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            coding = value.get("coding", [value])[0] if "coding" in value else value
            code = coding.get("code") or coding.get("value")
            if code is None:
                return None
            return f"{coding['system']}|{code}" if coding.get("system") else str(code)
    if kind == "reference" and isinstance(value, dict):
        ref = value.get("reference", "")
        return ref if ref.count("/") == 1 and not ref.startswith(("#", "urn:")) else None
    if kind == "string":
        if isinstance(value, dict):
            value = value.get("family") or (value.get("given") or [None])[0] or value.get("text")
        if not (isinstance(value, str) and value.strip()):
            return None
        return value if whole else value[:3]
    if kind == "date":  # year precision: what every date parameter compares, birth dates included
        text = value.get("start") or value.get("end") if isinstance(value, dict) else value
        return f"ge{text[:4]}" if isinstance(text, str) else None
    if kind in ("quantity", "number"):
        number = value.get("value") if isinstance(value, dict) else value
        return f"le{Decimal(str(number)) + 1}" if isinstance(number, (int, float)) else None
    if kind == "uri" and isinstance(value, str):
        return value
    return None


SYNTHETIC = {"token": "x|y", "reference": "Patient/nobody", "string": "zzz", "date": "ge2020",
             "quantity": "gt5", "number": "gt5", "uri": "http://example.org/nothing"}


def test_capability_statement_is_valid_r4(client):
    cs = capability(client)
    validate_resource(cs, "CapabilityStatement")
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    assert cs["format"] == ["json", "application/fhir+json"]
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    ops = {(r["type"], o["name"]) for r in rest["resource"] for o in r.get("operation", [])}
    assert ops == {("Patient", "everything"), ("PlanDefinition", "apply")}


def test_every_claimed_type_and_interaction_works(client):
    for res in capability(client)["rest"][0]["resource"]:
        rtype = res["type"]
        codes = {i["code"] for i in res["interaction"]}
        assert codes == {"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
        assert client.get(f"/fhir/{rtype}").status_code == 200
        assert client.get(f"/fhir/{rtype}/_history").status_code == 200
    assert client.get("/fhir/Nothing").status_code == 404


def test_every_claimed_search_parameter_works(client):
    examples = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES_DIR.glob("*.json"))]
    for ex in examples:
        assert client.put(f"/fhir/{ex['resourceType']}/{ex['id']}", json=ex).status_code == 201
    proven, syntactic = 0, 0
    for res in capability(client)["rest"][0]["resource"]:
        rtype = res["type"]
        for claimed in res["searchParam"]:
            name, kind = claimed["name"], claimed["type"]
            param = get_param(rtype, name)
            assert param is not None and param.type == kind, (rtype, name)
            hit = None
            for ex in (e for e in examples if e["resourceType"] == rtype):
                for path in param.paths:
                    for value in values_at(ex, path):
                        q = query_value(kind, value, whole=is_identifying(rtype, param))
                        if q is not None:
                            hit = (ex["id"], q)
                            break
                    if hit:
                        break
                if hit:
                    break
            strict = {"Prefer": "handling=strict"}
            if hit:
                r = client.get(f"/fhir/{rtype}", params={name: hit[1], "_count": "100"}, headers=strict)
                assert r.status_code == 200, (rtype, name, r.text)
                ids = {e["resource"]["id"] for e in r.json().get("entry", [])}
                assert hit[0] in ids, (rtype, name, hit[1])
                proven += 1
            else:
                r = client.get(f"/fhir/{rtype}", params={name: SYNTHETIC[kind]}, headers=strict)
                assert r.status_code == 200, (rtype, name, r.text)
                syntactic += 1
            if not param.column:
                missing = client.get(f"/fhir/{rtype}", params={f"{name}:missing": "true"}, headers=strict)
                assert missing.status_code == 200, (rtype, name, missing.text)
    print(f"search parameters proven on examples: {proven}, accepted only: {syntactic}")
    assert proven > syntactic  # most parameters are proven on real data, not just accepted


def test_claimed_includes_are_accepted(client):
    for res in capability(client)["rest"][0]["resource"]:
        for inc in res.get("searchInclude", []):
            r = client.get(f"/fhir/{res['type']}", params={"_include": inc}, headers={"Prefer": "handling=strict"})
            assert r.status_code == 200, (inc, r.text)
        for rev in res.get("searchRevInclude", []):
            r = client.get(f"/fhir/{res['type']}", params={"_revinclude": rev}, headers={"Prefer": "handling=strict"})
            assert r.status_code == 200, (rev, r.text)


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json"])
def test_metadata_format(client, fmt):
    assert client.get("/fhir/metadata", params={"_format": fmt}).status_code == 200
