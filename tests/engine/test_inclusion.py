"""Inclusion through proposal, inclusion and the care-planning conversation, as the seed describes it.

The region enrols by proposal: a patient who qualifies gets a proposal Task for the GP, not a plan.
The GP includes the patient; the plan is drawn up as a draft with only the conversation open; the
conversation records the patient's own goal, the level of self-management and the coordination
step, and only then is the plan active, due from that day. A rejected proposal is not made again;
a patient who has died is never proposed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from engine_world import COPD, HEART_FAILURE, add_patient, add_team, all_of, edit_task

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.engine.sweep import sweep
from careflow.fhir.profiles import conformance_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.fhir.validation import validate_resource
from careflow.naming import COORDINATION_STEP, EXT_COORDINATION_STEP, EXT_SELF_MANAGEMENT, SELF_MANAGEMENT, TASK_KIND
from careflow.planning import ids
from careflow.programs.loader import load_program

START = date(2026, 3, 2)
PID = "pat-incl"


@pytest.fixture(scope="module")
def two() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2] / "care_programs"
    programs = [load_program(root / f"{name}.yaml") for name in ("copd", "heart-failure")]
    return {p.id: p for p in programs}


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6, 0), tzinfo=timezone.utc)


def _proposals(repo: Any) -> list[dict[str, Any]]:
    return [t for t in all_of(repo, "Task") if any(c.get("system") == TASK_KIND for c in t["code"].get("coding", ()))]


def _setup(repo: Any) -> None:
    add_team(repo)
    add_patient(repo, PID, conditions=[COPD, HEART_FAILURE], onset=START - timedelta(days=400))
    events.install(repo)


def test_proposal_then_inclusion_then_conversation_makes_the_plan_active(repo: Any, two: dict[str, Any]) -> None:
    _setup(repo)
    counts = enrolment.enrol(repo, two, [PID], START, mode="proposals")
    assert counts["proposed"] == 1 and counts["enrolled"] == 0
    assert all_of(repo, "CarePlan") == []
    (proposal,) = _proposals(repo)
    assert proposal["intent"] == "proposal" and proposal["status"] == "requested"
    assert proposal["owner"]["reference"].startswith("PractitionerRole/role-gp-")  # for the GP to decide
    assert sorted(i["valueCanonical"] for i in proposal["input"]) == sorted(p.canonical for p in two.values())
    assert enrolment.enrol(repo, two, [PID], START + timedelta(days=1), mode="proposals")["proposed"] == 0
    assert len(_proposals(repo)) == 1  # proposing again is the same proposal

    # the GP includes the patient: a draft plan with only the care-planning conversation open
    edit_task(repo, proposal["id"], status="completed")
    included = events.process_events(repo, two, _morning(START + timedelta(days=2)))
    assert included["included"] == 1
    plans = all_of(repo, "CarePlan")
    assert len(plans) == 3 and {p["status"] for p in plans} == {"draft"}
    work = [t for t in all_of(repo, "Task") if t["id"] != proposal["id"]]
    (conversation,) = work
    assert conversation["code"]["coding"][0]["code"] and len(conversation["basedOn"]) == 2
    sweep(repo, two, _morning(START + timedelta(days=5)))
    assert len(all_of(repo, "Task")) == 2  # a draft plan opens nothing more

    # the conversation: the patient's own goal, their self-management and who coordinates
    with repo.unit_of_work(SYSTEM) as uow:
        goal, _ = uow.create({
            "resourceType": "Goal", "lifecycleStatus": "active", "subject": {"reference": f"Patient/{PID}"},
            "expressedBy": {"reference": f"Patient/{PID}"},
            "description": {"text": "Weer zelf naar de markt wandelen"},
        })
    talked = START + timedelta(days=20)
    outputs = [
        {"type": {"text": "patient goal"}, "valueReference": {"reference": f"Goal/{goal.id}"}},
        {"type": {"text": "self-management"}, "valueCodeableConcept": {"coding": [{"system": SELF_MANAGEMENT, "code": "moderate"}]}},
        {"type": {"text": "coordination"}, "valueCodeableConcept": {"coding": [{"system": COORDINATION_STEP, "code": "care-coach"}]}},
    ]
    edit_task(repo, conversation["id"], status="completed", output=outputs)
    done = events.process_events(repo, two, _morning(talked))
    assert done["plans-activated"] == 3
    plans = {p["id"]: p for p in all_of(repo, "CarePlan")}
    assert {p["status"] for p in plans.values()} == {"active"}
    whole = plans[ids.shared_careplan_id(PID)]
    assert {"reference": f"Goal/{goal.id}"} in whole["goal"]  # beside the programmes' clinical goals
    assert len(whole["goal"]) > 1
    exts = {e["url"]: e["valueCodeableConcept"]["coding"][0]["code"] for e in whole["extension"]}
    assert exts == {EXT_SELF_MANAGEMENT: "moderate", EXT_COORDINATION_STEP: "care-coach"}
    parts = [p for p in plans.values() if "instantiatesCanonical" in p]
    assert {p["period"]["start"] for p in parts} == {talked.isoformat()}  # the plan runs from the conversation
    for resource in (proposal, whole, *parts):  # what the engine wrote is valid R4 and keeps its profiles
        assert r4_errors(resource) == [], resource["id"]
        validate_resource(resource)
        if resource is not proposal:  # a proposal belongs to no plan yet, so it claims no careflow-task profile
            assert conformance_errors(resource) == [], resource["id"]
    opened = [t for t in all_of(repo, "Task") if t["id"] not in (proposal["id"], conversation["id"])]
    assert opened, "the active plan opens its first Tasks"
    late = [(t["code"]["text"], t["restriction"]["period"]) for t in opened if t["restriction"]["period"]["end"] < talked.isoformat()]
    assert not late, late  # none overdue on creation
    assert all(t["restriction"]["period"]["start"] >= talked.isoformat() for t in opened)


def test_a_rejected_proposal_is_not_made_again(repo: Any, two: dict[str, Any]) -> None:
    _setup(repo)
    enrolment.enrol(repo, two, [PID], START, mode="proposals")
    (proposal,) = _proposals(repo)
    edit_task(repo, proposal["id"], status="rejected")
    events.process_events(repo, two, _morning(START + timedelta(days=1)))
    assert all_of(repo, "CarePlan") == []
    again = enrolment.enrol(repo, two, [PID], START + timedelta(days=30), mode="proposals")
    assert again["proposed"] == 0 and len(_proposals(repo)) == 1


def test_a_patient_who_died_is_never_proposed(repo: Any, two: dict[str, Any]) -> None:
    _setup(repo)
    current = repo.read("Patient", PID)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), "deceasedDateTime": "2026-02-20"}, if_match=current.version)
    counts = enrolment.enrol(repo, two, [PID], START, mode="proposals")
    assert counts["proposed"] == 0 and counts["deceased"] == 1
    assert _proposals(repo) == []
