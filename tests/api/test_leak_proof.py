"""Leak-proof: for a caller who may not see patient P, adding P's resources leaves every response
byte-identical: ids, totals, ``_summary=count``, next links, includes, chains, history,
``$everything``, transactions and error messages.

Differential: the same generated requests go to two servers, one without P and one with P's whole
record (hidden from the caller); responses must match exactly once the volatile Bundle id and
timestamps are set aside (the stores wrote the visible data identically).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from access_world import NURSE, OUTSIDER, directory, load, patient_principal, patient_resources  # noqa: E402

from careflow.access.principal import Principal  # noqa: E402
from careflow.api.app import create_app  # noqa: E402
from careflow.api.security import TrustEveryone  # noqa: E402
from careflow.store.memory import MemoryRepository  # noqa: E402

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
HIDDEN = "hid"  # the patient the callers may not see (no consent, not in their teams)

TYPES = ["Patient", "Observation", "CarePlan", "Task", "CareTeam", "Consent", "Condition", "Goal", "PractitionerRole"]


def _requests() -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for t in TYPES:
        out += [("GET", f"/fhir/{t}", None), ("GET", f"/fhir/{t}?_summary=count", None),
                ("GET", f"/fhir/{t}?_count=1", None), ("GET", f"/fhir/{t}?_count=1&_offset=1", None),
                ("GET", f"/fhir/{t}?_include=*&_revinclude=*", None),
                ("GET", f"/fhir/{t}/_history", None), ("GET", f"/fhir/{t}?_total=accurate&_sort=-_lastUpdated", None)]
    out += [
        ("GET", "/fhir/Patient?_revinclude=Observation:subject&_revinclude:iterate=Task:based-on&_revinclude=CarePlan:subject", None),
        ("GET", "/fhir/Task?_include=Task:patient&_include:iterate=Patient:general-practitioner", None),
        ("GET", f"/fhir/Observation?subject.family=Fam{HIDDEN}", None),
        ("GET", f"/fhir/Observation?subject:Patient.identifier=ssin-{HIDDEN}", None),
        ("GET", f"/fhir/Task?patient.family=Fam{HIDDEN}", None),
        ("GET", "/fhir/Task?patient.family=Famp1", None),
        ("GET", f"/fhir/Patient?identifier=ssin-{HIDDEN}", None),
        ("GET", f"/fhir/Patient?family=Fam{HIDDEN}&_summary=count", None),
        ("GET", f"/fhir/Observation?subject=Patient/{HIDDEN}", None),
        ("GET", f"/fhir/Patient/{HIDDEN}", None),
        ("GET", f"/fhir/Patient/{HIDDEN}/_history", None),
        ("GET", f"/fhir/Patient/{HIDDEN}/_history/1", None),
        ("GET", f"/fhir/Observation/weight-{HIDDEN}", None),
        ("GET", f"/fhir/Patient/{HIDDEN}/$everything", None),
        ("GET", "/fhir/Patient/p1/$everything", None),
        ("GET", "/fhir/_history", None),
        ("GET", "/fhir/_history?_count=2", None),
        ("POST", "/fhir/Observation/_search", None),
        ("POST", "/fhir", {"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": f"Patient/{HIDDEN}"}},
            {"request": {"method": "GET", "url": f"Observation?subject=Patient/{HIDDEN}"}},
            {"request": {"method": "GET", "url": "Observation?_summary=count"}}]}),
        ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0b7c3a7e-8d5f-4a59-9b3a-1f5f5f9b3c11",
             "request": {"method": "POST", "url": "Observation"},
             "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "probe"},
                          "subject": {"reference": f"Patient/{HIDDEN}"}}}]}),
        ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "GET", "url": f"Patient?identifier=ssin-{HIDDEN}"}}]}),
        ("PUT", f"/fhir/Observation/weight-{HIDDEN}", None),
        ("DELETE", f"/fhir/Observation/weight-{HIDDEN}", None),
        ("DELETE", f"/fhir/Observation?subject=Patient/{HIDDEN}", None),
        ("POST", "/fhir/Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "probe"},
                                        "subject": {"reference": f"Patient/{HIDDEN}"}}),
    ]
    return out


def _world(with_hidden: bool, backend: str = "memory", tmp: Path | None = None) -> Any:
    if backend == "memory":
        repo: Any = MemoryRepository()
    else:
        from careflow.store.database import open_repository

        assert tmp is not None
        repo = open_repository(f"sqlite:///{tmp / ('with' if with_hidden else 'without')}.db")
    load(repo, directory() + patient_resources("p1"))
    if with_hidden:
        hidden = patient_resources(HIDDEN, consented=False)
        hidden[0]["generalPractitioner"] = [{"reference": "PractitionerRole/someone-else"}]
        load(repo, hidden)
    return repo


def _normalised(body: bytes) -> Any:
    if not body:
        return None
    doc = orjson.loads(body)

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("resourceType") == "Bundle":
                node = {k: v for k, v in node.items() if k not in ("id", "timestamp")}
                node["meta"] = {k: v for k, v in (node.get("meta") or {}).items() if k != "lastUpdated"} or None
            return {k: strip(v) for k, v in node.items() if k not in ("lastUpdated", "lastModified")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return strip(doc)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("caller", [NURSE, OUTSIDER, patient_principal("p1")], ids=["nurse", "outsider", "patient"])
def test_hidden_patients_leave_every_response_identical(caller: Principal, backend: str, tmp_path: Path) -> None:
    clients = []
    for with_hidden in (False, True):
        repo = _world(with_hidden, backend, tmp_path)
        c = TestClient(create_app(repo, auth=TrustEveryone(caller)), raise_server_exceptions=False)
        c.headers.update(JSON)
        clients.append(c)
    differences = []
    for method, url, body in _requests():
        if method == "PUT" and body is None:
            body = {"resourceType": "Observation", "id": url.rsplit("/", 1)[1], "status": "final",
                    "code": {"text": "probe"}, "subject": {"reference": f"Patient/{HIDDEN}"}}
        answers = []
        for c in clients:
            r = c.request(method, url, content=orjson.dumps(body) if body is not None else None)
            assert r.status_code < 500, (method, url, r.text)
            headers = {k: v for k, v in r.headers.items() if k in ("location", "etag", "content-location")}
            answers.append((r.status_code, headers, _normalised(r.content)))
        if answers[0] != answers[1]:
            differences.append((method, url, answers[0], answers[1]))
    assert differences == []


def test_the_differential_can_fail() -> None:
    """The same harness sees a difference when the caller may see the added patient."""
    gp = Principal("practitioner", "PractitionerRole/someone-else", acts_as=("PractitionerRole/someone-else",),
                   discipline="gp")
    totals = []
    for with_hidden in (False, True):
        c = TestClient(create_app(_world(with_hidden), auth=TrustEveryone(gp)), raise_server_exceptions=False)
        totals.append(c.get("/fhir/Observation?_summary=count", headers=JSON).json()["total"])
    assert totals[0] != totals[1]
