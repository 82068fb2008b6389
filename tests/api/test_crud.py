"""Instance and type interactions over HTTP, on every backend: status codes, headers, versions."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from fhir_builders import patient, task


def create(client, resource, **headers):
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=headers)
    assert r.status_code == 201, r.text
    return r


def test_create_assigns_id_and_returns_version_headers(client):
    r = create(client, patient(id="client-chosen"))
    body = r.json()
    assert body["id"] != "client-chosen"  # create ignores a body id (FHIR R4 http.html#create)
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert parsedate_to_datetime(r.headers["last-modified"]).tzinfo is not None


def test_read_and_vread(client):
    pid = create(client, patient()).json()["id"]
    client.put(f"/fhir/Patient/{pid}", json=patient("Janssens", id=pid))
    r = client.get(f"/fhir/Patient/{pid}")
    assert r.status_code == 200 and r.json()["name"][0]["family"] == "Janssens"
    assert r.headers["etag"] == 'W/"2"'
    v1 = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and v1.json()["name"][0]["family"] == "Peeters"
    assert v1.headers["etag"] == 'W/"1"'
    assert client.get(f"/fhir/Patient/{pid}/_history/9").status_code == 404
    assert client.get("/fhir/Patient/nope").status_code == 404


def test_read_if_none_match_gives_304(client):
    pid = create(client, patient()).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"7"'}).status_code == 200


def test_update_with_client_id_creates_then_updates(client):
    r = client.put("/fhir/Patient/p-1", json=patient(id="p-1"))
    assert r.status_code == 201 and r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith("/fhir/Patient/p-1/_history/1")
    r = client.put("/fhir/Patient/p-1", json=patient("Maes", id="p-1"))
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    assert r.json()["meta"]["versionId"] == "2"


def test_if_match_optimistic_locking(client):
    client.put("/fhir/Patient/p-2", json=patient(id="p-2"))
    ok = client.put("/fhir/Patient/p-2", json=patient("A", id="p-2"), headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = client.put("/fhir/Patient/p-2", json=patient("B", id="p-2"), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient/p-2").json()["name"][0]["family"] == "A"  # nothing stored
    bad = client.put("/fhir/Patient/p-2", json=patient("C", id="p-2"), headers={"If-Match": "version one"})
    assert bad.status_code == 400


def test_prefer_return(client):
    r = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and r.headers["location"]
    r = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["severity"] == "information"
    r = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=representation"})
    assert r.json()["resourceType"] == "Patient"


def test_conditional_create(client):
    ident = {"identifier": [{"system": "urn:test", "value": "42"}]}
    first = client.post("/fhir/Patient", json=patient(**ident), headers={"If-None-Exist": "identifier=urn:test|42"})
    assert first.status_code == 201
    again = client.post("/fhir/Patient", json=patient(**ident), headers={"If-None-Exist": "identifier=urn:test|42"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    client.post("/fhir/Patient", json=patient(**ident))  # now two match
    many = client.post("/fhir/Patient", json=patient(**ident), headers={"If-None-Exist": "identifier=urn:test|42"})
    assert many.status_code == 412
    unknown = client.post("/fhir/Patient", json=patient(), headers={"If-None-Exist": "shoe-size=42"})
    assert unknown.status_code == 400


def test_conditional_update(client):
    ident = [{"system": "urn:test", "value": "cu"}]
    r = client.put("/fhir/Patient?identifier=urn:test|cu", json=patient(identifier=ident))
    assert r.status_code == 201
    pid = r.json()["id"]
    r = client.put("/fhir/Patient?identifier=urn:test|cu", json=patient("Claes", identifier=ident))
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["meta"]["versionId"] == "2"
    r = client.put("/fhir/Patient?identifier=urn:test|cu", json=patient(identifier=ident, id="other"))
    assert r.status_code == 409
    assert client.put("/fhir/Patient", json=patient()).status_code == 405


def test_delete_and_conditional_delete(client):
    pid = create(client, patient()).json()["id"]
    r = client.delete(f"/fhir/Patient/{pid}")
    assert r.status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204  # idempotent
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 410  # the deletion version
    ident = [{"system": "urn:test", "value": "del"}]
    qid = create(client, patient(identifier=ident)).json()["id"]
    assert client.delete("/fhir/Patient?identifier=urn:test|del").status_code == 204
    assert client.get(f"/fhir/Patient/{qid}").status_code == 410
    assert client.delete("/fhir/Patient").status_code == 405
    r = client.delete("/fhir/Patient/never", headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 200 and r.json()["resourceType"] == "OperationOutcome"


def test_delete_with_stale_if_match(client):
    client.put("/fhir/Patient/d-1", json=patient(id="d-1"))
    client.put("/fhir/Patient/d-1", json=patient("Z", id="d-1"))
    assert client.delete("/fhir/Patient/d-1", headers={"If-Match": 'W/"1"'}).status_code == 412
    assert client.get("/fhir/Patient/d-1").status_code == 200


def test_histories(client):
    client.put("/fhir/Patient/h-1", json=patient(id="h-1"))
    client.put("/fhir/Patient/h-1", json=patient("B", id="h-1"))
    client.delete("/fhir/Patient/h-1")
    create(client, task("Patient/h-1", "PractitionerRole/x"))
    inst = client.get("/fhir/Patient/h-1/_history").json()
    assert inst["type"] == "history" and inst["total"] == 3
    methods = [e["request"]["method"] for e in inst["entry"]]
    assert methods == ["DELETE", "PUT", "POST"]  # newest first
    assert "resource" not in inst["entry"][0]
    assert client.get("/fhir/Patient/_history").json()["total"] == 3
    system = client.get("/fhir/_history").json()
    assert system["total"] == 4
    paged = client.get("/fhir/_history?_count=2").json()
    assert len(paged["entry"]) == 2
    nxt = [link["url"] for link in paged["link"] if link["relation"] == "next"]
    assert nxt and "_offset=2" in nxt[0]
    assert client.get("/fhir/Patient/zz/_history").status_code == 404
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400


def test_format_parameter_and_accept(client):
    pid = create(client, patient()).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}?_format=json").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}?_format=application/fhir%2Bjson").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}?_format=xml").status_code == 406
    assert client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"}).status_code == 406
    assert client.get(f"/fhir/Patient/{pid}", headers={"Accept": "*/*"}).status_code == 200
    plain = client.post("/fhir/Patient", json=patient(), headers={"Content-Type": "application/json"})
    assert plain.status_code == 201


def test_illegal_task_transition_is_409_naming_the_allowed_next_statuses(client):
    task = {"resourceType": "Task", "id": "t-sm", "status": "requested", "intent": "order"}
    assert client.put("/fhir/Task/t-sm", json=task).status_code == 201
    r = client.put("/fhir/Task/t-sm", json={**task, "status": "completed"})
    assert r.status_code == 409, r.text
    issue = r.json()["issue"][0]
    assert r.json()["resourceType"] == "OperationOutcome" and issue["code"] == "business-rule"
    assert issue["expression"] == ["Task.status"]
    assert "requested to completed" in issue["diagnostics"]
    assert "accepted, cancelled, entered-in-error, received, rejected" in issue["diagnostics"]
    assert client.get("/fhir/Task/t-sm").json()["status"] == "requested"
    assert client.put("/fhir/Task/t-sm", json={**task, "status": "accepted"}).status_code == 200


def test_of_two_claims_one_wins_and_the_other_is_told_who_has_it(client):
    # a role queue: an open Task owned by the patient's CareTeam, claimed by two nurses reading version 1
    queued = task("Patient/claim-p", "CareTeam/team-1", id="claim-1")
    assert client.put("/fhir/Task/claim-1", json=queued).status_code == 201
    mine = {**queued, "status": "accepted", "owner": {"reference": "PractitionerRole/nurse-a"}}
    theirs = {**queued, "status": "accepted", "owner": {"reference": "PractitionerRole/nurse-b"}}
    first = client.put("/fhir/Task/claim-1", json=mine, headers={"If-Match": 'W/"1"'})
    second = client.put("/fhir/Task/claim-1", json=theirs, headers={"If-Match": 'W/"1"'})
    assert first.status_code == 200 and second.status_code == 412
    said = second.json()["issue"][0]["diagnostics"]
    assert "held by PractitionerRole/nurse-a (accepted)" in said
    assert client.get("/fhir/Task/claim-1").json()["owner"] == {"reference": "PractitionerRole/nurse-a"}
