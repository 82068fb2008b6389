"""PlanDefinition/$apply (careflow's planner behind FHIR clinical reasoning) and Patient/$everything."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir_builders import copd_condition, patient

from careflow.api.app import create_app
from careflow.fhir.validation import validate_resource
from careflow.programs.plandefinition import to_bundle

START = "2026-03-02"


def versions(client) -> int:
    return client.get("/fhir/_history").json()["total"]


def publish(client, program) -> None:
    for entry in to_bundle(program)["entry"]:
        r = entry["resource"]
        assert client.put(f"/fhir/{r['resourceType']}/{r['id']}", json=r).status_code == 201


def copd_patient(client, pid: str = "pat-copd") -> str:
    client.put(f"/fhir/Patient/{pid}", json=patient(id=pid))
    assert client.post("/fhir/Condition", json=copd_condition(f"Patient/{pid}")).status_code == 201
    return pid


def test_apply_returns_a_careplan_with_contained_resources_and_stores_nothing(client, programs):
    publish(client, programs["copd"])
    pid = copd_patient(client)
    before = versions(client)
    r = client.get(f"/fhir/PlanDefinition/copd/$apply?subject=Patient/{pid}&start={START}")
    assert r.status_code == 200, r.text
    plan = r.json()
    validate_resource(plan, "CarePlan")
    assert plan["subject"]["reference"] == f"Patient/{pid}"
    assert plan["instantiatesCanonical"][0].startswith(programs["copd"].url)
    kinds = {c["resourceType"] for c in plan["contained"]}
    assert {"Goal", "CareTeam", "Task"} <= kinds
    contained_ids = {c["id"] for c in plan["contained"]}
    assert {g["reference"][1:] for g in plan["goal"]} <= contained_ids
    tasks = [c for c in plan["contained"] if c["resourceType"] == "Task"]
    assert all(t["basedOn"][0]["reference"] == "#" for t in tasks)
    assert versions(client) == before


def test_apply_with_parameters_body_and_persist_is_idempotent(client, programs):
    publish(client, programs["copd"])
    pid = copd_patient(client)
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": f"Patient/{pid}"},
        {"name": "start", "valueDate": START},
        {"name": "persist", "valueBoolean": True},
    ]}
    r = client.post("/fhir/PlanDefinition/copd/$apply", json=params)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["meta"]["versionId"] == "1" and "contained" not in plan
    stored = client.get(f"/fhir/CarePlan/{plan['id']}").json()
    assert stored["id"] == plan["id"]
    tasks = client.get(f"/fhir/Task?based-on=CarePlan/{plan['id']}").json()
    assert tasks["total"] == len(plan["activity"]) > 0
    after_first = versions(client)
    again = client.post("/fhir/PlanDefinition/copd/$apply", json=params)
    assert again.status_code == 200 and again.json()["id"] == plan["id"]
    assert versions(client) == after_first  # re-applying changes nothing


def test_apply_errors(client, programs):
    publish(client, programs["copd"])
    client.put("/fhir/Patient/healthy", json=patient(id="healthy"))
    r = client.get(f"/fhir/PlanDefinition/copd/$apply?subject=Patient/healthy&start={START}")
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "business-rule"
    assert client.get("/fhir/PlanDefinition/copd/$apply").status_code == 400
    assert client.get("/fhir/PlanDefinition/copd/$apply?subject=Group/1").status_code == 400
    assert client.get("/fhir/PlanDefinition/copd/$apply?subject=Patient/healthy&start=soon").status_code == 400
    assert client.get("/fhir/PlanDefinition/copd/$apply?subject=Patient/nobody").status_code == 404
    assert client.get("/fhir/PlanDefinition/nope/$apply?subject=Patient/healthy").status_code == 404
    assert client.get("/fhir/PlanDefinition/copd/$apply?subject=Patient/healthy&colour=red").status_code == 400
    foreign = {"resourceType": "PlanDefinition", "id": "foreign", "status": "active", "url": "http://example.org/pd"}
    client.put("/fhir/PlanDefinition/foreign", json=foreign)
    assert client.get("/fhir/PlanDefinition/foreign/$apply?subject=Patient/healthy").status_code == 422


def test_apply_reads_the_programme_back_from_the_store_when_not_loaded(repo, programs, verifier, system_headers):
    client = TestClient(create_app(repo, None, auth=verifier), raise_server_exceptions=False)
    client.headers.update({"Content-Type": "application/fhir+json", **system_headers})
    publish(client, programs["copd"])
    pid = copd_patient(client)
    r = client.get(f"/fhir/PlanDefinition/copd/$apply?subject=Patient/{pid}&start={START}")
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "CarePlan"


def test_everything(client):
    client.put("/fhir/Organization/org", json={"resourceType": "Organization", "id": "org", "name": "Praktijk"})
    client.put("/fhir/Patient/e1", json=patient(id="e1", managingOrganization={"reference": "Organization/org"}))
    client.put("/fhir/Patient/other", json=patient(id="other"))
    client.post("/fhir/Condition", json=copd_condition("Patient/e1"))
    client.post("/fhir/Condition", json=copd_condition("Patient/other"))
    for i in range(3):
        client.post("/fhir/Observation", json={"resourceType": "Observation", "status": "final",
                                                "code": {"text": f"weight {i}"}, "subject": {"reference": "Patient/e1"}})
    body = client.get("/fhir/Patient/e1/$everything").json()
    got = {(e["resource"]["resourceType"], e["resource"].get("subject", {}).get("reference")) for e in body["entry"]}
    assert body["total"] == 6  # patient, condition, 3 observations, organisation
    assert ("Condition", "Patient/other") not in got
    assert {e["resource"]["resourceType"] for e in body["entry"]} == {"Patient", "Condition", "Observation", "Organization"}
    page = client.get("/fhir/Patient/e1/$everything?_count=4").json()
    assert len(page["entry"]) == 4 and any(link["relation"] == "next" for link in page["link"])
    assert client.get("/fhir/Patient/nobody/$everything").status_code == 404
    assert client.get("/fhir/Condition/x/$everything").status_code == 404
