"""An Observation posted to the API raises its trigger Task within seconds, through the outbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from careflow.api.server import build_app

FHIR = "application/fhir+json"
ICPC = "http://hl7.org/fhir/sid/icpc-2"


def _weight(value: float, when: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/hf1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}


def _empty_schema(url: str) -> None:
    from sqlalchemy import text

    from careflow.store.database import make_engine
    from careflow.store.tables import metadata

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables if t.name != 'data_key' and not t.name.startswith('audit_'))} RESTART IDENTITY"))
    engine.dispose()


def _wait_for(client: TestClient, url: str, seconds: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entries = client.get(url).json().get("entry", [])
        if entries:
            return entries
        time.sleep(0.2)
    return []


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_weight_gain_posted_to_the_api_raises_an_urgent_task(db, tmp_path: Path, request, served_by_local_issuer):
    """The consumer thread of ``careflow serve`` turns the outbox event into the Task."""
    if db == "postgres":
        url = request.getfixturevalue("api_pg_url")
        _empty_schema(url)  # the API suite shares one schema per session
    else:
        url = f"sqlite:///{tmp_path / 'live.db'}"
    app = build_app(url)
    with TestClient(app, headers=served_by_local_issuer) as client:  # runs the lifespan: the event consumer thread
        h = {"Content-Type": FHIR}
        assert client.put("/fhir/Patient/hf1", json={"resourceType": "Patient", "id": "hf1", "birthDate": "1948-05-01"}, headers=h).status_code in (200, 201)
        cond = {"resourceType": "Condition", "id": "hf1-k77", "subject": {"reference": "Patient/hf1"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": ICPC, "code": "K77"}]}, "onsetDateTime": "2020-01-01"}
        assert client.put("/fhir/Condition/hf1-k77", json=cond, headers=h).status_code in (200, 201)
        applied = client.post("/fhir/PlanDefinition/heart-failure/$apply?subject=Patient/hf1&persist=true")
        assert applied.status_code == 200, applied.text
        assert client.post("/fhir/Observation", json=_weight(80.0, "2026-11-20T08:00:00Z"), headers=h).status_code == 201
        gain = client.post("/fhir/Observation", json=_weight(82.5, "2026-11-22T08:00:00Z"), headers=h)
        assert gain.status_code == 201
        obs_id = gain.json()["id"]

        tasks = _wait_for(client, f"/fhir/Task?focus=Observation/{obs_id}")
        assert len(tasks) == 1, "one urgent Task points at the Observation that raised it"
        task = tasks[0]["resource"]
        assert task["priority"] in ("urgent", "asap", "stat") and task["status"] == "requested"
        plan = client.get("/fhir/CarePlan?patient=Patient/hf1&instantiates-canonical=https://careflow.dev/fhir/PlanDefinition/heart-failure"
                          ).json()["entry"][0]["resource"]  # the heart-failure part of the shared plan
        assert any(e.get("valueBoolean") is True for e in plan.get("extension", [])), "the plan's attention flag is raised"
        # the first weight alone raised nothing
        assert client.get("/fhir/Task?focus=Observation/" + client.get("/fhir/Observation?value-quantity=80").json()["entry"][0]["resource"]["id"]).json().get("entry", []) == []


def test_apply_gives_tasks_to_the_patients_neighbourhood_team(tmp_path: Path, served_by_local_issuer):
    """$apply picks owners as enrolment does: the GP from generalPractitioner, others from the GP's team."""
    app = build_app(f"sqlite:///{tmp_path / 'team.db'}", engine=False)
    role_sys = "https://careflow.dev/fhir/CodeSystem/role"
    with TestClient(app, headers=served_by_local_issuer) as client:
        h = {"Content-Type": FHIR}
        client.put("/fhir/Organization/team1", json={"resourceType": "Organization", "id": "team1", "name": "Buurtteam"}, headers=h)
        for rid, code in (("gp1", "gp"), ("nurse1", "home-nurse")):
            r = client.put(f"/fhir/PractitionerRole/{rid}", headers=h, json={
                "resourceType": "PractitionerRole", "id": rid, "active": True, "organization": {"reference": "Organization/team1"},
                "code": [{"coding": [{"system": role_sys, "code": code}]}]})
            assert r.status_code in (200, 201), r.text
        client.put("/fhir/Patient/p9", headers=h, json={"resourceType": "Patient", "id": "p9", "birthDate": "1950-01-01",
                                                          "generalPractitioner": [{"reference": "PractitionerRole/gp1"}]})
        client.put("/fhir/Condition/c9", headers=h, json={"resourceType": "Condition", "id": "c9", "subject": {"reference": "Patient/p9"},
                                                           "code": {"coding": [{"system": ICPC, "code": "K77"}]}})
        r = client.post("/fhir/PlanDefinition/heart-failure/$apply?subject=Patient/p9&persist=true")
        assert r.status_code == 200, r.text
        owners = {e["resource"]["owner"]["reference"] for e in client.get("/fhir/Task?patient=Patient/p9&_count=100").json()["entry"]}
        assert "PractitionerRole/gp1" in owners
        team = client.get("/fhir/CareTeam?patient=Patient/p9").json()["entry"][0]["resource"]
        members = {p.get("member", {}).get("reference") for p in team["participant"]}
        assert {"PractitionerRole/gp1", "PractitionerRole/nurse1"} <= members
        assert team["managingOrganization"] == [{"reference": "Organization/team1"}]
