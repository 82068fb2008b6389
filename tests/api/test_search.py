"""Search over HTTP: searchset bundles, totals, paging links, _include/_revinclude, POST _search."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fhir_builders import patient, task


def post(client, resource):
    r = client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()


def link(bundle, relation):
    found = [link["url"] for link in bundle.get("link", []) if link["relation"] == relation]
    return found[0] if found else None


def relative(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_searchset_with_total_and_paging(client):
    for i in range(7):
        post(client, patient(f"Family{i}"))
    first = client.get("/fhir/Patient?_count=3").json()  # creation order (a patient's name cannot sort: it is blinded)
    assert first["type"] == "searchset" and first["total"] == 7
    assert [e["resource"]["name"][0]["family"] for e in first["entry"]] == ["Family0", "Family1", "Family2"]
    assert all(e["search"]["mode"] == "match" for e in first["entry"])
    assert all(e["fullUrl"] == f"http://testserver/fhir/Patient/{e['resource']['id']}" for e in first["entry"])
    assert link(first, "previous") is None
    nxt = parse_qs(urlsplit(link(first, "next")).query)
    assert nxt["_count"] == ["3"] and "_offset" not in nxt and nxt["_cursor"]  # keyset paging
    second = client.get(relative(link(first, "next"))).json()
    assert [e["resource"]["name"][0]["family"] for e in second["entry"]] == ["Family3", "Family4", "Family5"]
    assert "total" not in second  # a page reached by a cursor does not count again (default _total)
    third = client.get(relative(link(second, "next"))).json()
    assert len(third["entry"]) == 1 and link(third, "next") is None
    assert parse_qs(urlsplit(link(third, "self")).query)["_cursor"]


def test_offset_paging_still_accepted(client):
    for i in range(7):
        post(client, patient(f"Family{i}"))
    second = client.get("/fhir/Patient?_count=3&_offset=3").json()
    assert second["total"] == 7
    assert [e["resource"]["name"][0]["family"] for e in second["entry"]] == ["Family3", "Family4", "Family5"]
    assert link(second, "previous") and "_offset" not in parse_qs(urlsplit(link(second, "previous")).query)
    third = client.get(relative(link(second, "next"))).json()  # continues by cursor from an offset page
    assert [e["resource"]["name"][0]["family"] for e in third["entry"]] == ["Family6"]
    assert client.get("/fhir/Patient?_count=3&_offset=3&_cursor=" + parse_qs(urlsplit(link(second, "next")).query)["_cursor"][0]).status_code == 400


def test_total_modes(client):
    for i in range(4):
        post(client, patient(f"Family{i}"))
    assert "total" not in client.get("/fhir/Patient?_count=2&_total=none").json()
    assert client.get("/fhir/Patient?_count=2&_total=accurate").json()["total"] == 4
    assert client.get("/fhir/Patient?_count=2&_total=estimate").json()["total"] == 4
    first = client.get("/fhir/Patient?_count=2&_total=accurate").json()
    nxt = link(first, "next")
    assert parse_qs(urlsplit(nxt).query)["_total"] == ["accurate"]
    assert client.get(relative(nxt)).json()["total"] == 4  # asked for: every page counts
    assert client.get("/fhir/Patient?_total=sometimes").status_code == 400


def test_bad_cursor_is_a_clear_400(client):
    post(client, patient("Family0"))
    for bad in ("nonsense", "e30", "eyJ2IjpbXSwiaWQiOiJub3BlIn0"):  # not base64 JSON; {}; an id that is not there
        r = client.get(f"/fhir/Patient?_cursor={bad}")
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", (bad, r.text)


def test_summary_count(client):
    for i in range(3):
        post(client, patient(f"F{i}"))
    body = client.get("/fhir/Patient?_summary=count").json()
    assert body["total"] == 3 and "entry" not in body


def test_include_and_revinclude(client):
    pat = post(client, patient())
    role = client.put("/fhir/PractitionerRole/gp1", json={"resourceType": "PractitionerRole", "id": "gp1", "active": True}).json()
    plan = post(client, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                         "subject": {"reference": f"Patient/{pat['id']}"}})
    t1 = post(client, task(f"Patient/{pat['id']}", "PractitionerRole/gp1", basedOn=[{"reference": f"CarePlan/{plan['id']}"}]))
    post(client, task(f"Patient/{pat['id']}", "PractitionerRole/gp1", status="completed"))
    body = client.get(f"/fhir/CarePlan?patient={pat['id']}&_revinclude=Task:based-on&_include=CarePlan:patient").json()
    modes = {(e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"] for e in body["entry"]}
    assert modes == {("CarePlan", plan["id"]): "match", ("Task", t1["id"]): "include", ("Patient", pat["id"]): "include"}
    assert body["total"] == 1  # includes do not count
    tasks = client.get("/fhir/Task?owner=PractitionerRole/gp1&status=requested&_include=Task:owner").json()
    assert tasks["total"] == 1
    assert {e["resource"]["id"] for e in tasks["entry"]} == {t1["id"], role["id"]}


def test_post_search_equals_get_search(client):
    post(client, patient("Wouters"))
    post(client, patient("Peeters"))
    r = client.post("/fhir/Patient/_search", content="family=wouters",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["total"] == 1
    assert r.json()["entry"][0]["resource"]["name"][0]["family"] == "Wouters"
    assert client.post("/fhir/Patient/_search", content=b"", headers={"Content-Type": "application/x-www-form-urlencoded"}).json()["total"] == 2
    bad = client.post("/fhir/Patient/_search", content=b'{"family": "x"}', headers={"Content-Type": "application/json"})
    assert bad.status_code == 415


def test_elements_and_summary_data(client):
    post(client, patient("Lemmens", text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}))
    body = client.get("/fhir/Patient?_elements=name").json()
    res = body["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "name"}
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])
    assert "_elements=name" in link(body, "self")
    assert "_count=50" in link(body, "self")  # the default page size is spelled out in links
    data = client.get("/fhir/Patient?_summary=data").json()["entry"][0]["resource"]
    assert "text" not in data and data["birthDate"] == "1950-04-01"
    post(client, task("Patient/x", "PractitionerRole/y", note=[{"text": "not a summary element"}]))
    summary = client.get("/fhir/Task?_summary=true").json()["entry"][0]["resource"]
    assert summary["status"] == "requested" and summary["owner"] and "note" not in summary
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    text = client.get("/fhir/Task?_summary=text").json()["entry"][0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "status", "intent"}


def test_search_reflects_writes_and_deletes(client):
    p = post(client, patient("Goossens"))
    assert client.get("/fhir/Patient?family=goossens").json()["total"] == 1
    client.delete(f"/fhir/Patient/{p['id']}")
    assert client.get("/fhir/Patient?family=goossens").json()["total"] == 0


def test_forged_cursors_are_400_never_500(client):
    import base64
    import json

    pat = post(client, patient("Family0"))
    post(client, task(f"Patient/{pat['id']}", "PractitionerRole/x", restriction={"period": {"end": "2026-01-05"}}))
    forged = [{"v": [{"n": "1.5"}], "id": "x"}, {"v": ["text"], "id": "x"}, {"v": [{"d": "2026-01-01T00:00:00+02:00"}], "id": "x"},
              {"v": [None], "id": "a\u0000b"}, {"v": [{"d": "not a date"}], "id": "x"}, {"v": [], "id": 5}]
    for body in forged:
        text = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        r = client.get(f"/fhir/Task?_sort=due-date&_cursor={text}")
        assert r.status_code == 400, (body, r.status_code, r.text)


def test_a_cursor_nested_past_the_parsers_stack_is_a_400(client):
    import base64

    text = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("=")
    r = client.get(f"/fhir/Patient?_cursor={text}")
    assert r.status_code == 400 and "is not a cursor of this search" in r.text, r.text
