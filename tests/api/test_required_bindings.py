"""Codes under a required binding of R4 are enforced on input, for every served type.

Which elements are bound, and to which codes, comes from the official R4 JSON Schema (its ``enum``
properties), so the test is generated the same way: every bound element of every official example
gets a code outside its binding and must be refused, naming the element and the allowed codes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from careflow.fhir.validation import required_codes

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "hl7-examples").glob("*.json"))
WRITABLE = [p for p in EXAMPLES if not p.name.startswith("AuditEvent-")]


def _bound_elements():
    for path in WRITABLE:
        resource = json.loads(path.read_text(encoding="utf-8"))
        for name in sorted(required_codes(resource["resourceType"])):
            if isinstance(resource.get(name), (str, list)):
                yield pytest.param(resource, name, id=f"{path.stem}.{name}")


def test_the_bindings_come_from_the_r4_definitions():
    assert required_codes("Task")["status"] >= {"requested", "completed", "entered-in-error"}
    assert required_codes("Patient")["gender"] == {"male", "female", "other", "unknown"}
    assert "code" not in required_codes("Observation")  # an example binding, not a required one
    assert required_codes("CarePlan_Detail")["status"] >= {"not-started", "scheduled"}
    assert len(list(_bound_elements())) >= 30


@pytest.mark.parametrize("resource,element", list(_bound_elements()))
def test_a_code_outside_a_required_binding_is_refused(client, resource, element):
    bad = copy.deepcopy(resource)
    bad.pop("id", None)
    bad[element] = ["not-a-code"] if isinstance(bad[element], list) else "not-a-code"
    r = client.post(f"/fhir/{bad['resourceType']}", json=bad)
    assert r.status_code == 400, r.text[:300]
    issues = r.json()["issue"]
    where = f"{bad['resourceType']}.{element}"
    assert any(where in (i.get("expression") or [""])[0] or where in i.get("diagnostics", "") for i in issues), issues
    allowed = sorted(required_codes(bad["resourceType"])[element])[0]
    assert any(allowed in i.get("diagnostics", "") for i in issues)


@pytest.mark.parametrize("body", [
    {"resourceType": "Task", "status": "bogus", "intent": "order"},
    {"resourceType": "Patient", "gender": "robot"},
    {"resourceType": "Observation", "status": "nonsense", "code": {"text": "weight"}},
    {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
     "valueQuantity": {"value": 1, "comparator": "~"}},
    {"resourceType": "Patient", "contact": [{"gender": "robot"}]},
], ids=["task-status", "gender", "observation-status", "comparator", "backbone"])
def test_nested_and_datatype_bindings_are_refused_in_every_write_path(client, body):
    assert client.post(f"/fhir/{body['resourceType']}", json=body).status_code == 400
    put = client.put(f"/fhir/{body['resourceType']}/bound-1", json={**body, "id": "bound-1"})
    assert put.status_code == 400
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": body, "request": {"method": "POST", "url": body["resourceType"]}}]}
    assert client.post("/fhir", json=bundle).status_code == 400
    assert client.get(f"/fhir/{body['resourceType']}/bound-1").status_code == 404
