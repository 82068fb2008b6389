"""A document attached when completing a Task: accepted by its own bytes (PDF, PNG, JPEG, a size
limit), stored as a DocumentReference named in Task.output in the same unit of work, and readable
only by whoever may see the Task, on the page and through the FHIR API alike."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from web_world import owner_of_open

from careflow.api.login import claims_for
from careflow.fhir.r4_schema import r4_errors
from careflow.web import attachments

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _signed_in(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token, "next": "/app/"}, follow_redirects=False).status_code == 303
    return client


def _bearer(world: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['issuer'].mint(claims_for(world['repo'], who, None))}"}


def _started(world: dict[str, Any], client: TestClient) -> tuple[str, str]:
    page = client.get("/app/")
    task_id = page.text.split('id="task-', 1)[1].split('"', 1)[0]
    version = page.text.split(f'/tasks/{task_id}/accept"', 1)[1].split('name="version" value="', 1)[1].split('"', 1)[0]
    for action in ("accept", "start"):
        assert client.post(f"/app/tasks/{task_id}/{action}", data={"version": version},
                           follow_redirects=False).status_code == 303
        version = str(int(version) + 1)
    return task_id, version


def test_a_completed_task_keeps_its_document_for_the_team_only(world: dict[str, Any]) -> None:
    gp = owner_of_open(world["repo"], "gp")
    client = _signed_in(world, gp)
    task_id, version = _started(world, client)
    form = client.get("/app/").text.split(f'id="task-{task_id}"', 1)[1]
    assert 'enctype="multipart/form-data"' in form and 'type="file" name="document"' in form
    done = client.post(f"/app/tasks/{task_id}/complete", data={"version": version, "note": "Verslag"},
                       files={"document": ("C:\\scans\\verslag echo.pdf", PDF, "application/octet-stream")},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    task = world["repo"].read("Task", task_id).resource
    assert task["status"] == "completed"
    [(doc_id, name)] = attachments.attached(task)
    assert name == "verslag echo.pdf"  # no path, whatever the browser sent
    doc = world["repo"].read("DocumentReference", doc_id).resource
    assert doc["subject"] == task["for"] and doc["context"]["related"] == [{"reference": f"Task/{task_id}"}]
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == PDF and r4_errors(doc) == []
    # the page serves it back as it came, to the Task's own team
    got = client.get(f"/app/documents/{doc_id}")
    assert got.status_code == 200 and got.content == PDF and got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff" and "attachment" in got.headers["content-disposition"]
    # the FHIR API: the same document for the GP, nothing for a GP of another practice
    api = TestClient(world["app"])
    assert api.get(f"/fhir/DocumentReference/{doc_id}", headers=_bearer(world, gp)).json()["id"] == doc_id
    found = api.get(f"/fhir/DocumentReference?related=Task/{task_id}", headers=_bearer(world, gp)).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [doc_id]
    other = next(f"PractitionerRole/{r}" for r in world["roles"]["gp"] if f"PractitionerRole/{r}" != gp)
    assert api.get(f"/fhir/DocumentReference/{doc_id}", headers=_bearer(world, other)).status_code == 404
    assert api.get(f"/fhir/DocumentReference?related=Task/{task_id}",
                   headers=_bearer(world, other)).json().get("entry", []) == []
    refused = _signed_in(world, other).get(f"/app/documents/{doc_id}")
    assert refused.status_code == 404 and "text/html" in refused.headers["content-type"] and PDF not in refused.content


def test_a_too_big_or_wrong_file_is_refused_and_nothing_is_written(world: dict[str, Any]) -> None:
    gp = owner_of_open(world["repo"], "gp")
    client = _signed_in(world, gp)
    task_id, version = _started(world, client)
    before = world["repo"].read("Task", task_id).version
    big = client.post(f"/app/tasks/{task_id}/complete", data={"version": version},
                      files={"document": ("scan.pdf", PDF + b"0" * attachments.MAX_BYTES, "application/pdf")})
    assert big.status_code == 413 and "Het bestand is te groot: voeg hoogstens 4 MB toe." in big.text
    text = client.post(f"/app/tasks/{task_id}/complete?lang=en", data={"version": version},
                       files={"document": ("notes.pdf", b"just some text, named .pdf", "application/pdf")})
    assert text.status_code == 415 and "Only PDF, PNG or JPEG files can be attached." in text.text
    empty = client.post(f"/app/tasks/{task_id}/complete", data={"version": version},
                        files={"document": ("leeg.png", b"", "image/png")})
    assert empty.status_code == 400
    assert world["repo"].read("Task", task_id).version == before  # nothing changed
    assert "output" not in (world["repo"].read("Task", task_id).resource or {})
