"""Handing work back to the team's queue and claiming it from there; the worklist's programme and
care-team views."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from web_world import PID, careteam_member, owner_of_open

from careflow.api.login import claims_for
from careflow.planning import ids


def _signed_in(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token, "next": "/app/"}, follow_redirects=False).status_code == 303
    return client


def _post(client: TestClient, world: dict[str, Any], task_id: str, action: str, **data: str) -> Any:
    version = str(world["repo"].read("Task", task_id).version)
    return client.post(f"/app/tasks/{task_id}/{action}", data={"version": version, **data}, follow_redirects=False)


def test_a_started_task_handed_back_waits_in_the_queue_and_a_colleague_claims_it(world: dict[str, Any]) -> None:
    gp = owner_of_open(world["repo"], "gp")
    me = _signed_in(world, gp)
    task_id = me.get("/app/").text.split('id="task-', 1)[1].split('"', 1)[0]
    assert _post(me, world, task_id, "hand-back").status_code == 409  # not accepted yet: reject it instead
    for action in ("accept", "start"):
        assert _post(me, world, task_id, action).status_code == 303
    assert f'/tasks/{task_id}/hand-back"' in me.get("/app/").text
    r = _post(me, world, task_id, "hand-back", reason="Met verlof vanaf morgen")
    assert r.status_code == 303
    task = world["repo"].read("Task", task_id).resource
    assert task["owner"] == {"reference": f"CareTeam/{ids.careteam_id(PID)}"}  # the team's queue
    assert task["status"] == "on-hold" and task["note"][-1]["text"] == "Met verlof vanaf morgen"  # paused, not lost
    assert f'id="task-{task_id}"' not in me.get("/app/").text.split("wachtrij", 1)[0]  # no longer mine
    # another GP of the region may see the queue only for patients whose team they are on: the same GP
    # sees it in the discipline's queue and claims it back; a claim of a Task someone holds is refused
    queue = me.get("/app/").text
    assert f'/tasks/{task_id}/claim"' in queue
    assert _post(me, world, task_id, "claim").status_code == 303
    task = world["repo"].read("Task", task_id).resource
    assert task["owner"] == {"reference": gp} and task["status"] == "on-hold"
    assert _post(me, world, task_id, "claim").status_code == 409  # held now: nothing to claim
    assert _post(me, world, task_id, "start").status_code == 303
    assert world["repo"].read("Task", task_id).resource["status"] == "in-progress"


def test_the_care_team_view_and_the_programme_filter(world: dict[str, Any]) -> None:
    nurse = careteam_member(world["repo"], PID, "home-nurse")
    client = _signed_in(world, nurse)
    mine = client.get("/app/").text
    team = client.get("/app/?view=team").text
    gp_task = owner_of_open(world["repo"], "gp")
    assert "bij " + gp_task.split("/")[-1] in team and "bij " + gp_task.split("/")[-1] not in mine
    assert team.count('id="task-') > mine.count('id="task-')
    # someone else's work is shown in the team view but offers no buttons
    gp_row = team.split("bij " + gp_task.split("/")[-1], 1)[0].rsplit('<li class="task', 1)[1]
    assert "<button" not in gp_row
    hf = client.get("/app/?view=team&program=heart-failure").text
    assert hf.count('id="task-') == team.count('id="task-')  # the world has only heart failure
    assert 'value="heart-failure" selected' in hf
    none = client.get("/app/?view=team&program=copd").text  # not loaded here: the filter is ignored, not an error
    assert none.count('id="task-') == team.count('id="task-')


def test_the_programme_filter_keeps_only_that_programmes_tasks(world: dict[str, Any]) -> None:
    from careflow.programs.loader import load_directory
    from careflow.web.worklist import worklist

    nurse = careteam_member(world["repo"], PID, "home-nurse")
    token = world["issuer"].mint(claims_for(world["repo"], nurse, None))
    principal = world["app"].state.authenticator.authenticate(f"Bearer {token}")
    programs = load_directory(None)  # copd is known, but the patient is only in heart failure
    today = world["clock"][0].date()
    every = worklist(world["repo"], principal, programs, today, team=True)
    hf = worklist(world["repo"], principal, programs, today, team=True, program="heart-failure")
    copd = worklist(world["repo"], principal, programs, today, team=True, program="copd")
    assert every.count > 0 and hf.count == every.count and copd.count == 0
