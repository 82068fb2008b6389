"""Observation rules with code sets, the HL7 Belgium symptom answers, persistence and the patient's own
baseline: chronic hypoxaemia raises one Task per run, not one per measurement."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from careflow_shared import SHARED, need

from careflow.planning.patient import context_from_resources
from careflow.planning.planner import plan
from careflow.programs.codes import SYMPTOM_SEVERITY
from careflow.programs.loader import load_program
from careflow.programs.model import Program
from careflow.triggers.actions import CreateTask, UpdatePlan
from careflow.triggers.observations import history_codes, history_since, observation_actions

FIXTURE = Path(__file__).resolve().parents[1] / "programs" / "language" / "language.yaml"
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
T0 = datetime(2026, 4, 1, 8, 0, tzinfo=timezone.utc)
SEVERITY = SHARED / "hl7-be/patient-monitoring/input/fsh/valuesets/SymptomSeverity.fsh"


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(FIXTURE)


@pytest.fixture(scope="module")
def world(program: Program) -> tuple[Any, dict[str, Any]]:
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"},
                 "code": {"coding": [{"system": SNOMED, "code": "13645005"}]}}
    ctx = context_from_resources(patient, [condition])
    return ctx, plan(program, ctx, date(2026, 3, 2)).careplans[0]


def spo2(oid: str, hours: float, value: float, both_codes: bool = False) -> dict[str, Any]:
    coding = [{"system": LOINC, "code": "59408-5"}]
    if both_codes:  # as the HL7 Belgium patient-monitoring example sends it
        coding.insert(0, {"system": LOINC, "code": "2708-6"})
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": coding}, "effectiveDateTime": (T0 + timedelta(hours=hours)).isoformat(),
            "valueQuantity": {"value": value, "unit": "%O2", "system": "http://unitsofmeasure.org", "code": "%"}}


def egfr(oid: str, code: str, days: float, value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "effectiveDateTime": (T0 + timedelta(days=days)).isoformat(),
            "valueQuantity": {"value": value, "unit": "mL/min/1.73m2", "system": "http://unitsofmeasure.org",
                              "code": "mL/min/{1.73_m2}"}}


def fired(program: Program, world: tuple[Any, dict[str, Any]], new: dict[str, Any], earlier: list[dict[str, Any]],
          trigger: str) -> bool:
    ctx, careplan = world
    actions = observation_actions(new, earlier, [(program, careplan)], ctx, T0 + timedelta(days=30))
    return any(isinstance(a, CreateTask) and a.trigger == trigger for a in actions) or (
        trigger == "egfr-falling" and any(isinstance(a, UpdatePlan) and "flagged" in a.changes for a in actions)
    )


# ---------------------------------------------------------------- persistence


def test_one_low_reading_is_not_enough(program: Program, world: Any) -> None:
    assert not fired(program, world, spo2("s1", 0, 86), [], "low-oxygen")


def test_twice_within_24_hours_fires(program: Program, world: Any) -> None:
    assert fired(program, world, spo2("s2", 6, 86), [spo2("s1", 0, 87)], "low-oxygen")


def test_twice_but_further_apart_than_a_day_does_not(program: Program, world: Any) -> None:
    assert not fired(program, world, spo2("s2", 25, 86), [spo2("s1", 0, 87)], "low-oxygen")


def test_a_normal_reading_in_between_breaks_the_run(program: Program, world: Any) -> None:
    earlier = [spo2("s1", 0, 86), spo2("s2", 3, 93)]
    assert not fired(program, world, spo2("s3", 6, 86), earlier, "low-oxygen")


def test_chronic_hypoxaemia_raises_one_task_per_run_not_one_per_reading(program: Program, world: Any) -> None:
    readings = [spo2(f"s{i}", 12 * i, 85 + (i % 2)) for i in range(20)]  # ten days at 85-86 %, twice a day
    firing = [r["id"] for i, r in enumerate(readings) if fired(program, world, r, readings[:i], "low-oxygen")]
    assert firing == ["s1"]
    # the run ends with a normal reading; a new dip later is a new run and is raised again
    later = [*readings, spo2("ok", 12 * 20, 94), spo2("d1", 12 * 21, 86)]
    assert fired(program, world, spo2("d2", 12 * 21 + 4, 86), later, "low-oxygen")


def test_the_rule_reads_history_back_for_a_run(program: Program) -> None:
    since = history_since(spo2("s", 0, 86), [program])
    assert since is not None and since <= T0 - timedelta(days=10)  # ten persistence windows, and the 3-month baseline
    assert set(history_codes(spo2("s", 0, 86), [program])) == {f"{LOINC}|2708-6", f"{LOINC}|59408-5"}


# ---------------------------------------------------------------- the patient's own baseline


def test_below_own_baseline_needs_a_baseline(program: Program, world: Any) -> None:
    assert not fired(program, world, spo2("n", 0, 80), [spo2("a", -48, 90), spo2("b", -24, 90)], "below-baseline")


def test_below_own_baseline_fires_on_a_drop_from_the_patients_usual_value(program: Program, world: Any) -> None:
    usual = [spo2(f"u{i}", -24 * (i + 1), 87) for i in range(5)]  # lives at 87 %
    assert not fired(program, world, spo2("n", 0, 85), usual, "below-baseline")  # 2 below: their normal
    assert fired(program, world, spo2("n", 0, 82), usual, "below-baseline")  # 5 below: a real drop


def test_either_spo2_code_feeds_the_same_series(program: Program, world: Any) -> None:
    earlier = [spo2("s1", 0, 86, both_codes=True)]
    assert fired(program, world, spo2("s2", 6, 86), earlier, "low-oxygen")


# ---------------------------------------------------------------- code sets and answer codes


@pytest.mark.parametrize("code", ["98979-8", "62238-1", "33914-3"])
def test_every_egfr_code_fires_the_same_rule(program: Program, world: Any, code: str) -> None:
    assert fired(program, world, egfr("e", code, 0, 25), [], "egfr-low")
    assert not fired(program, world, egfr("e", code, 0, 35), [], "egfr-low")


def test_a_fall_is_measured_across_egfr_equations(program: Program, world: Any) -> None:
    before = [egfr("old", "33914-3", -200, 58)]  # MDRD last year
    assert fired(program, world, egfr("new", "98979-8", 0, 45), before, "egfr-falling")  # CKD-EPI 2021 now
    assert set(history_codes(egfr("new", "98979-8", 0, 45), [program])) == {
        f"{LOINC}|98979-8", f"{LOINC}|62238-1", f"{LOINC}|33914-3"}


def _symptom(answer: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"sob-{answer}", "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": SNOMED, "code": "267036007"}]}, "effectiveDateTime": T0.isoformat(),
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]}}


def test_symptom_severity_answers_of_the_belgian_monitoring_ig(program: Program, world: Any) -> None:
    by_name = {name: code for code, name in SYMPTOM_SEVERITY}
    assert fired(program, world, _symptom(by_name["Moderate"]), [], "breathless")
    assert fired(program, world, _symptom(by_name["Severe"]), [], "breathless")
    assert not fired(program, world, _symptom(by_name["Mild"]), [], "breathless")
    assert not fired(program, world, _symptom(by_name["Absent"]), [], "breathless")


def test_the_severity_codes_are_the_igs_value_set() -> None:
    included = [line.split("#", 1)[1] for line in need(SEVERITY).read_text().splitlines() if "snomed.info/sct#" in line]
    assert [(c.split(" ", 1)[0], c.split(" ", 1)[1].strip('" ')) for c in included] == list(SYMPTOM_SEVERITY)


# ---------------------------------------------------------------- lasting runs and trigger restrictions


def test_an_egfr_below_45_fires_once_confirmed_after_three_months(program: Program, world: Any) -> None:
    first = egfr("e1", "33914-3", 0, 42)
    assert not fired(program, world, first, [], "egfr-confirmed")
    assert not fired(program, world, egfr("e2", "98979-8", 60, 41), [first], "egfr-confirmed")  # two months on
    second = egfr("e2", "98979-8", 60, 41)
    third = egfr("e3", "98979-8", 95, 43)
    assert fired(program, world, third, [first, second], "egfr-confirmed")  # three months and more
    assert not fired(program, world, egfr("e4", "62238-1", 180, 40), [first, second, third], "egfr-confirmed")  # once
    recovered = [first, egfr("ok", "98979-8", 60, 52)]
    assert not fired(program, world, egfr("e3", "98979-8", 95, 43), recovered, "egfr-confirmed")  # the run broke


def _ldl(value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "ldl", "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": LOINC, "code": "13457-7"}]}, "effectiveDateTime": T0.isoformat(),
            "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}


def test_a_trigger_only_if_keeps_the_rule_to_some_patients(program: Program, world: Any) -> None:
    assert not fired(program, world, _ldl(62), [], "ldl-high-with-disease")  # no established disease
    ctx, careplan = world
    ischaemic = {"resourceType": "Condition", "id": "ihd", "subject": {"reference": "Patient/p"},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": "K76"}]}}
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}
    copd = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": SNOMED, "code": "13645005"}]}}
    with_disease = context_from_resources(patient, [copd, ischaemic])
    assert fired(program, (with_disease, careplan), _ldl(62), [], "ldl-high-with-disease")
    assert not fired(program, (with_disease, careplan), _ldl(50), [], "ldl-high-with-disease")
