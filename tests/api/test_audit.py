"""The audit trail over the API: one BALP AuditEvent per interaction (plain, transaction and batch
entries, operations, refusals) naming the right patient and agent; AuditEvents served read-only to
an auditor and to a patient for their own record; no search value or name in clear in the log.
Every test runs on the memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from careflow.access.principal import SYSTEM, Principal, Scope
from careflow.api.app import create_app
from careflow.api.security import TrustEveryone
from careflow.naming import SSIN

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _scope(text_: str) -> Scope:
    context, rest = text_.split("/", 1)
    rtype, letters = rest.split(".", 1)
    return Scope(context, rtype, frozenset(letters))  # type: ignore[arg-type]


GP = Principal(kind="practitioner", id="PractitionerRole/gp1", acts_as=("PractitionerRole/gp1", "Practitioner/gp1"),
               discipline="gp", scopes=(_scope("user/*.cruds"),), client_id="gp-software")
NURSE = Principal(kind="practitioner", id="PractitionerRole/n1", acts_as=("PractitionerRole/n1", "Practitioner/n1"),
                  discipline="home-nurse", scopes=(_scope("user/*.cruds"),))
AUDITOR = Principal(kind="auditor", id="auditor/a1", scopes=(_scope("user/*.rs"),))


def _patient_principal(pid: str) -> Principal:
    return Principal(kind="patient", id=f"Patient/{pid}", patient=pid, scopes=(_scope("patient/*.rs"),))


def _client(repo: Any, principal: Principal) -> TestClient:
    c = TestClient(create_app(repo, auth=TrustEveryone(principal)), raise_server_exceptions=False)
    c.headers.update(JSON)
    return c


def _seed(repo: Any, pid: str, family: str = "Peeters") -> None:
    """Patient ``pid`` whose GP (global medical file) is GP, so GP sees everything of theirs."""
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Patient", "id": pid, "name": [{"family": family}],
                    "generalPractitioner": [{"reference": "PractitionerRole/gp1"}]})


def _events(repo: Any, **params: str) -> list[dict[str, Any]]:
    c = _client(repo, AUDITOR)
    r = c.get("/fhir/AuditEvent", params={"_count": "1000", **params})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def _code(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def _patients(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event.get("entity", []) if e.get("role", {}).get("code") == "1"}


def _whats(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"].split("/_history/")[0] for e in event.get("entity", [])
            if e.get("role", {}).get("code") == "4"}


def _requestor(event: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in event["agent"] if a.get("requestor"))


def _obs(pid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": f"Patient/{pid}"}}


def test_every_interaction_kind_is_one_event_naming_its_patient_and_agent(repo: Any) -> None:
    _seed(repo, "pa1")
    c = _client(repo, GP)
    r = c.post("/fhir/Observation", json=_obs("pa1"), headers={"X-Request-ID": "req-create-1"})
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert r.headers["x-request-id"] == "req-create-1"
    steps = [
        ("read", c.get(f"/fhir/Observation/{oid}")),
        ("vread", c.get(f"/fhir/Observation/{oid}/_history/1")),
        ("search-type", c.get("/fhir/Observation", params={"subject": "Patient/pa1"})),
        ("history-instance", c.get(f"/fhir/Observation/{oid}/_history")),
        ("update", c.put(f"/fhir/Observation/{oid}", json={**_obs("pa1"), "id": oid, "status": "amended"})),
        ("operation", c.get("/fhir/Patient/pa1/$everything")),
    ]
    for name, resp in steps:
        assert resp.status_code in (200, 201), (name, resp.text)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b0b0b0b-0000-4000-8000-000000000001", "request": {"method": "POST", "url": "Observation"},
         "resource": _obs("pa1")},
        {"request": {"method": "GET", "url": f"Observation/{oid}"}}]}
    assert c.post("/fhir", json=bundle).status_code == 200
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "DELETE", "url": f"Observation/{oid}"}}]}
    assert c.post("/fhir", json=batch).status_code == 200
    assert c.get("/fhir/Observation/not-there").status_code == 404

    events = _events(repo, agent="PractitionerRole/gp1")
    by_code: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_code.setdefault(_code(e), []).append(e)
    assert sorted(by_code) == ["create", "delete", "history-instance", "operation", "read", "search-type",
                               "update", "vread"]
    assert len(by_code["create"]) == 2 and len(by_code["read"]) == 3  # plain + transaction entry; + the 404
    assert len(by_code["delete"]) == 1  # the batch entry
    actions = {"create": "C", "read": "R", "vread": "R", "update": "U", "delete": "D", "search-type": "E",
               "history-instance": "R", "operation": "E"}
    for code, evs in by_code.items():
        for e in evs:
            assert e["action"] == actions[code], code
            assert _requestor(e)["who"] == {"reference": "PractitionerRole/gp1"}
            assert e["type"]["code"] == "rest"
            assert e["source"]["observer"]
    failed = [e for e in by_code["read"] if e["outcome"] != "0"]
    assert len(failed) == 1 and failed[0]["outcome"] == "4"
    for e in events:
        if e["outcome"] == "0":
            assert _patients(e) == {"Patient/pa1"}, _code(e)
    create = next(e for e in by_code["create"] if f"Observation/{oid}" in _whats(e))
    assert any(x.get("valueString") == "req-create-1" for x in create["extension"])
    assert any(a.get("network", {}).get("address") for a in create["agent"])
    assert any(a.get("who", {}).get("identifier", {}).get("value") == "gp-software" for a in create["agent"])
    everything = by_code["operation"][0]
    assert {"Patient/pa1", f"Observation/{oid}"} <= _whats(everything)
    assert everything["subtype"][1]["code"] == "$everything"
    search = by_code["search-type"][0]
    query = next(base64.b64decode(e["query"]).decode() for e in search["entity"] if "query" in e)
    assert query == "Observation?subject=Patient%2Fpa1"  # a reference is an id: kept in clear
    assert f"Observation/{oid}" in _whats(search)
    assert by_code["delete"][0]["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientDelete")


def test_refusals_and_engine_writes_are_audited_too(repo: Any) -> None:
    _seed(repo, "pb1")
    reader = Principal(kind="practitioner", id="PractitionerRole/gp1", acts_as=GP.acts_as, discipline="gp",
                       scopes=(_scope("user/Patient.rs"),))
    c = _client(repo, reader)
    assert c.delete("/fhir/Patient/pb1").status_code == 403  # refused by its scopes, before the store
    with repo.unit_of_work(SYSTEM) as uow:  # the engine writes through the same port
        uow.create(_obs("pb1"))
    events = _events(repo, patient="pb1")
    refused = [e for e in events if _code(e) == "delete"]
    assert len(refused) == 1 and refused[0]["outcome"] == "4" and _patients(refused[0]) == {"Patient/pb1"}
    engine = [e for e in events if _requestor(e)["who"] == {"display": SYSTEM.id}]
    assert sorted(_code(e) for e in engine) == ["create", "update"]  # the Observation, the seed (PUT)


def test_a_rolled_back_transaction_is_audited_as_failed(repo: Any) -> None:
    _seed(repo, "pc1")
    c = _client(repo, GP)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": _obs("pc1")},
        {"request": {"method": "PUT", "url": "Observation/x1", "ifMatch": 'W/"7"'}, "resource": {**_obs("pc1"), "id": "x1"}}]}
    assert c.post("/fhir", json=bundle).status_code >= 400
    creates = [e for e in _events(repo, patient="pc1", agent="PractitionerRole/gp1") if _code(e) == "create"]
    assert creates and all(e["outcome"] == "4" and "rolled back" in e["outcomeDesc"] for e in creates)


def test_the_audit_trail_is_served_to_the_auditor_and_to_a_patient_for_their_own_record(repo: Any) -> None:
    for pid in ("pd1", "pd2"):
        _seed(repo, pid)
        assert _client(repo, GP).get(f"/fhir/Patient/{pid}").status_code == 200
    own = _client(repo, _patient_principal("pd1")).get("/fhir/AuditEvent", params={"_count": "1000"})
    assert own.status_code == 200
    mine = [e["resource"] for e in own.json()["entry"]]
    assert mine and all("Patient/pd1" in _patients(e) for e in mine)
    assert own.json()["total"] == len(mine)
    other = _client(repo, _patient_principal("pd1")).get("/fhir/AuditEvent", params={"patient": "pd2"})
    assert other.status_code == 200 and other.json()["total"] == 0
    nurse = _client(repo, NURSE).get("/fhir/AuditEvent")
    assert nurse.status_code == 403
    everyone = _events(repo)
    assert {"Patient/pd1", "Patient/pd2"} <= {p for e in everyone for p in _patients(e)}
    one = everyone[0]
    r = _client(repo, AUDITOR).get(f"/fhir/AuditEvent/{one['id']}")
    assert r.status_code == 200 and r.json() == one
    assert _events(repo, action="R", patient="pd2") and not _events(repo, action="D", patient="pd2")
    assert _events(repo, date="ge2000-01-01", subtype="read", patient="pd2")
    assert not _events(repo, date="lt2000-01-01")
    assert _client(repo, AUDITOR).get("/fhir/AuditEvent", params={"policy": "x"}).status_code == 400


def test_audit_events_cannot_be_written_over_the_api(repo: Any) -> None:
    c = _client(repo, SYSTEM)
    event = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
             "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    assert c.post("/fhir/AuditEvent", json=event).status_code == 405
    assert c.put("/fhir/AuditEvent/a1", json={**event, "id": "a1"}).status_code == 405
    assert c.delete("/fhir/AuditEvent/a1").status_code == 405
    assert c.get("/fhir/AuditEvent/_history").status_code == 405
    auditor = _client(repo, AUDITOR)
    assert auditor.post("/fhir/AuditEvent", json=event).status_code == 403  # no write scope at all


CANARY_FAMILY = "Zwanepoelcanary"
CANARY_SSIN = "85073003328"


def test_no_name_or_national_number_appears_in_the_audit_log(repo: Any) -> None:
    c = _client(repo, SYSTEM)
    patient = {"resourceType": "Patient", "name": [{"family": CANARY_FAMILY, "given": ["Griet"]}],
               "identifier": [{"system": SSIN, "value": CANARY_SSIN}]}
    assert c.post("/fhir/Patient", json=patient).status_code == 201
    assert c.get("/fhir/Patient", params={"family": CANARY_FAMILY}).json()["total"] == 1
    assert c.get("/fhir/Patient", params={"identifier": f"{SSIN}|{CANARY_SSIN}"}).json()["total"] == 1
    assert c.get("/fhir/Patient", params={"name": CANARY_FAMILY.lower(), "birthdate": "1985-07-30"}).status_code == 200
    assert c.get("/fhir/Observation", params={"subject:Patient.name": CANARY_FAMILY}).status_code == 200
    assert c.get("/fhir/Observation", params={"patient:identifier": CANARY_SSIN}).status_code in (200, 400)
    searches = [e for e in _events(repo) if _code(e) == "search-type"]
    assert len(searches) >= 4
    queries = [base64.b64decode(x["query"]).decode() for e in searches for x in e["entity"] if "query" in x]
    assert any("family=hmac%3A" in q for q in queries)
    if repo.audit is not None and hasattr(repo.audit, "engine"):
        repo.audit.flush()
        with repo.audit.engine.connect() as conn:
            rows = [bytes(r[0]) for r in conn.execute(text("SELECT content FROM audit_event"))]
            rows += [r[0].encode() for r in conn.execute(text("SELECT ref FROM audit_entity"))]
    else:
        rows = [entry.content for entry, _, _ in repo.audit.entries]
    blob = b"\n".join(rows).lower()
    for canary in (CANARY_FAMILY.lower(), CANARY_SSIN, "1985-07-30", "griet"):
        assert canary.encode() not in blob, canary
        assert base64.b64encode(canary.encode())[:12] not in blob
