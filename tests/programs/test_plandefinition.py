"""Programme <-> PlanDefinition: lossless round trips, what FHIR readers see, valid R4, clear errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.activitydefinition import ActivityDefinition
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.plandefinition import PlanDefinition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careflow.errors import CareflowError, PlanDefinitionError, ProgramNotExportable
from careflow.fhir.r4_schema import r4_errors
from careflow.naming import (
    EXT_DUE_WITHIN,
    EXT_ISO_DURATION,
    EXT_OBSERVATION_RULE,
    EXT_PATIENT_INSTRUCTION,
    EXT_TARGET_STABLE_WITHIN,
    EXT_THEN_STEP,
    EXT_TRANSLATION,
    activity_definition_url,
)
from careflow.programs.loader import load_program
from careflow.programs.model import Program
from careflow.programs.pd_datatypes import Node, duration, period_fields, read_duration, read_period
from careflow.programs.plandefinition import (
    from_bundle,
    from_plan_definition,
    to_activity_definitions,
    to_bundle,
    to_plan_definition,
)

PROGRAM_DIR = Path(__file__).resolve().parents[2] / "care_programs"


def _t(en: str, nl: str) -> dict[str, str]:
    return {"en": en, "nl": nl}


def _q(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit}


HBA1C = {"system": "loinc", "code": "4548-4", "display": "Hemoglobin A1c/Hemoglobin.total in Blood"}
WEIGHT = {"system": "loinc", "code": "29463-7"}
SYSTOLIC = {"system": "loinc", "code": "8480-6", "display": "Systolic blood pressure"}
SMOKING = {"system": "loinc", "code": "72166-2", "display": "Tobacco smoking status"}
EGFR = [{"system": "loinc", "code": "98979-8"}, {"system": "loinc", "code": "62238-1"}, {"system": "loinc", "code": "33914-3"}]
SPO2 = [{"system": "loinc", "code": "2708-6"}, {"system": "loinc", "code": "59408-5"}]

# Every feature of the model: all target kinds, all timing fields, after, only_if, every trigger
# kind, every `then` step, instructions, descriptions, optional fields absent and present,
# durations a FHIR Duration cannot spell exactly (P1Y6M, P1M15D, P2W), a role no action cites.
RICH: dict[str, Any] = {
    "id": "rich-care",
    "version": "2.1.0-rc.1",
    "url": "https://example.org/fhir/PlanDefinition/rich-care",
    "status": "draft",
    "title": _t("Rich care", "Rijke zorg"),
    "description": _t("Every feature once.", "Elke mogelijkheid één keer."),
    "plan_period": "P1Y6M",
    "eligibility": {
        "conditions": [
            {"system": "icpc-2", "code": "T90", "display": "Diabetes non-insulin dependent"},
            {"system": "snomed", "code": "44054006"},
            {"system": "icd-10", "code": "E11"},
        ],
        "age": {"min": 18, "max": 95},
        "groups": ["B", "C", "D"],
        "new_diagnosis_within": "P2W",
    },
    "roles": {
        "gp": {
            "title": _t("General practitioner", "Huisarts"),
            "codes": [
                {"system": "snomed", "code": "62247001", "display": "Family medicine specialist"},
                {"system": "cd-hcparty", "code": "persgeneralphysician"},
            ],
        },
        "nurse": {"title": _t("Home nurse", "Thuisverpleegkundige"), "codes": [{"system": "snomed", "code": "158997000"}]},
        "dietitian": {"title": _t("Dietitian", "Diëtist"), "codes": [{"system": "snomed", "code": "159033005"}]},
        "coach": {"title": _t("Care coach", "Zorgcoach"), "codes": [{"system": "cd-hcparty", "code": "persnurse"}]},
        "psychologist": {"title": _t("Psychologist", "Psycholoog"), "codes": [{"system": "snomed", "code": "59944000"}]},
    },
    "goals": [
        {
            "id": "glycaemia",
            "title": _t("HbA1c under control", "HbA1c onder controle"),
            "targets": [
                {"measure": HBA1C, "below": _q(53, "mmol/mol")},
                {"measure": {"system": "loinc", "code": "2089-1"}, "between": [_q(1.4, "mmol/L"), _q(2.6, "mmol/L")]},
            ],
            "due": "P6M",
        },
        {
            "id": "blood-pressure",
            "title": _t("Blood pressure", "Bloeddruk"),
            "category": "behavioral",
            "targets": [
                {"measure": SYSTOLIC, "at_most": _q(140, "mm[Hg]")},
                {"measure": {"system": "loinc", "code": "8462-4"}, "at_least": _q(60.5, "mm[Hg]")},
                {"measure": {"system": "loinc", "code": "33914-3"}, "above": _q(45, "mL/min/{1.73_m2}")},
            ],
        },
        {
            "id": "weight",
            "title": _t("Weight stable", "Gewicht stabiel"),
            "category": "dietary",
            "targets": [
                {"measure": WEIGHT, "stable_within": _q(2, "kg")},
                {"measure": {"system": "loinc", "code": "19926-5"}, "ratio": {"numerator": _q(70, "%"), "denominator": _q(100, "%")}},
            ],
            "due": "P1Y6M",
        },
        {"id": "no-falls", "title": _t("No falls", "Geen valpartijen"), "category": "safety", "due": "P3M"},
        {"id": "self-care", "title": _t("Self-care", "Zelfzorg"), "category": "nursing"},
    ],
    "activities": [
        {
            "id": "intake",
            "title": _t("Intake", "Intake"),
            "description": _t("Draw up the care plan", "Zorgplan opstellen"),
            "role": "gp",
            "code": {"system": "careflow", "code": "care-plan-start"},
            "instructions": _t("Bring your medication", "Breng uw medicatie mee"),
        },
        {
            "id": "hba1c-check",
            "title": _t("HbA1c check", "HbA1c-controle"),
            "description": _t("Measure HbA1c", "HbA1c meten"),
            "role": "nurse",
            "code": {"system": "snomed", "code": "43396009", "display": "Hemoglobin A1c measurement"},
            "timing": {"start": "P1M", "every": "P3M", "due_within": "P7D"},
        },
        {
            "id": "education",
            "title": _t("Education", "Educatie"),
            "description": _t("Teach self-care", "Zelfzorg aanleren"),
            "role": "nurse",
            "code": {"system": "snomed", "code": "11816003"},
            "timing": {"start": "P2W", "every": "P1M", "times": 3},
            "after": ["intake"],
            "only_if": {"new_diagnosis": True, "groups": ["B", "C"], "min_age": 40},
            "priority": "urgent",
            "instructions": _t("Keep a diary", "Houd een dagboek bij"),
        },
        {
            "id": "foot-exam",
            "title": _t("Foot exam", "Voetonderzoek"),
            "description": _t("Examine the feet", "Voeten onderzoeken"),
            "role": "gp",
            "code": {"system": "snomed", "code": "401191002"},
            "timing": {"start": "P1Y", "times": 1},
            "only_if": {"new_diagnosis": False},
        },
        {
            "id": "diet",
            "title": _t("Diet advice", "Dieetadvies"),
            "description": _t("Advise on diet", "Advies over voeding"),
            "role": "dietitian",
            "code": {"system": "careflow", "code": "diet-advice"},
            "after": ["intake", "education"],
            "only_if": {"groups": ["C"]},
        },
        {
            "id": "review",
            "title": _t("Review", "Evaluatie"),
            "description": _t("Review the plan", "Plan evalueren"),
            "role": "gp",
            "code": {"system": "careflow", "code": "review"},
            "timing": {"start": "P1M15D", "every": "P1Y6M", "due_within": "P1M"},
            "priority": "asap",
        },
        {
            "id": "follow-up",
            "title": _t("Follow-up", "Opvolging"),
            "description": _t("Follow up after diet advice", "Opvolgen na dieetadvies"),
            "role": "dietitian",
            "code": {"system": "careflow", "code": "follow-up"},
            "timing": {"start": "P3M", "every": "P6M"},
            "after": ["diet"],
            "only_if": {"min_age": 70},
            "priority": "stat",
        },
        {
            "id": "flu-shot",
            "title": _t("Flu shot", "Griepvaccin"),
            "description": _t("Every autumn", "Elk najaar"),
            "role": "gp",
            "code": {"system": "snomed", "code": "86198006"},
            "timing": {"season": {"opens": "10-01", "closes": "12-31"}, "due_within": "P2M"},
            "only_if": {
                "observation": {"code": [SMOKING, {"system": "snomed", "code": "229819007"}],
                                "value_in": [{"system": "snomed", "code": "77176002", "display": "Smoker"}],
                                "within": "P1Y6M", "if_unknown": True},
                "medication": {"codes": [{"system": "atc", "code": "A10BK"}, {"system": "snomed", "code": "387517004"}],
                               "taking": False},
                "condition": {"codes": [{"system": "icd-10", "code": "N18"}]},
                "any_of": [
                    {"observation": {"code": EGFR, "below": _q(45, "mL/min/{1.73_m2}")}},
                    {"medication": {"codes": [{"system": "atc", "code": "C03DA01"}]}},
                    {"condition": {"codes": [{"system": "snomed", "code": "49436004"}], "present": False}},
                ],
            },
        },
        {
            "id": "winter-check",
            "title": _t("Winter check", "Wintercontrole"),
            "description": _t("Once, in a winter", "Eén keer, in een winter"),
            "role": "nurse",
            "code": {"system": "careflow", "code": "winter-check"},
            "timing": {"start": "P1M", "season": {"opens": "11-15", "closes": "02-15"}, "times": 1},
            "only_if": {"groups": ["A"], "observation": {"code": EGFR, "at_least": _q(15.5, "mL/min/{1.73_m2}")}},
        },
        {
            "id": "one-off-late",
            "title": _t("Late check", "Late controle"),
            "description": _t("A check after a while", "Een controle na een tijd"),
            "role": "nurse",
            "code": {"system": "careflow", "code": "late-check"},
            "timing": {"start": "P10W", "due_within": "P0D"},
            "after": ["intake"],
        },
    ],
    "triggers": [
        {
            "id": "hba1c-overdue",
            "title": _t("HbA1c check late", "HbA1c-controle te laat"),
            "when": {"overdue": {"activity": "hba1c-check", "by": "P7D"}},
            "then": {"escalate_to": "coach", "priority": "urgent"},
        },
        {"id": "anything-overdue", "when": {"overdue": {"activity": "any", "by": "P1M"}}, "then": {"flag_plan": True}},
        {"id": "intake-done", "when": {"completed": "intake"}, "then": {"start": ["education", "diet"]}},
        {
            "id": "any-rejected",
            "title": _t("Rejected", "Geweigerd"),
            "when": {"rejected": "any"},
            "then": {"reassign_to": "coach"},
        },
        {
            "id": "education-rejected",
            "when": {"rejected": "education"},
            "then": {"create_task": {"role": "gp", "title": _t("Discuss education", "Educatie bespreken")}},
        },
        {
            "id": "hba1c-high",
            "when": {"observation": {"code": HBA1C, "above": _q(64, "mmol/mol")}},
            "then": {
                "create_task": {
                    "role": "gp",
                    "title": _t("Adjust therapy", "Therapie bijsturen"),
                    "description": _t("HbA1c above 64", "HbA1c boven 64"),
                    "code": {"system": "careflow", "code": "therapy-review"},
                    "priority": "asap",
                    "due_within": "P3D",
                },
                "flag_plan": True,
                "priority": "stat",
            },
        },
        {
            "id": "bp-low",
            "when": {"observation": {"code": SYSTOLIC, "below": _q(90, "mm[Hg]"), "within": "P1D"}},
            "then": {"escalate_to": "gp"},
        },
        {
            "id": "weight-gain",
            "title": _t("Weight gain", "Gewichtstoename"),
            "when": {"observation": {"code": WEIGHT, "rises_by": _q(2, "kg"), "within": "P3D"}},
            "then": {
                "escalate_to": "gp",
                "priority": "asap",
                "start": ["diet"],
                "reassign_to": "coach",
                "create_task": {"role": "nurse", "title": _t("Check fluid balance", "Vochtbalans nagaan")},
                "flag_plan": True,
            },
        },
        {
            "id": "weight-loss",
            "when": {"observation": {"code": WEIGHT, "falls_by": _q(5, "%"), "within": "P1M15D"}},
            "then": {"start": ["diet", "follow-up"]},
        },
        {
            "id": "hypoxaemia",
            "when": {"observation": {"code": SPO2, "below": _q(88, "%"), "persists": {"times": 2, "within": "P1D"}}},
            "then": {"flag_plan": True},
        },
        {
            "id": "below-own-baseline",
            "when": {"observation": {"code": SPO2, "below_baseline": _q(4, "%"), "within": "P3M",
                                     "persists": {"times": 3, "within": "P2D", "lasting": "P1D"}}},
            "only_if": {"groups": ["A", "B"], "condition": {"codes": [{"system": "icd-10", "code": "J96"}]}},
            "then": {"escalate_to": "gp"},
        },
        {
            "id": "weight-above-baseline",
            "when": {"observation": {"code": WEIGHT, "above_baseline": _q(1.5, "kg"), "within": "P1M",
                                     "persists": {"lasting": "P3M"}}},
            "then": {"flag_plan": True},
        },
        {
            "id": "exacerbation",
            "when": {
                "observation": {
                    "code": {"system": "snomed", "code": "248548009"},
                    "value_in": [
                        {"system": "snomed", "code": "373066001", "display": "Yes"},
                        {"system": "urn:oid:2.16.840.1.113883.6.96", "code": "it's"},
                    ],
                }
            },
            "then": {"flag_plan": True},
        },
    ],
}


def _program(data: dict[str, Any] | None = None, **changes: Any) -> Program:
    d = copy.deepcopy(data or RICH)
    d.update(changes)
    return Program.model_validate(d)


def _real_program_files() -> list[Path]:
    return sorted(PROGRAM_DIR.glob("*.yaml"))


def _action(pd: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(a for a in pd["action"] if a.get("id") == action_id)


def _ext(element: dict[str, Any], url: str) -> dict[str, Any]:
    return next(e for e in element.get("extension", []) if e["url"] == url)


def _nl(element: dict[str, Any], name: str) -> str:
    tr = _ext(element[f"_{name}"], EXT_TRANSLATION)
    parts = {p["url"]: p for p in tr["extension"]}
    assert parts["lang"]["valueCode"] == "nl"
    return parts["content"]["valueString"]


# ---------------------------------------------------------------- lossless round trips


def test_rich_programme_covers_the_model() -> None:
    p = _program()
    kinds = {t.kind for g in p.goals for t in g.targets}
    assert kinds == {"below", "at_most", "above", "at_least", "between", "stable_within", "ratio"}
    assert {t.when.kind for t in p.triggers} == {"overdue", "completed", "rejected", "observation"}
    steps = {k for t in p.triggers for k in ("escalate_to", "priority", "start", "reassign_to", "create_task", "flag_plan") if getattr(t.then, k)}
    assert steps == {"escalate_to", "priority", "start", "reassign_to", "create_task", "flag_plan"}


def test_rich_programme_round_trips_through_the_bundle() -> None:
    p = _program()
    assert from_bundle(to_bundle(p)) == p


def test_round_trip_survives_json_serialisation() -> None:
    p = _program()
    wire = json.loads(json.dumps(to_bundle(p)))
    assert from_bundle(wire) == p


def test_round_trip_from_plan_definition_and_activity_definitions() -> None:
    p = _program()
    assert from_plan_definition(to_plan_definition(p), to_activity_definitions(p)) == p


@pytest.mark.parametrize("path", _real_program_files(), ids=lambda p: p.stem)
def test_real_programmes_round_trip(path: Path) -> None:
    p = load_program(path)
    bundle = to_bundle(p)
    assert from_bundle(json.loads(json.dumps(bundle))) == p
    for entry in bundle["entry"]:
        assert r4_errors(entry["resource"]) == []
    Bundle.model_validate(bundle)


def test_the_three_programmes_are_there() -> None:
    names = {p.stem for p in _real_program_files()}
    assert {"copd", "heart-failure", "diabetes-type-2"} <= names


def test_minimal_programme_round_trips_with_defaults() -> None:
    minimal = {
        "id": "m",
        "version": "1.0.0",
        "url": "http://x.org/PlanDefinition/m",
        "status": "active",
        "title": _t("M", "M"),
        "eligibility": {"conditions": [{"system": "icpc-2", "code": "R95"}]},
        "roles": {"gp": {"title": _t("GP", "HA"), "codes": [{"system": "snomed", "code": "62247001"}]}},
        "activities": [
            {"id": "a", "title": _t("A", "A"), "description": _t("A", "A"), "role": "gp", "code": {"system": "careflow", "code": "a"}}
        ],
    }
    p = Program.model_validate(minimal)
    pd = to_plan_definition(p)
    assert "goal" not in pd and "description" not in pd
    assert [a["id"] for a in pd["action"]] == ["a"]
    assert from_bundle(to_bundle(p)) == p


@pytest.mark.parametrize(
    "change",
    [
        {"eligibility": {"conditions": [{"system": "icpc-2", "code": "T90"}], "age": {}, "groups": []}},
        {"eligibility": {"conditions": [{"system": "icpc-2", "code": "T90"}], "age": {"max": 60}}},
        {"activities": [{**RICH["activities"][0], "only_if": {}}]},
        {"activities": [{**RICH["activities"][0], "only_if": {"groups": []}}]},
        {"activities": [{**RICH["activities"][0], "timing": {"start": "P1Y0M", "due_within": "P0M"}}]},
        {"activities": [{**RICH["activities"][0], "role": "not-declared"}], "triggers": []},
        {"plan_period": "P0D"},
    ],
    ids=["age-without-bounds-no-groups", "max-age-only", "empty-only-if", "no-groups", "zero-and-mixed-durations", "undeclared-role", "zero-period"],
)
def test_edge_cases_round_trip(change: dict[str, Any]) -> None:
    p = _program(**change)
    assert from_bundle(json.loads(json.dumps(to_bundle(p)))) == p


_ISO = st.builds(
    lambda y, m, w, d: "P" + "".join(f"{n}{u}" for n, u in ((y, "Y"), (m, "M"), (w, "W"), (d, "D")) if n is not None) or "P0D",
    *(st.none() | st.integers(0, 40) for _ in range(4)),
).map(lambda s: "P0D" if s == "P" else s)


@given(_ISO)
def test_every_iso_duration_survives_duration_and_period(text: str) -> None:
    assert read_duration(Node(json.loads(json.dumps(duration(text))), "d")) == text
    assert read_period(Node(json.loads(json.dumps(period_fields(text))), "r")) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=_ISO,
    every=st.none() | _ISO,
    times=st.none() | st.integers(1, 12),
    due=_ISO,
    after=st.lists(st.sampled_from(["intake", "review"]), max_size=2),
    only=st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "new_diagnosis": st.booleans(),
            "groups": st.lists(st.sampled_from("ABCD"), max_size=4),
            "min_age": st.integers(0, 120),
        },
    ),
    priority=st.sampled_from(["routine", "urgent", "asap", "stat"]),
)
def test_any_activity_timing_and_restriction_round_trips(
    start: str, every: str | None, times: int | None, due: str, after: list[str], only: dict | None, priority: str
) -> None:
    if times is not None and times > 1 and every is None:
        every = "P1M"
    timing: dict[str, Any] = {"start": start, "due_within": due, "every": every, "times": times}
    activity = {**RICH["activities"][1], "timing": timing, "after": after, "only_if": only, "priority": priority}
    p = _program(activities=[*RICH["activities"], {**activity, "id": "generated"}])
    assert from_bundle(to_bundle(p)) == p


# ---------------------------------------------------------------- valid FHIR


def test_everything_emitted_is_valid_r4b_and_r4() -> None:
    p = _program()
    pd = to_plan_definition(p)
    PlanDefinition.model_validate(pd)
    assert r4_errors(pd) == []
    for ad in to_activity_definitions(p):
        ActivityDefinition.model_validate(ad)
        assert r4_errors(ad) == []
    bundle = to_bundle(p)
    Bundle.model_validate(bundle)
    assert r4_errors(bundle) == []


def test_r4_check_would_notice_an_r5_only_element() -> None:
    """Guards the test above: the schema check does reject what R4 lacks."""
    pd = to_plan_definition(_program())
    pd["action"][0]["linkId"] = "x"  # R5
    assert r4_errors(pd)


# ---------------------------------------------------------------- what FHIR readers see


def test_plan_definition_header() -> None:
    p = _program()
    pd = to_plan_definition(p)
    assert pd["id"] == "rich-care" and pd["name"] == "RichCare"
    assert (pd["url"], pd["version"], pd["status"]) == (p.url, "2.1.0-rc.1", "draft")
    assert pd["title"] == "Rich care" and _nl(pd, "title") == "Rijke zorg"
    assert pd["description"] == "Every feature once." and _nl(pd, "description") == "Elke mogelijkheid één keer."
    assert pd["type"]["coding"][0]["code"] == "clinical-protocol"
    assert pd["subjectCodeableConcept"]["coding"][0]["code"] == "Patient"
    focus = [c["valueCodeableConcept"]["coding"][0] for c in pd["useContext"] if c["code"]["code"] == "focus"]
    assert [(c["system"], c["code"]) for c in focus] == [
        ("http://hl7.org/fhir/sid/icpc-2", "T90"),
        ("http://snomed.info/sct", "44054006"),
        ("http://hl7.org/fhir/sid/icd-10", "E11"),
    ]
    age = next(c["valueRange"] for c in pd["useContext"] if c["code"]["code"] == "age")
    assert (age["low"]["value"], age["high"]["value"], age["low"]["code"]) == (18, 95, "a")


def test_goals_use_comparators_ranges_and_due_durations() -> None:
    pd = to_plan_definition(_program())
    goals = {g["id"]: g for g in pd["goal"]}
    glyc = goals["glycaemia"]
    assert glyc["description"]["text"] == "HbA1c under control"
    assert glyc["category"]["coding"][0]["code"] == "physiologic"
    below, between = glyc["target"]
    assert below["detailQuantity"] == {"value": 53, "comparator": "<", "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}
    assert below["due"]["value"] == 6 and below["due"]["code"] == "mo" and between["due"] == below["due"]
    assert between["detailRange"]["low"]["value"] == 1.4 and between["detailRange"]["high"]["value"] == 2.6
    comparators = [t["detailQuantity"]["comparator"] for t in goals["blood-pressure"]["target"]]
    assert comparators == ["<=", ">=", ">"]
    assert goals["blood-pressure"]["category"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/goal-category", "code": "behavioral"}
    stable = goals["weight"]["target"][0]
    assert _ext(stable, EXT_TARGET_STABLE_WITHIN)["valueQuantity"]["value"] == 2
    assert "baseline" in stable["detailCodeableConcept"]["text"] and "detailQuantity" not in stable
    # P1Y6M has no exact single-unit Duration: 18 months plus the exact text
    assert stable["due"]["value"] == 18 and _ext(stable["due"], EXT_ISO_DURATION)["valueString"] == "P1Y6M"
    assert goals["no-falls"]["target"] == [{"due": duration("P3M")}]
    assert "target" not in goals["self-care"]


def test_one_action_per_activity_then_one_per_trigger() -> None:
    p = _program()
    pd = to_plan_definition(p)
    ids = [a["id"] for a in pd["action"]]
    assert ids == [a.id for a in p.activities] + [f"trigger-{t.id}" for t in p.triggers]


def test_activity_action_elements() -> None:
    p = _program()
    pd = to_plan_definition(p)
    intake = _action(pd, "intake")
    assert intake["title"] == "Intake" and intake["description"] == "Draw up the care plan"
    assert intake["code"][0]["coding"][0] == {"system": "https://careflow.dev/fhir/CodeSystem/activity", "code": "care-plan-start"}
    assert intake["timingDuration"]["value"] == 0 and intake["priority"] == "routine"
    assert intake["definitionCanonical"] == "https://example.org/fhir/ActivityDefinition/rich-care-intake|2.1.0-rc.1"
    assert _ext(intake, EXT_DUE_WITHIN)["valueDuration"]["value"] == 14
    role = intake["participant"][0]
    assert role["type"] == "practitioner"
    assert [c["code"] for c in role["role"]["coding"]] == ["62247001", "persgeneralphysician"]
    assert role["role"]["text"] == "General practitioner"

    check = _action(pd, "hba1c-check")
    repeat = check["timingTiming"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 3, "mo")
    assert repeat["boundsDuration"]["value"] == 18  # until the plan ends

    education = _action(pd, "education")
    assert education["timingTiming"]["repeat"]["count"] == 3
    assert education["relatedAction"] == [
        {"actionId": "intake", "relationship": "after-end", "offsetDuration": duration("P2W")}
    ]
    assert education["priority"] == "urgent"
    condition = education["condition"][0]
    assert condition["kind"] == "applicability"
    assert condition["expression"]["language"] == "text/fhirpath"
    assert condition["expression"]["expression"] == (
        "%newDiagnosis and %populationGroup in ('B' | 'C') and %subject.birthDate <= today() - 40 years"
    )
    assert [r["actionId"] for r in _action(pd, "diet")["relatedAction"]] == ["intake", "education"]
    assert "offsetDuration" not in _action(pd, "diet")["relatedAction"][0]
    review = _action(pd, "review")["timingTiming"]["repeat"]
    assert review["period"] == 18 and review["periodUnit"] == "mo"


def test_activity_definitions() -> None:
    p = _program()
    ads = to_activity_definitions(p)
    assert [ad["id"] for ad in ads] == [f"rich-care-{a.id}" for a in p.activities]
    intake = ads[0]
    assert intake["url"] == activity_definition_url(p.url, p.id, "intake")
    assert (intake["version"], intake["status"], intake["kind"], intake["name"]) == ("2.1.0-rc.1", "draft", "Task", "RichCareIntake")
    assert intake["title"] == "Intake" and _nl(intake, "description") == "Zorgplan opstellen"
    instruction = {e["url"]: e["valueString"] for e in _ext(intake, EXT_PATIENT_INSTRUCTION)["extension"]}
    assert instruction == {"en": "Bring your medication", "nl": "Breng uw medicatie mee"}
    assert intake["participant"][0]["role"]["coding"][0]["code"] == "62247001"
    assert ads[1]["timingTiming"]["repeat"]["period"] == 3 and "extension" not in ads[1]


def test_bundle_is_a_collection_with_stable_ids() -> None:
    p = _program()
    bundle = to_bundle(p)
    assert bundle["type"] == "collection"
    resources = [e["resource"] for e in bundle["entry"]]
    assert [(r["resourceType"], r["id"]) for r in resources][:2] == [("PlanDefinition", "rich-care"), ("ActivityDefinition", "rich-care-intake")]
    assert bundle["entry"][0]["fullUrl"] == p.url
    assert to_bundle(p) == bundle  # deterministic


def test_triggers_are_standard_trigger_definitions() -> None:
    pd = to_plan_definition(_program())
    overdue = _action(pd, "trigger-hba1c-overdue")
    assert overdue["title"] == "HbA1c check late" and overdue["priority"] == "urgent"
    td = overdue["trigger"][0]
    assert td["type"] == "periodic" and td["name"] == "task-overdue" and "timingTiming" in td
    assert _action(pd, "trigger-intake-done")["trigger"][0] | {"extension": None} == {
        "extension": None,
        "type": "named-event",
        "name": "task-completed",
    }
    assert _action(pd, "trigger-any-rejected")["trigger"][0]["name"] == "task-rejected"
    high = _action(pd, "trigger-hba1c-high")["trigger"][0]
    assert high["type"] == "data-changed"
    assert high["data"] == [{"type": "Observation", "codeFilter": [{"path": "code", "code": [{"system": "http://loinc.org", "code": "4548-4", "display": HBA1C["display"]}]}]}]
    assert high["condition"]["expression"] == "value.ofType(Quantity) > 64 'mmol/mol'"
    gain = _action(pd, "trigger-weight-gain")["trigger"][0]
    rule = {e["url"]: e for e in _ext(gain, EXT_OBSERVATION_RULE)["extension"]}
    assert rule["rises-by"]["valueQuantity"]["value"] == 2 and rule["within"]["valueDuration"]["value"] == 3
    assert "condition" not in gain
    exacerbation = _action(pd, "trigger-exacerbation")["trigger"][0]["condition"]["expression"]
    assert "code = 'it\\'s'" in exacerbation


def test_then_steps_are_typed_nested_actions() -> None:
    p = _program()
    pd = to_plan_definition(p)
    steps = _action(pd, "trigger-weight-gain")["action"]
    kinds = [_ext(s, EXT_THEN_STEP)["valueCode"] for s in steps]
    assert kinds == ["escalate", "create-task", "start", "reassign", "flag-plan"]
    types = [s["type"]["coding"][0]["code"] for s in steps]
    assert types == ["create", "create", "create", "update", "update"]
    assert steps[0]["participant"][0]["role"]["text"] == "General practitioner"
    assert steps[1]["title"] == "Check fluid balance" and steps[1]["priority"] == "urgent"
    assert steps[2]["definitionCanonical"] == f"{activity_definition_url(p.url, p.id, 'diet')}|{p.version}"
    assert steps[4]["code"][0]["coding"][0]["code"] == "attention"


# ---------------------------------------------------------------- errors


def _read_error(pd: dict[str, Any], ads: list[dict[str, Any]] | None = None) -> PlanDefinitionError:
    p = _program()
    with pytest.raises(PlanDefinitionError) as info:
        from_plan_definition(pd, to_activity_definitions(p) if ads is None else ads)
    assert isinstance(info.value, CareflowError)
    return info.value


def test_missing_dutch_translation_names_the_element() -> None:
    pd = to_plan_definition(_program())
    del pd["action"][2]["_title"]
    err = _read_error(pd)
    assert err.path == "PlanDefinition.action[2]._title" and "Dutch" in str(err)


def test_missing_activity_definition_is_reported() -> None:
    p = _program()
    err = _read_error(to_plan_definition(p), to_activity_definitions(p)[1:])
    assert err.path == "PlanDefinition.action[0].definitionCanonical"
    assert "rich-care-intake|2.1.0-rc.1" in str(err)


def test_unreadable_condition_expression() -> None:
    pd = to_plan_definition(_program())
    pd["action"][2]["condition"][0]["expression"]["expression"] = "%subject.gender = 'female'"
    err = _read_error(pd)
    assert err.path == "PlanDefinition.action[2].condition[0].expression.expression" and "gender" in str(err)


def test_unknown_then_step() -> None:
    pd = to_plan_definition(_program())
    action = _action(pd, "trigger-weight-gain")
    action["action"][0]["extension"][0]["valueCode"] = "dance"
    err = _read_error(pd)
    assert err.path.endswith(".action[0].extension") and "escalate" in str(err)


def test_unknown_duration_unit() -> None:
    pd = to_plan_definition(_program())
    pd["action"][0]["timingDuration"]["code"] = "h"
    err = _read_error(pd)
    assert err.path == "PlanDefinition.action[0].timingDuration.code" and "days" in str(err)


def test_goal_due_must_agree_across_targets() -> None:
    pd = to_plan_definition(_program())
    pd["goal"][0]["target"][1]["due"] = duration("P9M")
    err = _read_error(pd)
    assert err.path == "PlanDefinition.goal[0].target[1].due"


def test_target_without_comparator() -> None:
    pd = to_plan_definition(_program())
    del pd["goal"][0]["target"][0]["detailQuantity"]["comparator"]
    assert _read_error(pd).path == "PlanDefinition.goal[0].target[0].detailQuantity.comparator"


def test_not_a_plan_definition() -> None:
    err = _read_error({"resourceType": "Patient"})
    assert err.path == "PlanDefinition.resourceType"
    with pytest.raises(PlanDefinitionError, match="must be a JSON object"):
        from_plan_definition("nope", [])  # type: ignore[arg-type]


def test_model_rules_are_reported_not_raised_raw() -> None:
    pd = to_plan_definition(_program())
    _action(pd, "trigger-bp-low")["trigger"][0]["extension"][0]["extension"] = [
        {"url": "within", "valueDuration": duration("P1D")}
    ]
    err = _read_error(pd)
    assert err.path == "PlanDefinition" and "observation rule" in str(err)


def test_bundle_needs_exactly_one_plan_definition() -> None:
    p = _program()
    bundle = to_bundle(p)
    bundle["entry"].append(copy.deepcopy(bundle["entry"][0]))
    with pytest.raises(PlanDefinitionError, match="exactly one PlanDefinition") as info:
        from_bundle(bundle)
    assert info.value.path == "Bundle.entry"
    bundle["entry"] = bundle["entry"][:-1]
    bundle["entry"][0]["resource"]["status"] = 7
    with pytest.raises(PlanDefinitionError) as info:
        from_bundle(bundle)
    assert info.value.path == "Bundle.entry[0].resource.status"


def test_clashing_element_ids_are_refused_on_export() -> None:
    goals = [*RICH["goals"], {"id": "intake", "title": _t("X", "X")}]
    with pytest.raises(ProgramNotExportable, match="'intake'"):
        to_bundle(_program(goals=goals))


def test_quantities_keep_the_authors_precision() -> None:
    pd = to_plan_definition(_program())
    below = pd["goal"][0]["target"][0]["detailQuantity"]["value"]
    at_least = pd["goal"][1]["target"][1]["detailQuantity"]["value"]
    assert (json.dumps(below), json.dumps(at_least)) == ("53", "60.5")


def test_participant_without_role_ref_is_matched_by_its_codes() -> None:
    p = _program()
    pd = to_plan_definition(p)
    del _action(pd, "hba1c-check")["participant"][0]["extension"]
    assert from_plan_definition(pd, to_activity_definitions(p)) == p
    # two roles with the same codes: the reader cannot tell them apart and says so
    roles = copy.deepcopy(RICH["roles"])
    roles["nurse-2"] = roles["nurse"]
    p2 = _program(roles=roles)
    pd2 = to_plan_definition(p2)
    del _action(pd2, "hba1c-check")["participant"][0]["extension"]
    with pytest.raises(PlanDefinitionError) as info:
        from_plan_definition(pd2, to_activity_definitions(p2))
    assert info.value.path == "PlanDefinition.action[1].participant[0].role"


def test_plan_definition_without_role_registry_is_refused() -> None:
    pd = to_plan_definition(_program())
    pd["extension"] = [e for e in pd["extension"] if not e["url"].endswith("/care-role")]
    err = _read_error(pd)
    assert err.path == "PlanDefinition.extension" and "roles" in str(err)


def test_defaults_apply_when_careflow_extensions_are_absent() -> None:
    p = _program()
    pd = to_plan_definition(p)
    pd["extension"] = [e for e in pd["extension"] if e["url"].endswith("/care-role")]
    for action in pd["action"]:
        if "trigger" not in action:
            del action["extension"]
    back = from_plan_definition(pd, to_activity_definitions(p))
    assert back.plan_period == "P1Y" and back.eligibility.groups == ["A", "B", "C"]
    assert back.eligibility.new_diagnosis_within == "P6M"
    assert all(a.timing.due_within == "P14D" for a in back.activities)


def test_bundle_reader_ignores_other_resources() -> None:
    p = _program()
    bundle = to_bundle(p)
    bundle["entry"].insert(0, {"resource": {"resourceType": "Library", "id": "x", "status": "active", "type": {}}})
    assert from_bundle(bundle) == p


def test_compiler_knows_every_field_of_the_model() -> None:
    """A field added to the model must be taught to the compiler, or the round trip silently drops it."""
    from careflow.programs import model

    known = {
        model.Program: {"id", "version", "url", "status", "title", "description", "plan_period", "eligibility", "roles", "goals", "activities", "triggers"},
        model.Eligibility: {"conditions", "age", "groups", "new_diagnosis_within"},
        model.AgeBounds: {"min", "max"},
        model.Role: {"title", "codes"},
        model.Goal: {"id", "title", "category", "targets", "due"},
        model.Target: {"measure", "below", "at_most", "above", "at_least", "between", "stable_within", "ratio"},
        model.Ratio: {"numerator", "denominator"},
        model.Activity: {"id", "title", "description", "role", "code", "timing", "after", "only_if", "priority", "instructions", "shared"},
        model.Timing: {"start", "every", "season", "times", "due_within"},
        model.Season: {"opens", "closes"},
        model.Only: {"new_diagnosis", "groups", "min_age", "observation", "medication", "condition", "any_of"},
        model.LatestObservation: {"code", "above", "below", "at_least", "at_most", "value_in", "within", "if_unknown"},
        model.MedicationClass: {"codes", "taking"},
        model.ConditionPresent: {"codes", "present"},
        model.Fact: {"observation", "medication", "condition"},
        model.Trigger: {"id", "title", "when", "only_if", "then"},
        model.When: {"overdue", "completed", "rejected", "observation", "discharged"},
        model.Overdue: {"activity", "by"},
        model.ObservationRule: {"code", "above", "below", "at_least", "at_most", "rises_by", "falls_by", "below_baseline",
                                "above_baseline", "within", "value_in", "persists"},
        model.Persists: {"times", "within", "lasting"},
        model.Then: {"escalate_to", "priority", "start", "reassign_to", "create_task", "flag_plan"},
        model.NewTask: {"role", "title", "description", "code", "priority", "due_within"},
        model.Coding: {"system", "code", "display"},
        model.Quantity: {"value", "unit"},
        model.Text: {"nl", "en", "fr"},
    }
    for cls, fields in known.items():
        assert set(cls.model_fields) == fields, cls.__name__
