"""Replaying the plan Bundle that ``careflow plan`` prints, as a GP system would (after a timeout,
or by mistake weeks later), changes nothing: a completed Task stays completed and the CarePlan keeps
the activities the engine added since."""

from __future__ import annotations

from datetime import date

from careflow.planning.patient import context_from_resources
from careflow.planning.planner import plan

START = date(2026, 3, 2)


def _bundle(programs) -> dict:
    patient = {"resourceType": "Patient", "id": "replay-1", "birthDate": "1950-05-01", "gender": "male"}
    condition = {"resourceType": "Condition", "id": "replay-1-hf", "subject": {"reference": "Patient/replay-1"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                "code": "active"}]},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.9"}]},
                 "onsetDateTime": "2025-01-10"}
    return plan(programs["heart-failure"], context_from_resources(patient, [condition]), START).bundle(), patient


def _walk(client, task_id: str, *statuses: str) -> None:
    for status in statuses:
        current = client.get(f"/fhir/Task/{task_id}").json()
        r = client.put(f"/fhir/Task/{task_id}", json={**current, "status": status},
                       headers={"If-Match": f'W/"{current["meta"]["versionId"]}"'})
        assert r.status_code == 200, r.text


def test_a_replayed_plan_bundle_never_moves_anything_back(client, programs) -> None:
    bundle, patient = _bundle(programs)
    assert client.put("/fhir/Patient/replay-1", json=patient).status_code in (200, 201)
    first = client.post("/fhir", json=bundle)
    assert first.status_code == 200, first.text
    assert {e["response"]["status"] for e in first.json()["entry"]} == {"201 Created"}

    tasks = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    careplan = next(e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "CarePlan" and "instantiatesCanonical" in e["resource"])
    _walk(client, tasks[0]["id"], "accepted", "in-progress", "completed")
    grown = client.get(f"/fhir/CarePlan/{careplan['id']}").json()
    extra = {"reference": {"reference": "Task/added-later", "display": "added by the sweep"}}
    r = client.put(f"/fhir/CarePlan/{careplan['id']}", json={**grown, "activity": [*grown["activity"], extra]})
    assert r.status_code == 200
    before = {e["resource"]["id"]: client.get(f"/fhir/{e['request']['url']}").json() for e in bundle["entry"]}

    again = client.post("/fhir", json=bundle)
    assert again.status_code == 200, again.text
    assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}
    after = {e["resource"]["id"]: client.get(f"/fhir/{e['request']['url']}").json() for e in bundle["entry"]}
    assert after == before  # same versions, same content: nothing moved
    assert after[tasks[0]["id"]]["status"] == "completed"
    assert extra in after[careplan["id"]]["activity"]


def test_if_none_match_star_on_a_plain_put_creates_only_when_absent(client) -> None:
    body = {"resourceType": "Patient", "id": "inm-1", "gender": "female"}
    r = client.put("/fhir/Patient/inm-1", json=body, headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = client.put("/fhir/Patient/inm-1", json={**body, "gender": "male"}, headers={"If-None-Match": "*"})
    assert r.status_code == 200 and r.json()["gender"] == "female" and r.json()["meta"]["versionId"] == "1"
    r = client.put("/fhir/Patient/inm-1", json=body, headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
