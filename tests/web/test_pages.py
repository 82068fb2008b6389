"""The worklist pages over HTTP: signed in with the API's own tokens, Dutch by default, showing what
the API would show the same person, and moving Tasks only along the FHIR state machine."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from fastapi.testclient import TestClient
from web_world import PID, START, owner_of_open

from careflow.api.login import claims_for
from careflow.fhir.search_query import parse_search


def _signed_in(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    r = client.post("/app/login", data={"token": token, "next": "/app/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/"
    return client


def test_pages_need_a_sign_in_and_the_api_stays_json(world: dict[str, Any]) -> None:
    client = TestClient(world["app"])
    r = client.get("/app/?overdue=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/login?next=/app/%3Foverdue%3D1"
    login = client.get("/app/login")
    assert login.status_code == 200 and "text/html" in login.headers["content-type"]
    assert "<h1>Aanmelden</h1>" in login.text and 'lang="nl"' in login.text  # Dutch by default
    assert "Thuisverpleegkundige" in login.text  # the demo's per-role sign-in
    assert "<h1>Sign in</h1>" in client.get("/app/login?lang=en").text
    assert "Se connecter" in client.get("/app/login?lang=fr").text
    bad = client.post("/app/login", data={"token": "not-a-token"}, follow_redirects=False)
    assert bad.status_code == 303 and "error=token" in bad.headers["location"]
    assert client.get("/fhir/Task").status_code == 401  # the API keeps its OperationOutcome errors
    assert client.get("/fhir/Task").json()["resourceType"] == "OperationOutcome"


def test_a_gp_works_the_list(world: dict[str, Any]) -> None:
    nurse = owner_of_open(world["repo"], "gp")
    client = _signed_in(world, nurse)
    page = client.get("/app/")
    assert page.status_code == 200 and "<h1>Mijn werklijst</h1>" in page.text
    task_id = page.text.split('id="task-', 1)[1].split('"', 1)[0]
    version = page.text.split(f'/tasks/{task_id}/accept"', 1)[1].split('name="version" value="', 1)[1].split('"', 1)[0]
    # accept, start, complete with a weight: each a form post, each a legal transition
    for action in ("accept", "start"):
        r = client.post(f"/app/tasks/{task_id}/{action}", data={"version": version}, follow_redirects=False)
        assert r.status_code == 303, r.text
        version = str(int(version) + 1)
    stale = client.post(f"/app/tasks/{task_id}/complete", data={"version": "1"})
    assert stale.status_code == 409 and "Iemand anders heeft deze taak intussen gewijzigd" in stale.text
    illegal = client.post(f"/app/tasks/{task_id}/accept", data={"version": version})
    assert illegal.status_code == 409 and "completed" in illegal.text  # names the allowed next steps
    done = client.post(f"/app/tasks/{task_id}/complete", data={"version": version, "note": "Goed", "weight": "84,2"},
                       follow_redirects=False)
    assert done.status_code == 303
    task = world["repo"].read("Task", task_id).resource
    assert task["status"] == "completed" and task["output"][0]["valueQuantity"]["value"] == 84.2
    assert task["note"][-1]["text"] == "Goed"


def test_an_outsider_sees_nothing_and_cannot_act(world: dict[str, Any]) -> None:
    nurse = owner_of_open(world["repo"], "gp")
    others = [r for r in world["roles"]["gp"] if f"PractitionerRole/{r}" != nurse]
    outsider = _signed_in(world, f"PractitionerRole/{others[0]}")
    page = outsider.get("/app/")
    assert page.status_code == 200 and 'id="task-' not in page.text
    insider = _signed_in(world, nurse)
    task_id = insider.get("/app/").text.split('id="task-', 1)[1].split('"', 1)[0]
    refused = outsider.post(f"/app/tasks/{task_id}/accept", data={"version": "1"})
    assert refused.status_code in (403, 404) and "text/html" in refused.headers["content-type"]
    assert world["repo"].read("Task", task_id).resource["status"] == "requested"


def test_the_demo_signs_in_per_role(world: dict[str, Any]) -> None:
    client = TestClient(world["app"])
    r = client.post("/app/login", data={"role": "care-coach", "next": "/app/"}, follow_redirects=False)
    assert r.status_code == 303 and "careflow_session=" in r.headers["set-cookie"]
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
    assert client.get("/app/").status_code == 200
    out = client.post("/app/logout", follow_redirects=False)
    assert out.status_code == 303 and client.get("/app/", follow_redirects=False).status_code == 303


def test_the_demo_signs_in_as_the_region_read_only(world: dict[str, Any]) -> None:
    client = TestClient(world["app"])
    assert 'value="region"' in client.get("/app/login?lang=nl").text and "De regio" in client.get("/app/login?lang=nl").text
    r = client.post("/app/login", data={"role": "region", "next": "/app/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/dashboard"  # its own page, not a worklist
    assert client.get("/app/dashboard").status_code == 200
    assert client.get("/app/financing").status_code == 200
    # read-only: the region's sign-in cannot change a Task
    task = next(iter(world["repo"].search(parse_search("Task", [("status", "requested"), ("_count", "1")],
                                                        strict=True)).matches))
    client.post(f"/app/tasks/{task.id}/accept", data={"version": task.version}, follow_redirects=False)
    assert world["repo"].read("Task", task.id).resource["status"] == "requested"


def test_a_post_from_another_site_is_refused(world: dict[str, Any]) -> None:
    client = _signed_in(world, owner_of_open(world["repo"], "gp"))
    r = client.post("/app/tasks/x/accept", data={"version": "1"}, headers={"origin": "https://evil.example"},
                    follow_redirects=False)
    assert r.status_code == 303 and "error=origin" in r.headers["location"]


_ = (PID, START, datetime, time, timedelta, timezone)


def test_the_patient_page_shows_the_shared_plan_to_the_team_only(world: dict[str, Any]) -> None:
    from engine_world import add_weight

    for day, kg in ((0, 81.0), (1, 81.4), (2, 80.8)):
        add_weight(world["repo"], PID, datetime.combine(START + timedelta(days=day), time(8), tzinfo=timezone.utc), kg)
    gp = _signed_in(world, owner_of_open(world["repo"], "gp"))
    page = gp.get(f"/app/patients/{PID}")
    assert page.status_code == 200, page.text[:300]
    text = page.text
    assert "Gedeeld zorgplan" in text and "Zorgprogramma chronisch hartfalen" in text  # the whole and its part, in Dutch
    assert "<h2>Doelen</h2>" in text and "laatste: 80.8" in text and "<polyline" in text  # the weight trend
    assert "Toestemming tot delen sinds" in text
    assert "<h2>Zorgteam</h2>" in text and "Peeters0" in text
    assert "<h2>Wie doet wat, wanneer</h2>" in text
    others = [r for r in world["roles"]["gp"] if f"PractitionerRole/{r}" != owner_of_open(world["repo"], "gp")]
    outsider = _signed_in(world, f"PractitionerRole/{others[0]}").get(f"/app/patients/{PID}")
    assert outsider.status_code in (403, 404) and "niet voor jou open" in outsider.text


def test_the_take_home_plan_is_plain_and_hides_internal_ids(world: dict[str, Any]) -> None:
    from careflow.access.principal import SYSTEM
    from careflow.naming import SSIN

    current = world["repo"].read("Patient", PID)
    with world["repo"].unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), "identifier": [{"system": SSIN, "value": "48040212345"}],
                    "name": [{"family": "Claes", "given": ["Maria"]}]}, if_match=current.version)
    for who in (owner_of_open(world["repo"], "gp"), f"Patient/{PID}"):  # the team prints it; the patient reads it
        page = _signed_in(world, who).get(f"/app/patients/{PID}/take-home")
        assert page.status_code == 200, (who, page.text[:300])
        text = page.text
        assert "<h1>Mijn zorgplan</h1>" in text and "Maria Claes" in text
        for heading in ("Wat ik wil bereiken", "Wat ik zelf doe", "Wie mij helpt", "Wat komt er", "Alarmsignalen"):
            assert f"<h2>{heading}</h2>" in text, (who, heading)
        assert "48040212345" not in text and "•••••••••45" in text  # the national number masked
        assert "Wie bellen" in text and "112" in text
        assert "Bloeddruk" in text and "mmHg: de eenheid van de bloeddruk" in text  # terms explained
        assert PID not in text.replace(f"/app/patients/{PID}/take-home", "")  # no internal ids on the page
        assert "-" not in "".join(t for t in text.split() if len(t) == 36)  # nor resource uuids


def test_task_titles_show_in_the_readers_language(world: dict[str, Any]) -> None:
    """The worklist shows each Task in the signed-in person's language, from the translations the
    planner wrote beside the programme's English (Dutch by default, French and English a click away)."""
    from html import escape

    from careflow.engine.reading import search_all
    from careflow.programs.loader import load_directory

    gp = owner_of_open(world["repo"], "gp")
    client = _signed_in(world, gp)
    mine = [s.resource for s in search_all(world["repo"], "Task", [("owner", gp), ("status", "requested")])]
    assert mine
    titles = {a.title.en: a.title for p in load_directory(None).values() for a in p.activities}
    shown = [titles[t["code"]["text"]] for t in mine if t["code"]["text"] in titles]
    assert shown
    dutch, french, english = client.get("/app/").text, client.get("/app/?lang=fr").text, client.get("/app/?lang=en").text
    for title in shown:
        assert escape(title.nl) in dutch and escape(title.fr or "") in french and escape(title.en) in english
    assert 'lang="fr"' in french
    assert all(escape(t.fr or "") not in dutch for t in shown if t.fr not in (t.nl, t.en))


def test_every_page_names_its_icon_so_the_browser_asks_no_guarded_path(world: dict[str, Any]) -> None:
    # without a <link rel=icon> a browser fetches /favicon.ico, which is behind the token check: a 401
    # in the console of every page
    client = TestClient(world["app"])
    login = client.get("/app/login")
    icon = login.text.split('<link rel="icon" href="', 1)[1].split('"', 1)[0]
    assert icon.startswith("/app/static/")
    r = client.get(icon)  # public, like the style sheet: the sign-in page shows it too
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert icon in _signed_in(world, owner_of_open(world["repo"], "gp")).get("/app/").text


def test_a_language_link_keeps_the_pages_query(world: dict[str, Any]) -> None:
    client = _signed_in(world, owner_of_open(world["repo"], "gp"))
    page = client.get(f"/app/?patient=Patient/{PID}&overdue=1&lang=nl")
    assert f'href="/app/?patient=Patient%2F{PID}&amp;overdue=1&amp;lang=en"' in page.text  # lang itself not repeated
    english = client.get(f"/app/?patient=Patient%2F{PID}&overdue=1&lang=en")
    assert english.status_code == 200 and "<h1>My worklist</h1>" in english.text
    assert 'href="/app/login?lang=fr"' in TestClient(world["app"]).get("/app/login").text  # no query: none kept


def test_an_unknown_page_is_an_html_page_in_the_readers_language(world: dict[str, Any]) -> None:
    client = _signed_in(world, owner_of_open(world["repo"], "gp"))
    r = client.get("/app/nonexistent?lang=nl")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Deze pagina bestaat niet." in r.text and "OperationOutcome" not in r.text
    assert client.get("/fhir/nonexistent").headers["content-type"].startswith("application/fhir+json")  # the API: FHIR
