"""The informal carer (mantelzorger) in the patient's CareTeam.

A daughter recorded as the patient's RelatedPerson with HL7 Belgium's CD-HCPARTY ``perscaregiver``
joins the CareTeam at enrolment; a carer recorded later joins it through the engine's events; one
who stops caring has the participation ended, not erased. A neighbour who is not a carer stays out.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import HEART_FAILURE, add_patient, add_team

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.fhir.profiles import conformance_errors
from careflow.planning import ids
from careflow.programs.codes import HCPARTY

START = date(2026, 4, 6)
PID = "pat-carer"


def _related(rid: str, code: str) -> dict[str, Any]:
    return {"resourceType": "RelatedPerson", "id": rid, "active": True, "patient": {"reference": f"Patient/{PID}"},
            "relationship": [{"coding": [{"system": HCPARTY, "code": code}]}], "name": [{"family": "Janssens"}]}


def _carers(repo: Any) -> list[dict[str, Any]]:
    team = repo.read("CareTeam", ids.careteam_id(PID)).resource
    return [p for p in team["participant"] if (p.get("member") or {}).get("reference", "").startswith("RelatedPerson/")]


def test_the_mantelzorger_is_in_the_care_team(repo: Any, heart_failure: Any) -> None:
    programs = {heart_failure.id: heart_failure}
    add_team(repo)
    add_patient(repo, PID, conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent(_related("daughter", "perscaregiver"))
        uow.create_if_absent(_related("neighbour", "persneighbour"))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)
    (daughter,) = _carers(repo)
    assert daughter["member"] == {"reference": "RelatedPerson/daughter"}
    assert {"system": "http://snomed.info/sct", "code": "407542009", "display": "Informal carer"} in daughter["role"][0]["coding"]
    assert daughter["period"] == {"start": START.isoformat()}
    assert conformance_errors(repo.read("CareTeam", ids.careteam_id(PID)).resource) == []

    later = START + timedelta(days=30)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent(_related("son", "perscaregiver"))
    events.process_events(repo, programs, datetime.combine(later, time(6), tzinfo=timezone.utc))
    assert sorted(p["member"]["reference"] for p in _carers(repo)) == ["RelatedPerson/daughter", "RelatedPerson/son"]

    # the daughter moves away: her participation ends that day and stays on record
    ended = later + timedelta(days=10)
    current = repo.read("RelatedPerson", "daughter")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), "active": False}, if_match=current.version)
    events.process_events(repo, programs, datetime.combine(ended, time(6), tzinfo=timezone.utc))
    by_member = {p["member"]["reference"]: p for p in _carers(repo)}
    assert by_member["RelatedPerson/daughter"]["period"] == {"start": START.isoformat(), "end": ended.isoformat()}
    assert "end" not in by_member["RelatedPerson/son"]["period"]
    # handled again, nothing moves
    before = repo.read("CareTeam", ids.careteam_id(PID)).version
    events.process_events(repo, programs, datetime.combine(ended + timedelta(days=1), time(6), tzinfo=timezone.utc))
    assert repo.read("CareTeam", ids.careteam_id(PID)).version == before
