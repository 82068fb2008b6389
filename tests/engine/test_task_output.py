"""Completing a Task records its output: a weight entered with the home visit becomes an Observation,
and the programme's weight rule reacts to it as to any other measurement.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from engine_world import HEART_FAILURE, add_patient, add_team, add_weight, all_of, edit_task

from careflow.engine import enrolment, events
from careflow.engine.sweep import sweep
from careflow.planning import ids

START = date(2026, 5, 4)
PID = "pat-out"
LOINC = "http://loinc.org"


def _at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def test_a_weight_entered_on_completion_raises_the_weight_rule(repo: Any, heart_failure: Any) -> None:
    programs = {heart_failure.id: heart_failure}
    add_team(repo)
    add_patient(repo, PID, conditions=[HEART_FAILURE], onset=START - timedelta(days=400))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)
    sweep(repo, programs, _at(START, 6))
    visit = next(t for t in sorted(all_of(repo, "Task"), key=lambda t: t["id"]) if t["status"] == "requested")
    day = date.fromisoformat(visit["restriction"]["period"]["start"]) + timedelta(days=1)
    add_weight(repo, PID, _at(day - timedelta(days=2)), 80.4)
    events.process_events(repo, programs, _at(day - timedelta(days=2), 10))

    weight = {"type": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}], "text": "Weight"},
              "valueQuantity": {"value": 83.1, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    edit_task(repo, visit["id"], status="completed", executionPeriod={"end": _at(day).isoformat()},
              output=[{"type": {"text": "note"}, "valueString": "Ankles swollen"}, weight])
    first = events.process_events(repo, programs, _at(day, 11))
    assert first["observations-recorded"] == 1
    recorded = repo.read("Observation", ids.task_output_id(visit["id"], 1)).resource
    assert recorded["valueQuantity"]["value"] == 83.1 and recorded["subject"] == {"reference": f"Patient/{PID}"}
    assert recorded["effectiveDateTime"] == _at(day).isoformat()
    assert recorded["category"][0]["coding"][0]["code"] == "vital-signs"  # so the nurse may see it too
    # the Observation is an event like any other: the weight-gain rule raises its urgent Task
    events.process_events(repo, programs, _at(day, 12))
    urgent = [t for t in all_of(repo, "Task") if t.get("focus") == {"reference": f"Observation/{recorded['id']}"}]
    assert len(urgent) == 1 and urgent[0]["priority"] == "urgent"
    # the note is not a measurement (the home weight and the recorded one are all there is), and
    # handling the events again adds none
    assert len(all_of(repo, "Observation")) == 2
    events.process_events(repo, programs, _at(day, 13))
    assert len(all_of(repo, "Observation")) == 2
