"""Transaction and batch Bundles: urn:uuid resolution, conditional entries, all-or-nothing, order."""

from __future__ import annotations

from fhir_builders import copd_condition, patient, task

U = "urn:uuid:"
PAT, ROLE, PLAN, COND, TASK = (f"{U}00000000-0000-4000-8000-00000000000{i}" for i in range(1, 6))


def tx(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(full_url, resource, **request):
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


def total_versions(client) -> int:
    return client.get("/fhir/_history").json()["total"]


def location_ref(entry) -> str:
    parts = entry["response"]["location"].split("/")
    return "/".join(parts[:2])


def test_urn_references_resolved_everywhere(client):
    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": PAT},
            "addresses": [{"reference": COND}],
            "activity": [{"reference": {"reference": TASK}}],  # nested Reference inside a backbone element
            "extension": [{"url": "http://example.org/owner", "valueReference": {"reference": ROLE}}]}
    bundle = tx(
        post_entry(PLAN, plan),  # references entries that come later: ids are assigned before writing
        post_entry(TASK, task(PAT, ROLE, basedOn=[{"reference": PLAN}])),
        post_entry(PAT, patient(generalPractitioner=[{"reference": ROLE}])),
        post_entry(ROLE, {"resourceType": "PractitionerRole", "active": True}),
        post_entry(COND, copd_condition(PAT)),
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 5
    refs = {urn: location_ref(e) for urn, e in zip((PLAN, TASK, PAT, ROLE, COND), out["entry"])}
    for e in out["entry"]:
        assert e["response"]["etag"] == 'W/"1"' and e["response"]["lastModified"]
        assert e["response"]["location"].endswith("/_history/1")
    stored_plan = client.get(f"/fhir/{refs[PLAN]}").json()
    assert stored_plan["subject"]["reference"] == refs[PAT]
    assert stored_plan["addresses"][0]["reference"] == refs[COND]
    assert stored_plan["activity"][0]["reference"]["reference"] == refs[TASK]
    assert stored_plan["extension"][0]["valueReference"]["reference"] == refs[ROLE]
    stored_task = client.get(f"/fhir/{refs[TASK]}").json()
    assert stored_task["basedOn"][0]["reference"] == refs[PLAN]
    assert stored_task["for"]["reference"] == refs[PAT]
    assert client.get(f"/fhir/{refs[PAT]}").json()["generalPractitioner"][0]["reference"] == refs[ROLE]
    found = client.get(f"/fhir/Task?owner={refs[ROLE]}&status=requested").json()
    assert found["total"] == 1


def test_conditional_entries(client):
    ident = {"identifier": [{"system": "urn:test", "value": "P1"}]}
    existing = client.post("/fhir/Patient", json=patient(**ident)).json()
    client.put("/fhir/Task/t-1", json={**task(f"Patient/{existing['id']}", "PractitionerRole/x"), "id": "t-1"})
    bundle = tx(
        post_entry(PAT, patient(**ident), ifNoneExist="identifier=urn:test|P1"),
        post_entry(COND, copd_condition(PAT)),
        {"fullUrl": ROLE, "resource": {"resourceType": "PractitionerRole", "active": True,
                                        "identifier": [{"system": "urn:test", "value": "R1"}]},
         "request": {"method": "PUT", "url": "PractitionerRole?identifier=urn:test|R1"}},
        {"resource": {**task(PAT, ROLE), "id": "t-1"}, "request": {"method": "PUT", "url": "Task/t-1", "ifMatch": 'W/"1"'}},
    )
    r = client.post("/fhir", json=bundle, headers={"Prefer": "return=representation"})
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert [x["response"]["status"] for x in e] == ["200 OK", "201 Created", "201 Created", "200 OK"]
    assert e[0]["resource"]["id"] == existing["id"]  # matched, not created
    assert e[1]["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"
    role_ref = location_ref(e[2])
    assert e[3]["resource"]["owner"]["reference"] == role_ref
    assert e[3]["response"]["etag"] == 'W/"2"'
    # the same Bundle again: If-Match W/"1" is now stale -> the whole transaction fails, nothing changes
    before = total_versions(client)
    again = client.post("/fhir", json=bundle)
    assert again.status_code == 412
    assert total_versions(client) == before


def test_conditional_entry_referencing_a_later_conditional_entry(client):
    bundle = tx(
        {"fullUrl": PAT, "resource": patient(identifier=[{"system": "urn:test", "value": "A"}],
                                             generalPractitioner=[{"reference": ROLE}]),
         "request": {"method": "PUT", "url": "Patient?identifier=urn:test|A"}},
        {"fullUrl": ROLE, "resource": {"resourceType": "PractitionerRole", "identifier": [{"system": "urn:test", "value": "B"}]},
         "request": {"method": "POST", "url": "PractitionerRole", "ifNoneExist": "identifier=urn:test|B"}},
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    pat_ref, role_ref = (location_ref(x) for x in r.json()["entry"])
    assert client.get(f"/fhir/{pat_ref}").json()["generalPractitioner"][0]["reference"] == role_ref


def test_transaction_is_all_or_nothing(client):
    bad = tx(
        post_entry(PAT, patient()),
        post_entry(COND, {"resourceType": "Condition", "subject": {"reference": PAT}, "onsetDateTime": "yesterday"}),
    )
    r = client.post("/fhir", json=bad)
    assert r.status_code == 400
    assert any("Bundle.entry[1]" in x for i in r.json()["issue"] for x in i.get("expression", []))
    assert total_versions(client) == 0
    # a store-level failure late in the transaction rolls back the earlier writes too
    client.put("/fhir/Patient/keep", json=patient(id="keep"))
    late = tx(post_entry(PAT, patient("New")),
              {"resource": patient("Changed", id="keep"), "request": {"method": "PUT", "url": "Patient/keep", "ifMatch": 'W/"5"'}})
    assert client.post("/fhir", json=late).status_code == 412
    assert total_versions(client) == 1
    assert client.get("/fhir/Patient?family=new").json()["total"] == 0


def test_processing_order_delete_post_put_get(client):
    client.put("/fhir/Patient/old", json=patient("Old", id="old"))
    bundle = tx(
        {"request": {"method": "GET", "url": "Patient?family=fresh"}},
        {"resource": patient("Fresh", id="fresh"), "request": {"method": "PUT", "url": "Patient/fresh"}},
        {"request": {"method": "DELETE", "url": "Patient/old"}},
        {"request": {"method": "GET", "url": "Patient?family=old"}},
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    e = r.json()["entry"]
    assert e[0]["resource"]["total"] == 1  # the GET ran after the PUT listed after it
    assert e[1]["response"]["status"] == "201 Created"
    assert e[2]["response"]["status"] == "204 No Content"
    assert e[3]["resource"]["total"] == 0  # ... and after the DELETE


def test_bad_bundles(client):
    assert client.post("/fhir", json=tx(post_entry(PAT, patient()), post_entry(PAT, patient()))).status_code == 400
    assert client.post("/fhir", json=tx(post_entry(PAT, task(f"{U}99999999-0000-4000-8000-000000000000", "x")))).status_code == 400
    assert client.post("/fhir", json=tx({"request": {"method": "POST", "url": "Patient"}})).status_code == 400
    assert client.post("/fhir", json=tx({"resource": patient(), "request": {"method": "POST", "url": "Nope"}})).status_code == 404
    assert client.post("/fhir", json=tx({"resource": patient(), "request": {"method": "POST"}})).status_code == 400
    assert client.post("/fhir", json=tx("not an entry")).status_code == 400
    assert client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": {}}).status_code == 400
    assert total_versions(client) == 0


def test_batch_reports_each_entry(client):
    bundle = tx(
        post_entry(None, patient("Good")),
        post_entry(None, {"resourceType": "Patient", "birthDate": "never"}),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"resource": patient("Put", id="b-1"), "request": {"method": "PUT", "url": "Patient/b-1"}},
        {"request": {"method": "GET", "url": "Nope/1"}},
        kind="batch",
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found", "201 Created", "404 Not Found"]
    for i in (1, 2, 4):
        assert out["entry"][i]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert out["entry"][1]["response"]["outcome"]["issue"][1]["expression"] == ["Patient.birthDate"]
    assert total_versions(client) == 2


def test_methods_not_allowed_on_entry_urls(client):
    for url in ("Patient/p1", "Patient/_history"):
        r = client.post("/fhir", json=tx({"resource": patient(), "request": {"method": "POST", "url": url}}))
        assert r.status_code == 405, r.text
    assert total_versions(client) == 0
