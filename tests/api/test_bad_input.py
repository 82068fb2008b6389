"""Every kind of bad request gets its exact status and an OperationOutcome, and stores nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from careflow.access.principal import SYSTEM
from careflow.api.app import create_app
from careflow.api.security import TrustEveryone
from careflow.store.memory import MemoryRepository


def stored_versions(client) -> int:
    return client.get("/fhir/_history").json()["total"]


def assert_outcome(r, status: int, *, expression: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["severity"] in ("error", "fatal", "warning") for i in body["issue"])
    if expression:
        assert any(expression in i.get("expression", []) for i in body["issue"]), body
    return body


BAD_WRITES = [
    # (method, url, body bytes, headers, status, expression)
    ("POST", "/fhir/Patient", b"{not json", {}, 400, None),
    ("POST", "/fhir/Patient", b"", {}, 400, None),
    ("POST", "/fhir/Patient", b"[1, 2]", {}, 400, None),
    ("POST", "/fhir/Patient", b"\xff\xfe{}", {}, 400, None),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient", "birthDate": "1950-13-45"}', {}, 400, "Patient.birthDate"),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient", "name": [{"given": ["a", 7]}]}', {}, 400, "Patient.name[0].given[1]"),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient", "active": null}', {}, 400, "Patient.active"),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient", "name": []}', {}, 400, "Patient.name"),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient", "shoeSize": 42}', {}, 400, "Patient.shoeSize"),
    ("POST", "/fhir/Task", b'{"resourceType": "Task", "intent": "order"}', {}, 400, "Task.status"),
    ("POST", "/fhir/Patient", b'{"resourceType": "Task", "status": "draft", "intent": "order"}', {}, 400, None),
    ("POST", "/fhir/Patient", b'{"name": [{"family": "x"}]}', {}, 400, None),
    ("POST", "/fhir/PlanDefinition", b'{"resourceType": "PlanDefinition", "status": "draft", "subjectCanonical": "http://x"}',
     {}, 400, "PlanDefinition.subjectCanonical"),
    ("PUT", "/fhir/Patient/p1", b'{"resourceType": "Patient", "id": "p2"}', {}, 400, "Patient.id"),
    ("PUT", "/fhir/Patient/p1", b'{"resourceType": "Patient"}', {}, 400, "Patient.id"),
    ("PUT", "/fhir/Patient/bad_id", b'{"resourceType": "Patient", "id": "bad_id"}', {}, 400, None),
    ("PUT", "/fhir/Patient/" + "a" * 65, b'{"resourceType": "Patient"}', {}, 400, None),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient"}', {"Content-Type": "text/plain"}, 415, None),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient"}', {"Content-Type": "application/fhir+xml"}, 415, None),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient"}', {"Content-Type": ""}, 415, None),
    ("POST", "/fhir/Foo", b'{"resourceType": "Foo"}', {}, 404, None),
    ("POST", "/fhir/SubscriptionTopic", b'{"resourceType": "SubscriptionTopic"}', {}, 404, None),
    ("POST", "/fhir/Patient", b'{"resourceType": "Patient"}', {"If-None-Exist": "nonsense=1"}, 400, None),
    ("PUT", "/fhir/Patient/p1", b'{"resourceType": "Patient", "id": "p1"}', {"If-Match": "garbage"}, 400, None),
    ("PUT", "/fhir/Patient/p1", b'{"resourceType": "Patient", "id": "p1"}', {"If-Match": 'W/"3"'}, 404, None),
    ("POST", "/fhir", b'{"resourceType": "Patient"}', {}, 400, None),
    ("POST", "/fhir", b'{"resourceType": "Bundle", "type": "collection"}', {}, 400, "Bundle.type"),
]


@pytest.mark.parametrize("method,url,body,headers,status,expression", BAD_WRITES)
def test_bad_writes(client, method, url, body, headers, status, expression):
    before = stored_versions(client)
    r = client.request(method, url, content=body, headers=headers)
    assert_outcome(r, status, expression=expression)
    assert stored_versions(client) == before


def test_deeply_nested_resource_is_refused(client):
    ext: dict = {"url": "http://x", "valueString": "leaf"}
    for _ in range(300):
        ext = {"url": "http://x", "extension": [ext]}
    r = client.post("/fhir/Patient", json={"resourceType": "Patient", "extension": [ext]})
    assert_outcome(r, 400)
    assert stored_versions(client) == 0


@pytest.mark.parametrize("url", ["/fhir/Patient", "/fhir", "/fhir/Patient/p1/$everything"])
def test_a_body_nested_past_the_parsers_stack_is_a_400_not_a_500(client, url):
    # the JSON parser recurses once per level, so 100,000 brackets fail inside it, before the depth check
    body = '{"resourceType": "Patient", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = client.post(url, content=body, headers={"Content-Type": "application/fhir+json"})
    assert_outcome(r, 400)
    assert "nested more than" in r.json()["issue"][0]["diagnostics"]
    assert stored_versions(client) == 0


@pytest.mark.parametrize("method,url,status", [
    ("GET", "/fhir/Foo", 404),
    ("GET", "/fhir/Foo/1", 404),
    ("GET", "/fhir/Patient/a_b", 400),
    ("GET", "/fhir/Patient/p/_history/x", 400),
    ("GET", "/fhir/Patient/p/_history/1", 404),
    ("GET", "/fhir/nothing/here/at/all", 404),
    ("GET", "/fhir/Patient/p/frobnicate", 404),
    ("GET", "/fhir/Patient/$frobnicate", 404),
    ("GET", "/fhir/Patient/p/$frobnicate", 404),
    ("GET", "/fhir", 405),
    ("PATCH", "/fhir/Patient/p", 405),
    ("GET", "/fhir/Patient?birthdate=notadate", 400),
    ("GET", "/fhir/Patient?_count=-1", 400),
    ("GET", "/fhir/Patient?_sort=shoe", 400),
    ("GET", "/fhir/Patient?_summary=maybe", 400),
    ("GET", "/fhir/Patient?gender:fancy=x", 400),
])
def test_bad_reads(client, method, url, status):
    assert_outcome(client.request(method, url), status)


def test_the_history_of_an_unknown_resource_names_the_resource_not_a_version(client):
    r = client.get("/fhir/Patient/nobody/_history")
    assert_outcome(r, 404)
    assert r.json()["issue"][0]["diagnostics"] == "Patient/nobody is not known"


def test_unknown_search_parameter_strict_and_lenient(client):
    assert_outcome(client.get("/fhir/Patient?shoe-size=42", headers={"Prefer": "handling=strict"}), 400)
    r = client.get("/fhir/Patient?shoe-size=42", headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200
    outcome = [e for e in r.json().get("entry", []) if e["search"]["mode"] == "outcome"]
    assert outcome and "shoe-size" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "shoe-size" not in r.json()["link"][0]["url"]  # self link shows what was applied
    assert client.get("/fhir/Patient?shoe-size=42").status_code == 200  # lenient is the default


def test_oversize_bodies_are_refused_by_length_and_by_stream():
    client = TestClient(create_app(MemoryRepository(), max_body_bytes=1000, auth=TrustEveryone(SYSTEM)),
                        raise_server_exceptions=False)
    big = b'{"resourceType": "Patient", "name": [{"text": "' + b"x" * 5000 + b'"}]}'
    assert_outcome(client.post("/fhir/Patient", content=big, headers={"Content-Type": "application/fhir+json"}), 413)

    def chunks():  # no Content-Length: the cap must hold while streaming
        for i in range(0, len(big), 100):
            yield big[i:i + 100]

    r = client.post("/fhir/Patient", content=chunks(), headers={"Content-Type": "application/fhir+json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_outcome(r, 413)
    assert client.get("/fhir/_history").json()["total"] == 0


def test_unexpected_failure_is_a_500_outcome_without_traceback():
    class Broken(MemoryRepository):
        def unit_of_work(self, principal):  # type: ignore[override]
            raise RuntimeError("disk on fire")

    client = TestClient(create_app(Broken(), auth=TrustEveryone(SYSTEM)), raise_server_exceptions=False)
    r = client.get("/fhir/Patient/x")
    body = assert_outcome(r, 500)
    assert "disk on fire" not in r.text and "Traceback" not in r.text
    assert body["issue"][0]["code"] == "exception"


def test_invalid_resource_reports_every_path(client):
    r = client.post("/fhir/Patient", json={"resourceType": "Patient", "birthDate": "x", "gender": 3})
    body = assert_outcome(r, 400)
    paths = {e for i in body["issue"] for e in i.get("expression", [])}
    assert {"Patient.birthDate", "Patient.gender"} <= paths


def test_r4b_only_datatypes_are_refused(client):
    ext = {"url": "http://example.org/x", "valueCodeableReference": {"concept": {"text": "a"}}}
    r = client.post("/fhir/Patient", json={"resourceType": "Patient", "extension": [ext]})
    assert_outcome(r, 400, expression="Patient.extension[0].valueCodeableReference")


def test_primitives_must_have_their_json_type(client):
    """The R4B models coerce "yes" to true and "3" to 3; FHIR JSON does not, nor do we."""
    cases = [
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "active": 1}, "Patient.active"),
        ({"resourceType": "Patient", "multipleBirthInteger": "3"}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Observation", "status": "final", "code": {"text": "w"},
          "valueQuantity": {"value": "80.5", "unit": "kg"}}, "Observation.valueQuantity.value"),
        ({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "active": "true"}]},
         "Patient.contained[0].active"),
    ]
    for body, where in cases:
        assert_outcome(client.post(f"/fhir/{body['resourceType']}", json=body), 400, expression=where)
    assert stored_versions(client) == 0
