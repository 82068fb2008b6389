"""The caller's principal reaches every unit of work the API opens, and scopes are checked before the
store: plain requests, transaction entries and batch entries alike."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from careflow.access.principal import Principal, Scope
from careflow.api.app import create_app
from careflow.api.interactions import FhirRequest, rights
from careflow.api.security import TrustEveryone
from careflow.fhir.search_query import parse_search
from careflow.store.memory import MemoryRepository

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _scope(text: str) -> Scope:
    context, rest = text.split("/", 1)
    rtype, letters = rest.split(".", 1)
    return Scope(context, rtype, frozenset(letters))  # type: ignore[arg-type]


class Recording(MemoryRepository):
    """A memory repository that remembers the principal of every unit of work opened on it."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[Principal] = []

    @contextmanager
    def unit_of_work(self, principal: Principal) -> Iterator[Any]:  # type: ignore[override]
        self.opened.append(principal)
        with super().unit_of_work(principal) as uow:
            yield uow


NURSE = Principal(kind="practitioner", id="PractitionerRole/r1", acts_as=("PractitionerRole/r1", "Practitioner/p1"),
                  discipline="care-coach", scopes=(_scope("user/Task.cruds"), _scope("user/Patient.rs")))


def _seed(repo: Recording) -> None:
    """A patient the caller may see (the caller holds the GMD), so the Tasks below are visible to them."""
    from careflow.access.principal import SYSTEM

    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Patient", "id": "pt1", "generalPractitioner": [{"reference": "PractitionerRole/r1"}]})
    repo.opened.clear()


def _client(repo: Recording, principal: Principal) -> TestClient:
    c = TestClient(create_app(repo, auth=TrustEveryone(principal)), raise_server_exceptions=False)
    c.headers.update(JSON)
    return c


def _task() -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/pt1"}}


def test_every_unit_of_work_is_opened_for_the_caller() -> None:
    repo = Recording()
    _seed(repo)
    c = _client(repo, NURSE)
    assert c.post("/fhir/Task", json=_task()).status_code == 201
    assert c.get("/fhir/Task").status_code == 200
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "POST", "url": "Task"}, "resource": _task()},
        {"request": {"method": "GET", "url": "Task"}}]}
    assert c.post("/fhir", json=bundle).status_code == 200
    bundle["type"] = "transaction"
    assert c.post("/fhir", json=bundle).status_code == 200
    assert repo.opened and all(p is NURSE for p in repo.opened)
    assert len(repo.opened) == 5  # 2 plain requests, 2 batch entries, 1 transaction


def test_a_scope_that_does_not_cover_the_interaction_is_403_before_the_store() -> None:
    repo = Recording()
    c = _client(repo, NURSE)
    for method, url, body in [("GET", "/fhir/Observation", None), ("POST", "/fhir/Patient", {"resourceType": "Patient"}),
                              ("DELETE", "/fhir/Patient/x", None), ("GET", "/fhir/_history", None),
                              ("GET", "/fhir/CarePlan/x/_history", None)]:
        r = c.request(method, url, json=body)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert repo.opened == []


def test_a_transaction_with_one_refused_entry_writes_nothing() -> None:
    repo = Recording()
    c = _client(repo, NURSE)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Task"}, "resource": _task()},
        {"request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}}]}
    r = c.post("/fhir", json=bundle)
    assert r.status_code == 403
    assert "Bundle.entry[1]" in r.text
    assert repo.opened == []
    assert repo.search(parse_search("Task", [])).total == 0


def test_a_refused_batch_entry_fails_alone() -> None:
    repo = Recording()
    _seed(repo)
    c = _client(repo, NURSE)
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Observation"}},
        {"request": {"method": "POST", "url": "Task"}, "resource": _task()}]}
    entries = c.post("/fhir", json=bundle).json()["entry"]
    assert entries[0]["response"]["status"].startswith("403")
    assert entries[1]["response"]["status"].startswith("201")


@pytest.mark.parametrize("req, needed", [
    (FhirRequest("GET", "Task", "1"), [("Task", "r")]),
    (FhirRequest("GET", "Task", "1", version=2), [("Task", "r")]),
    (FhirRequest("GET", "Task", "1", history=True), [("Task", "r")]),
    (FhirRequest("GET", "Task", history=True), [("Task", "s")]),
    (FhirRequest("GET", history=True), [("*", "s")]),
    (FhirRequest("GET", "Task"), [("Task", "s")]),
    (FhirRequest("POST", "Task", search=True), [("Task", "s")]),
    (FhirRequest("POST", "Task"), [("Task", "c")]),
    (FhirRequest("POST", "Task", if_none_exist="identifier=x"), [("Task", "c"), ("Task", "s")]),
    (FhirRequest("PUT", "Task", "1"), [("Task", "u")]),
    (FhirRequest("PUT", "Task", params=(("identifier", "x"),)), [("Task", "u"), ("Task", "s")]),
    (FhirRequest("DELETE", "Task", "1"), [("Task", "d")]),
    (FhirRequest("DELETE", "Task", params=(("identifier", "x"),)), [("Task", "d"), ("Task", "s")]),
    (FhirRequest("GET", "Patient", "1", operation="$everything"), [("Patient", "r")]),
])
def test_smart_v2_interaction_of_each_request(req: FhirRequest, needed: list[tuple[str, str]]) -> None:
    assert rights(req) == needed
