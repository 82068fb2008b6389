"""The care coach's board: escalated and unassigned work, load per member, assigning with one form."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from web_world import PID, careteam_member, run_until

from careflow.api.login import claims_for


def _client(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"])
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def test_the_coach_sees_escalations_and_assigns_one_to_a_nurse(world: dict[str, Any]) -> None:
    run_until(world, 75)  # nobody works the list: tasks go overdue and escalate
    coach = _client(world, careteam_member(world["repo"], PID, "care-coach"))
    page = coach.get("/app/board")
    assert page.status_code == 200 and "<h1>Bord van de zorgcoach</h1>" in page.text
    escalated = page.text.split("<h2>Geëscaleerd", 1)[1].split("</section>", 1)[0]
    assert 'id="task-' in escalated
    task_id = escalated.split('id="task-', 1)[1].split('"', 1)[0]
    version = escalated.split('name="version" value="', 1)[1].split('"', 1)[0]
    assert "Werklast per teamlid" in page.text and "Thuisverpleegkundige" in page.text
    nurse = careteam_member(world["repo"], PID, "home-nurse")
    r = coach.post(f"/app/tasks/{task_id}/assign", data={"version": version, "owner": nurse}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/board?done=assign"
    task = world["repo"].read("Task", task_id).resource
    assert task["owner"] == {"reference": nurse}
    # the nurse now finds it on her worklist
    assert f'id="task-{task_id}"' in _client(world, nurse).get("/app/").text


def test_the_board_is_for_coaches(world: dict[str, Any]) -> None:
    gp = _client(world, careteam_member(world["repo"], PID, "gp"))
    assert gp.get("/app/board").status_code == 403
    refused = gp.post("/app/tasks/x/assign", data={"version": "1", "owner": "PractitionerRole/role-gp-0"})
    assert refused.status_code == 403


def test_the_load_per_member_counts_every_open_task_they_hold(world: dict[str, Any]) -> None:
    """The board counts per member with one count search each, not by reading a capped page of Tasks:
    each member's figure equals the open Tasks the store holds for them."""
    from careflow.engine.reading import search_all
    from careflow.web.board import board
    from careflow.web.pages import role_codes
    from careflow.web.worklist import OPEN

    run_until(world, 40)
    coach_ref = careteam_member(world["repo"], PID, "care-coach")
    token = world["issuer"].mint(claims_for(world["repo"], coach_ref, None))
    principal = world["app"].state.authenticator.authenticate(f"Bearer {token}")
    b = board(world["repo"], principal, role_codes(world["programs"]), world["clock"][0].date())
    held: dict[str, int] = {}
    for s in search_all(world["repo"], "Task", [("status", ",".join(OPEN))]):
        owner = ((s.resource or {}).get("owner") or {}).get("reference", "")
        held[owner] = held.get(owner, 0) + 1
    assert b.members and {m.ref: m.load for m in b.members} == {m.ref: held.get(m.ref, 0) for m in b.members}
    assert any(m.load for m in b.members) and b.patients == 1
    queued = [s.id for s in search_all(world["repo"], "Task", [("status", "requested,received,accepted,ready,on-hold")])
              if ((s.resource or {}).get("owner") or {}).get("reference", "").startswith("CareTeam/")]
    assert sorted(r.id for r in b.unassigned) == sorted(queued)


def test_the_coach_puts_a_task_in_a_disciplines_queue_and_a_member_claims_it(world: dict[str, Any]) -> None:
    run_until(world, 75)
    coach = _client(world, careteam_member(world["repo"], PID, "care-coach"))
    page = coach.get("/app/board").text
    assert 'value="queue:pharmacist"' in page
    task_id = page.split("<h2>Geëscaleerd", 1)[1].split('id="task-', 1)[1].split('"', 1)[0]
    version = str(world["repo"].read("Task", task_id).version)
    r = coach.post(f"/app/tasks/{task_id}/assign", data={"version": version, "owner": "queue:pharmacist"},
                   follow_redirects=False)
    assert r.status_code == 303
    task = world["repo"].read("Task", task_id).resource
    assert task["owner"]["reference"].startswith("CareTeam/")
    assert any(c["code"] == "pharmacist" for c in task["performerType"][0]["coding"])
    bogus = coach.post(f"/app/tasks/{task_id}/assign", data={"version": str(int(version) + 1), "owner": "queue:nobody"})
    assert bogus.status_code == 403  # not a discipline of the programmes
    pharmacist = _client(world, careteam_member(world["repo"], PID, "pharmacist"))
    queue = pharmacist.get("/app/").text
    assert f'/tasks/{task_id}/' in queue  # in the pharmacist's queue, to accept or claim
