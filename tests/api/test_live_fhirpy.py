"""A real FHIR client library (fhirpy, sync) against a live uvicorn server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

fhirpy = pytest.importorskip("fhirpy")
from fhir_builders import copd_condition  # noqa: E402
from fhirpy import SyncFHIRClient  # noqa: E402
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome  # noqa: E402

from careflow.api.app import create_app  # noqa: E402
from careflow.api.server import publish_programs  # noqa: E402
from careflow.store.database import open_repository  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, programs, verifier) -> Iterator[str]:
    repo = open_repository(f"sqlite:///{tmp_path_factory.mktemp('live') / 'live.db'}")
    publish_programs(repo, programs)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(repo, programs, auth=verifier), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        repo.close()


@pytest.fixture
def fhir(base_url: str, system_headers: dict[str, str]) -> SyncFHIRClient:
    return SyncFHIRClient(base_url, authorization=system_headers["Authorization"])


def test_create_read_update_with_if_match(fhir, base_url):
    pat = fhir.resource("Patient", name=[{"family": "Vermeulen", "given": ["Lies"]}], birthDate="1948-02-03")
    pat.save()
    assert pat.id and pat["meta"]["versionId"] == "1"
    read = fhir.reference("Patient", pat.id).to_resource()
    assert read["name"][0]["family"] == "Vermeulen"
    read["gender"] = "female"
    locked = SyncFHIRClient(base_url, authorization=fhir.authorization, extra_headers={"If-Match": 'W/"1"'})
    updated = locked.resource("Patient", **read.serialize())
    updated.save()  # PUT with If-Match: W/"1"
    assert updated["meta"]["versionId"] == "2" and updated["gender"] == "female"
    with pytest.raises(MultipleResourcesFound):  # fhirpy's name for HTTP 412: W/"1" is stale now
        locked.resource("Patient", **read.serialize()).save()
    assert fhir.reference("Patient", pat.id).to_resource()["meta"]["versionId"] == "2"
    with pytest.raises(OperationOutcome):
        fhir.resource("Patient", birthDate="not a date").save()


def test_search_with_paging_and_include(fhir):
    role = fhir.resource("PractitionerRole", active=True, code=[{"text": "home nurse"}])
    role.save()
    pat = fhir.resource("Patient", name=[{"family": "Paging"}])
    pat.save()
    for i in range(7):
        fhir.resource("Task", status="requested", intent="order", description=f"visit {i}",
                      owner={"reference": f"PractitionerRole/{role.id}"}, **{"for": {"reference": f"Patient/{pat.id}"}}).save()
    search = fhir.resources("Task").search(owner=f"PractitionerRole/{role.id}", status="requested")
    assert len(search.limit(3).fetch()) == 3
    assert search.count() == 7
    everything = search.limit(3).fetch_all()  # follows the next links
    assert len(everything) == 7 and len({t.id for t in everything}) == 7
    raw = search.include("Task", "owner").limit(50).fetch_raw()
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in raw["entry"]]
    assert modes.count(("Task", "match")) == 7 and ("PractitionerRole", "include") in modes


def test_transaction_bundle(fhir):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8c2c3b7e-54a0-4c7e-9f0e-1a2b3c4d5e01",
         "resource": {"resourceType": "Patient", "name": [{"family": "Transactie"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:8c2c3b7e-54a0-4c7e-9f0e-1a2b3c4d5e02",
         "resource": copd_condition("urn:uuid:8c2c3b7e-54a0-4c7e-9f0e-1a2b3c4d5e01"),
         "request": {"method": "POST", "url": "Condition"}},
    ]}
    out = fhir.execute("", method="post", data=bundle)
    assert out["type"] == "transaction-response"
    pat_ref = "/".join(out["entry"][0]["response"]["location"].split("/")[:2])
    cond = fhir.resources("Condition").search(patient=pat_ref).first()
    assert cond is not None and cond["subject"]["reference"] == pat_ref


def test_apply(fhir):
    pat = fhir.resource("Patient", name=[{"family": "Apply"}], birthDate="1950-01-01")
    pat.save()
    fhir.resource("Condition", **{k: v for k, v in copd_condition(f"Patient/{pat.id}").items() if k != "resourceType"}).save()
    plan = fhir.execute("PlanDefinition/copd/$apply", method="get",
                        params={"subject": f"Patient/{pat.id}", "start": "2026-03-02"})
    assert plan["resourceType"] == "CarePlan" and plan["subject"]["reference"] == f"Patient/{pat.id}"
    persisted = fhir.execute("PlanDefinition/copd/$apply", method="post",
                             params={"subject": f"Patient/{pat.id}", "start": "2026-03-02", "persist": "true"})
    assert fhir.reference("CarePlan", persisted["id"]).to_resource()["status"] == "active"
    tasks = fhir.resources("Task").search(**{"based-on": f"CarePlan/{persisted['id']}"}).fetch_all()
    assert len(tasks) == len(persisted["activity"])
