"""``only_if`` facts: the latest Observation, an active medication class, a Condition; in the plan
and through the year (a fact that comes to hold later opens the activity that day, never overdue)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from careflow.planning.only_if import fact_observation_codes, reads_medications, restriction_holds
from careflow.planning.patient import context_from_bundle, context_from_resources
from careflow.planning.planner import plan
from careflow.programs.loader import load_program
from careflow.programs.model import Only, Program
from careflow.triggers.actions import CreateTask
from careflow.triggers.sweep import sweep_plan

FIXTURE = Path(__file__).resolve().parents[1] / "programs" / "language" / "language.yaml"
START = date(2026, 3, 2)
LOINC, SNOMED, ATC = "http://loinc.org", "http://snomed.info/sct", "http://www.whocc.no/atc"


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(FIXTURE)


def smoking(oid: str, when: str, answer: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "72166-2"}]}, "effectiveDateTime": when,
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]}}


def quantity(oid: str, code: str, when: str, value: float, unit: str, system: str = LOINC) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": system, "code": code}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def foot_risk(oid: str, when: str, grade: int) -> dict[str, Any]:
    return quantity(oid, "diabetic-foot-risk-grade", when, grade, "{grade}",
                    system="https://careflow.dev/fhir/CodeSystem/observation")


def medication(mid: str, atc: str, status: str = "active", rtype: str = "MedicationStatement",
               end: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": rtype, "id": mid, "status": status, "subject": {"reference": "Patient/p"},
                           "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]}}
    if rtype == "MedicationRequest":
        out["intent"] = "order"
    if end:
        out["effectivePeriod"] = {"start": "2025-01-01", "end": end}
    return out


def ctx(observations: list[dict[str, Any]] = (), medications: list[dict[str, Any]] = (),  # type: ignore[assignment]
        extra_conditions: list[str] = ()) -> Any:  # type: ignore[assignment]
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}
    conditions = [{"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"},
                   "code": {"coding": [{"system": SNOMED, "code": "13645005"}]}, "onsetDateTime": "2015-01-01"}]
    for i, icd in enumerate(extra_conditions):
        conditions.append({"resourceType": "Condition", "id": f"x{i}", "subject": {"reference": "Patient/p"},
                           "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": icd}]}})
    return context_from_resources(patient, conditions, observations, medications=medications)


def opened(program: Program, context: Any, start: date = START) -> set[str]:
    return {t["identifier"][0]["value"].split("/")[-2] for t in plan(program, context, start).tasks}


def holds(program: Program, activity: str, context: Any, on: date = START) -> bool:
    only = program.activity(activity).only_if
    assert only is not None
    return restriction_holds(only, program, context, START, on=on)


# ---------------------------------------------------------------- latest Observation


def test_smoking_cessation_goes_to_smokers_only(program: Program) -> None:
    assert "stop-smoking" in opened(program, ctx([smoking("s1", "2025-06-01", "77176002")]))
    assert "stop-smoking" not in opened(program, ctx([smoking("s1", "2025-06-01", "8517006")]))  # ex-smoker
    assert "stop-smoking" not in opened(program, ctx())  # unknown: not for this activity


def test_the_latest_value_counts_not_any_earlier_one(program: Program) -> None:
    quit_later = ctx([smoking("s1", "2024-01-01", "77176002"), smoking("s2", "2025-12-01", "8517006")])
    assert not holds(program, "stop-smoking", quit_later)
    started_again = ctx([smoking("s1", "2024-01-01", "8517006"), smoking("s2", "2025-12-01", "449868002")])
    assert holds(program, "stop-smoking", started_again)


def test_values_after_the_day_asked_are_not_known_yet(program: Program) -> None:
    context = ctx([smoking("s1", "2024-01-01", "8517006"), smoking("s2", "2026-05-01T10:00:00Z", "77176002")])
    assert not holds(program, "stop-smoking", context, on=START)
    assert holds(program, "stop-smoking", context, on=date(2026, 5, 1))


def test_unknown_and_stale_values_follow_if_unknown(program: Program) -> None:
    assert holds(program, "ask-smoking", ctx())  # if_unknown: true
    assert holds(program, "ask-smoking", ctx([smoking("s1", "2023-01-01", "8517006")]))  # older than within: P1Y
    assert not holds(program, "ask-smoking", ctx([smoking("s1", "2025-09-01", "8517006")]))
    assert holds(program, "ask-smoking", ctx([smoking("s1", "2025-09-01", "77176002")]))


def test_podiatrist_follows_the_foot_risk_grade(program: Program) -> None:
    assert "podiatry" in opened(program, ctx([foot_risk("f1", "2026-01-10", 2)]))
    assert "podiatry" not in opened(program, ctx([foot_risk("f1", "2026-01-10", 1)]))
    assert "podiatry" not in opened(program, ctx([foot_risk("f1", "2026-01-10", 3), foot_risk("f2", "2026-02-10", 0)]))


def test_a_value_in_a_unit_that_does_not_convert_is_unknown(program: Program) -> None:
    weird = ctx([quantity("e1", "98979-8", "2026-01-01", 40, "mg/dL")])
    assert not holds(program, "kidney-review", weird)


# ---------------------------------------------------------------- medication and condition


def test_medication_class_matches_its_atc_subtree_and_any_egfr_code(program: Program) -> None:
    low_mdrd = quantity("e1", "33914-3", "2026-01-01", 52, "mL/min/{1.73_m2}")
    assert holds(program, "kidney-review", ctx([low_mdrd]))
    on_dapagliflozin = medication("m1", "A10BK01")
    assert not holds(program, "kidney-review", ctx([low_mdrd], [on_dapagliflozin]))
    on_metformin = medication("m1", "A10BA02")
    assert holds(program, "kidney-review", ctx([low_mdrd], [on_metformin]))


def test_stopped_or_ended_medication_does_not_count(program: Program) -> None:
    low = [quantity("e1", "98979-8", "2026-01-01", 52, "mL/min/{1.73_m2}")]
    assert holds(program, "kidney-review", ctx(low, [medication("m1", "A10BK03", status="stopped")]))
    assert holds(program, "kidney-review", ctx(low, [medication("m1", "A10BK03", end="2026-01-31")]))
    assert not holds(program, "kidney-review", ctx(low, [medication("m1", "A10BK03", rtype="MedicationRequest")]))


def test_any_of_holds_with_a_condition_alone(program: Program) -> None:
    assert not holds(program, "kidney-review", ctx([quantity("e1", "98979-8", "2026-01-01", 75, "mL/min/{1.73_m2}")]))
    assert holds(program, "kidney-review", ctx(extra_conditions=["N18.3"]))  # ICD-10 N18 covers N18.3
    assert holds(program, "kidney-review", ctx([quantity("e1", "98979-8", "2026-01-01", 75, "mL/min/1.73m2")],
                                               extra_conditions=["N18"]))


def test_condition_absent_is_a_fact_too() -> None:
    only = Only.model_validate({"condition": {"codes": [{"system": "snomed", "code": "49436004"}], "present": False}})
    program = load_program(FIXTURE)
    af = {"resourceType": "Condition", "id": "af", "subject": {"reference": "Patient/p"},
          "code": {"coding": [{"system": SNOMED, "code": "49436004"}]}}
    patient = {"resourceType": "Patient", "id": "p"}
    assert restriction_holds(only, program, context_from_resources(patient, []), START)
    assert not restriction_holds(only, program, context_from_resources(patient, [af]), START)
    resolved = {**af, "clinicalStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}}
    assert restriction_holds(only, program, context_from_resources(patient, [resolved]), START)


def test_a_bundle_carries_medications_to_the_planner(program: Program) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}},
        {"resource": {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"},
                      "code": {"coding": [{"system": SNOMED, "code": "13645005"}]}}},
        {"resource": quantity("e1", "62238-1", "2026-01-01", 41, "mL/min/{1.73_m2}")},
        {"resource": medication("m1", "A10BK01")},
    ]}
    context = context_from_bundle(bundle)
    assert [m.codes for m in context.medications] == [((ATC, "A10BK01"),)]
    assert "kidney-review" not in opened(program, context)


def test_the_engine_knows_which_facts_to_load(program: Program) -> None:
    codes = fact_observation_codes({"language": program})
    assert f"{LOINC}|72166-2" in codes and f"{LOINC}|33914-3" in codes
    assert "https://careflow.dev/fhir/CodeSystem/observation|diabetic-foot-risk-grade" in codes
    assert reads_medications([program])


# ---------------------------------------------------------------- through the year


def _sweep_until(program: Program, context: Any, careplan: dict[str, Any], tasks: list[dict[str, Any]],
                 day: date) -> list[dict[str, Any]]:
    return [a.resource for a in sweep_plan(program, careplan, tasks, context, day) if isinstance(a, CreateTask)]


def test_a_fact_that_comes_to_hold_later_opens_that_day_and_not_overdue(program: Program) -> None:
    non_smoker = ctx([smoking("s1", "2025-06-01", "8517006")])
    result = plan(program, non_smoker, START)
    assert "stop-smoking" not in {t["identifier"][0]["value"].split("/")[-2] for t in result.tasks}
    # in May the patient says they smoke again: the next sweep opens the current occurrence that day
    may = date(2026, 5, 20)
    smoker = ctx([smoking("s1", "2025-06-01", "8517006"), smoking("s2", "2026-05-19", "77176002")])
    created = _sweep_until(program, smoker, result.careplans[0], result.tasks, may)
    (task,) = [t for t in created if "/stop-smoking/" in t["identifier"][0]["value"]]
    assert task["restriction"]["period"]["start"] == may.isoformat()
    assert "businessStatus" not in task  # not overdue on creation
    assert task["status"] == "requested"


def test_a_fact_that_held_all_along_keeps_the_regular_window(program: Program) -> None:
    smoker = ctx([smoking("s1", "2025-06-01", "77176002")])
    result = plan(program, smoker, START)
    later = START + timedelta(days=95)  # the second quarterly window opened on 2 June
    created = _sweep_until(program, smoker, result.careplans[0], result.tasks, later)
    (task,) = [t for t in created if "/stop-smoking/" in t["identifier"][0]["value"]]
    assert task["restriction"]["period"]["start"] == "2026-06-02"
