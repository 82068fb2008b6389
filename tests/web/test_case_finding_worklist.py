"""Case-finding proposals on the worklist: the GP sees them among their Tasks (with why), the
proposals view (``?view=proposals``) lists only proposals, each person sees only the proposals of
patients they may see (the store narrows the search), and the GP accepts one with the usual steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine_world import add_patient
from fastapi.testclient import TestClient
from web_world import PID, START, careteam_member

from careflow.access.principal import SYSTEM
from careflow.api.login import claims_for
from careflow.engine.case_finding import find_cases
from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, rules_in_force
from careflow.programs.codes import LOINC

SUSPECT = "pat-suspect"


def _signed_in(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token, "next": "/app/"}, follow_redirects=False).status_code == 303
    return client


def _propose(world: dict[str, Any]) -> str:
    repo, gp = world["repo"], world["roles"]["gp"][0]
    add_patient(repo, SUSPECT, conditions=[], onset=START, gp_role=gp, birth="1950-05-05")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent({"resourceType": "Observation", "id": "suspect-ntprobnp", "status": "final",
                              "code": {"coding": [{"system": LOINC, "code": "33762-6"}]},
                              "subject": {"reference": f"Patient/{SUSPECT}"}, "effectiveDateTime": "2026-05-20",
                              "valueQuantity": {"value": 480, "unit": "pg/mL", "system": "http://unitsofmeasure.org",
                                                "code": "pg/mL"}})
    day = START + timedelta(days=2)
    rules = rules_in_force(load_case_rule_sets([default_case_rules_dir()]), day)
    done = find_cases(repo, rules, world["programs"], day)
    assert done["proposed"] == 1  # the enrolled patient has heart failure: not a suspect
    return f"PractitionerRole/{gp}"


def test_the_gp_sees_the_proposal_and_the_proposals_view_lists_only_proposals(world: dict[str, Any]) -> None:
    gp = _propose(world)
    client = _signed_in(world, gp)
    mine = client.get("/app/").text
    assert "Vermoeden van hartfalen zonder diagnose" in mine and "Waarom: Suspected heart failure" in mine
    assert "NT-proBNP 480 on 2026-05-20" in mine
    proposals = client.get("/app/?view=proposals").text
    assert proposals.count('id="task-') == 1 and 'value="proposals" checked' in proposals
    assert mine.count('id="task-') > 1  # the GP's programme work is on the worklist beside it
    # the home nurse of the other patient's team sees neither the suspect nor the proposal
    nurse = _signed_in(world, careteam_member(world["repo"], PID, "home-nurse"))
    assert nurse.get("/app/?view=proposals").text.count('id="task-') == 0
    # the GP takes it up with the worklist's ordinary steps
    task_id = proposals.split('id="task-', 1)[1].split('"', 1)[0]
    for action in ("accept", "start"):
        version = str(world["repo"].read("Task", task_id).version)
        assert client.post(f"/app/tasks/{task_id}/{action}", data={"version": version},
                           follow_redirects=False).status_code == 303
    assert world["repo"].read("Task", task_id).resource["status"] == "in-progress"
