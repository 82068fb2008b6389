"""The engine gives ``only_if`` its facts (Observations and medications from the store) and gives
observation rules the earlier values of every code they name."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from engine_world import COPD, LOINC, SNOMED, add_patient, add_team, all_of

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment, events
from careflow.engine.context import load_contexts
from careflow.engine.sweep import sweep
from careflow.programs.loader import load_program

START = date(2026, 3, 2)
FIXTURE = Path(__file__).resolve().parents[1] / "programs" / "language" / "language.yaml"


@pytest.fixture(scope="module")
def programs() -> dict[str, Any]:
    program = load_program(FIXTURE)
    return {program.id: program}


def _at(day: date, hour: int = 7) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=timezone.utc)


def _write(repo: Any, resource: dict[str, Any]) -> str:
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.create(resource)
    return stored.id


def _smoking(pid: str, when: datetime, answer: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": LOINC, "code": "72166-2"}]}, "effectiveDateTime": when.isoformat(),
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]}}


def _egfr(pid: str, code: str, when: datetime, value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when.isoformat(),
            "valueQuantity": {"value": value, "unit": "mL/min/{1.73_m2}", "system": "http://unitsofmeasure.org",
                              "code": "mL/min/{1.73_m2}"}}


def _activities(repo: Any, pid: str) -> set[str]:
    return {t["identifier"][0]["value"].split("/")[-2] for t in all_of(repo, "Task")
            if t["for"]["reference"] == f"Patient/{pid}"}


def test_contexts_carry_the_facts_only_if_reads(repo: Any, programs: dict[str, Any]) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[COPD], onset=START - timedelta(days=900))
    _write(repo, _smoking("p1", _at(START - timedelta(days=30)), "77176002"))
    _write(repo, {"resourceType": "MedicationStatement", "status": "active", "subject": {"reference": "Patient/p1"},
                  "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BK01"}]}})
    _write(repo, {"resourceType": "MedicationRequest", "status": "cancelled", "intent": "order",
                  "subject": {"reference": "Patient/p1"},
                  "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C03DA01"}]}})
    contexts, _ = load_contexts(repo, ["p1"], programs)
    ctx = contexts["p1"]
    assert [o.codes for o in ctx.observations] == [((LOINC, "72166-2"),)]
    assert [m.codes for m in ctx.medications] == [(("http://www.whocc.no/atc", "A10BK01"),)]


def test_enrolment_and_sweep_follow_the_smoking_status(repo: Any, programs: dict[str, Any]) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[COPD], onset=START - timedelta(days=900))
    add_patient(repo, "p2", conditions=[COPD], onset=START - timedelta(days=900))
    _write(repo, _smoking("p1", _at(START - timedelta(days=30)), "77176002"))  # smoker
    _write(repo, _smoking("p2", _at(START - timedelta(days=30)), "8517006"))  # ex-smoker
    enrolment.enrol(repo, programs, ["p1", "p2"], START)
    assert "stop-smoking" in _activities(repo, "p1")
    assert "stop-smoking" not in _activities(repo, "p2")
    later = START + timedelta(days=40)
    _write(repo, _smoking("p2", _at(later - timedelta(days=1)), "77176002"))  # started again
    sweep(repo, programs, _at(later))
    (task,) = [t for t in all_of(repo, "Task") if t["for"]["reference"] == "Patient/p2"
               and "/stop-smoking/" in t["identifier"][0]["value"]]
    assert task["restriction"]["period"]["start"] == later.isoformat()


def test_an_egfr_rule_compares_with_earlier_values_of_another_equation(repo: Any, programs: dict[str, Any]) -> None:
    add_team(repo)
    add_patient(repo, "p1", conditions=[COPD], onset=START - timedelta(days=900))
    enrolment.enrol(repo, programs, ["p1"], START)
    _write(repo, _egfr("p1", "33914-3", _at(START - timedelta(days=100)), 58))  # MDRD, before events
    events.install(repo)
    _write(repo, _egfr("p1", "98979-8", _at(START + timedelta(days=5)), 44))  # CKD-EPI 2021
    events.process_events(repo, programs, _at(START + timedelta(days=5), 9))
    (careplan,) = [p for p in all_of(repo, "CarePlan") if "instantiatesCanonical" in p]
    flags = [e for e in careplan.get("extension", []) if e["url"].endswith("careplan-attention")]
    assert flags and flags[0]["valueBoolean"] is True
