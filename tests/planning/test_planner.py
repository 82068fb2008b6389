"""The planner: eligibility, deterministic ids, FHIR Workflow shape, and valid R4 output."""

from __future__ import annotations

from datetime import date

import pytest

from careflow.errors import NotEligible, PatientDataError
from careflow.fhir.r4_schema import r4_errors
from careflow.fhir.validation import validate_resource
from careflow.naming import TASK_IDENTIFIER
from careflow.planning.eligibility import eligible_programs, ineligibility
from careflow.planning.patient import context_from_bundle, context_from_resources
from careflow.planning.planner import plan, plan_all

ICPC = "http://hl7.org/fhir/sid/icpc-2"
START = date(2026, 1, 5)


def patient(pid="p1", birth="1950-02-03", **extra):
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, **extra}


def condition(code, system=ICPC, onset="2020-03-01", cid="c1", status="active"):
    return {
        "resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
        "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": onset,
    }


def weight(value, when="2025-12-20T09:00:00Z", oid="o1"):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "effectiveDateTime": when, "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}


@pytest.fixture
def hf_ctx():
    return context_from_resources(patient(), [condition("K77")], [weight(81.5)])


def by_type(result, rtype):
    return [r for r in result.resources if r["resourceType"] == rtype]


class TestEligibility:
    def test_icpc_code_qualifies(self, mini_hf, hf_ctx):
        assert ineligibility(mini_hf, hf_ctx, START) is None

    def test_icd10_prefix_covers_subcodes(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("I50.9", "http://hl7.org/fhir/sid/icd-10")])
        assert ineligibility(mini_hf, ctx, START) is None

    def test_resolved_condition_does_not_qualify(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("K77", status="resolved")])
        assert "no active condition" in ineligibility(mini_hf, ctx, START)

    def test_age_bound(self, mini_hf):
        ctx = context_from_resources(patient(birth="2015-01-01"), [condition("K77")])
        assert "younger than" in ineligibility(mini_hf, ctx, START)

    def test_unknown_birth_date_with_age_bounds_is_refused(self, mini_hf):
        ctx = context_from_resources({"resourceType": "Patient", "id": "p1"}, [condition("K77")])
        assert "birth date is unknown" in ineligibility(mini_hf, ctx, START)

    def test_ineligible_patient_is_an_error_not_an_empty_plan(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("T90")])
        with pytest.raises(NotEligible, match="not eligible for mini-hf"):
            plan(mini_hf, ctx, START)

    def test_eligible_programs_filters(self, mini_hf, hf_ctx):
        assert eligible_programs([mini_hf], hf_ctx, START) == [mini_hf]


class TestPlanShape:
    def test_careplan_workflow_shape(self, mini_hf, hf_ctx):
        result = plan(mini_hf, hf_ctx, START)
        cp = result.careplan
        assert cp["status"] == "active" and cp["intent"] == "plan"
        assert cp["instantiatesCanonical"] == ["https://careflow.dev/fhir/PlanDefinition/mini-hf|0.1.0"]
        assert cp["subject"] == {"reference": "Patient/p1"}
        assert cp["addresses"] == [{"reference": "Condition/c1"}]
        assert cp["period"] == {"start": "2026-01-05", "end": "2027-01-05"}
        task_refs = {f"Task/{t['id']}" for t in result.tasks}
        assert {a["reference"]["reference"] for a in cp["activity"]} == task_refs
        assert all(set(a) == {"reference"} for a in cp["activity"]), "one activity per Task, no detail"
        assert {g["reference"] for g in cp["goal"]} == {f"Goal/{g['id']}" for g in result.goals}
        assert cp["careTeam"] == [{"reference": f"CareTeam/{result.careteam['id']}"}]

    def test_only_open_windows_become_tasks(self, mini_hf, hf_ctx):
        result = plan(mini_hf, hf_ctx, START)
        codes = sorted(t["code"]["coding"][0]["code"] for t in result.tasks)
        # review waits for start-plan; education only at a new diagnosis (onset 2020 is established)
        assert codes == ["care-plan-start", "weight-check"]

    def test_new_diagnosis_adds_education(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("K77", onset="2025-11-20")])
        codes = {t["code"]["coding"][0]["code"] for t in plan(mini_hf, ctx, START).tasks}
        assert "education" in codes

    def test_task_fields(self, mini_hf, hf_ctx):
        result = plan(mini_hf, hf_ctx, START)
        task = next(t for t in result.tasks if t["code"]["coding"][0]["code"] == "weight-check")
        assert task["status"] == "requested" and task["intent"] == "order"
        assert task["basedOn"] == [{"reference": f"CarePlan/{result.careplan['id']}"}]
        assert task["for"] == {"reference": "Patient/p1"}
        assert task["identifier"] == [{"system": TASK_IDENTIFIER, "value": f"{result.careplan['id']}/weight-check/1"}]
        assert task["restriction"]["period"] == {"start": "2026-01-05", "end": "2026-01-12"}
        assert task["performerType"][0]["coding"][0]["code"] == "224535009"
        assert task["instantiatesCanonical"] == "https://careflow.dev/fhir/ActivityDefinition/mini-hf-weight-check|0.1.0"
        assert task["owner"]["reference"] == f"CareTeam/{result.careteam['id']}"
        assert "businessStatus" not in task

    def test_known_team_member_owns_the_task(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("K77")], team={"home-nurse": "PractitionerRole/n1"})
        result = plan(mini_hf, ctx, START)
        task = next(t for t in result.tasks if t["code"]["coding"][0]["code"] == "weight-check")
        assert task["owner"]["reference"] == "PractitionerRole/n1"
        members = [p.get("member", {}).get("reference") for p in result.careteam["participant"]]
        assert "PractitionerRole/n1" in members
        roles = [p["role"][0]["text"] for p in result.careteam["participant"]]
        assert roles == ["General practitioner", "Home nurse", "Care coach"]

    def test_goal_targets(self, mini_hf, hf_ctx):
        goals = {g["description"]["text"]: g for g in plan(mini_hf, hf_ctx, START).goals}
        weight_target = goals["Weight stable"]["target"][0]
        assert weight_target["detailRange"]["low"]["value"] == 79.5 and weight_target["detailRange"]["high"]["value"] == 83.5
        assert weight_target["dueDate"] == "2026-04-05"
        bp = goals["Blood pressure below 140/90"]["target"]
        assert [t["detailQuantity"]["comparator"] for t in bp] == ["<", "<"]
        assert [t["detailQuantity"]["value"] for t in bp] == [140, 90]

    def test_stable_within_without_baseline_is_said_in_words(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("K77")])
        goal = next(g for g in plan(mini_hf, ctx, START).goals if g["description"]["text"] == "Weight stable")
        assert goal["target"][0]["detailString"] == "within 2 kg of the baseline"


class TestDeterminism:
    def test_same_input_same_resources(self, mini_hf, hf_ctx):
        assert plan(mini_hf, hf_ctx, START).bundle() == plan(mini_hf, hf_ctx, START).bundle()

    def test_ids_differ_per_patient(self, mini_hf, hf_ctx):
        other = context_from_resources(patient("p2"), [condition("K77")])
        a, b = plan(mini_hf, hf_ctx, START), plan(mini_hf, other, START)
        assert not {r["id"] for r in a.resources} & {r["id"] for r in b.resources}

    def test_bundle_is_idempotent_puts(self, mini_hf, hf_ctx):
        bundle = plan(mini_hf, hf_ctx, START).bundle()
        assert bundle["type"] == "transaction"
        for e in bundle["entry"]:
            assert e["request"] == {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}", "ifNoneMatch": "*"}
            assert e["fullUrl"] == f"urn:uuid:{e['resource']['id']}"


class TestSharedCareTeam:
    def test_two_programmes_share_one_careteam(self, mini_hf, programs):
        others = [p for p in programs.values() if p.id != "mini-hf"]
        if not others:
            pytest.skip("care_programs/ holds no programme yet")
        other = others[0]
        cond2 = {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": other.eligibility.conditions[0].system, "code": other.eligibility.conditions[0].code}]}}
        ctx = context_from_resources(patient(), [condition("K77"), cond2])
        result = plan_all([mini_hf, other], ctx, START)
        assert len(result.careplans) == 2
        team = f"CareTeam/{result.careteam['id']}"
        assert all(cp["careTeam"] == [{"reference": team}] for cp in result.careplans)
        assert len({r["id"] for r in result.resources}) == len(result.resources)


class TestValidOutput:
    def test_every_resource_validates_as_r4b_and_r4(self, mini_hf):
        ctx = context_from_resources(patient(), [condition("K77", onset="2025-12-01")], [weight(90)], team={"gp": "PractitionerRole/g1"})
        for resource in plan(mini_hf, ctx, START).resources:
            validate_resource(resource)
            assert r4_errors(resource) == [], resource["resourceType"]

    def test_real_programmes_emit_valid_r4(self, programs):
        if not programs:
            pytest.skip("care_programs/ holds no programme yet")
        for program in programs.values():
            first = program.eligibility.conditions[0]
            cond = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                    "code": {"coding": [{"system": first.system, "code": first.code}]}, "onsetDateTime": "2025-12-01"}
            result = plan(program, context_from_resources(patient(), [cond]), START)
            assert len(result.tasks) >= 1
            for resource in result.resources:
                validate_resource(resource)
                assert r4_errors(resource) == [], (program.id, resource["resourceType"])


class TestPatientInput:
    def test_bundle_with_patient_conditions_observations(self, mini_hf):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:x", "resource": patient()}, {"resource": condition("K77")}, {"resource": weight(80)}]}
        ctx = context_from_bundle(bundle)
        assert ctx.id == "p1" and len(ctx.conditions) == 1 and ctx.observations[0].value == 80

    @pytest.mark.parametrize("data, message", [
        ({"resourceType": "Observation"}, "expected a Patient or a Bundle"),
        ({"resourceType": "Bundle", "entry": []}, "exactly one Patient"),
        ({"resourceType": "Patient"}, "has no id"),
        ([], "expected a JSON object"),
    ])
    def test_bad_patient_input(self, data, message):
        with pytest.raises(PatientDataError, match=message):
            context_from_bundle(data)


def test_goal_category_uses_a_code_system_that_has_the_code(mini_hf, hf_ctx):
    for goal in plan(mini_hf, hf_ctx, START).goals:
        coding = goal["category"][0]["coding"][0]
        assert coding == {"system": "https://careflow.dev/fhir/CodeSystem/goal-category", "code": "physiologic"}


def test_ratio_target_becomes_detail_ratio(hf_ctx):
    from pathlib import Path

    from careflow.programs.loader import parse_program

    text = (Path(__file__).resolve().parents[1] / "programs/fixtures/mini-hf.yaml").read_text()
    text = text.replace("        stable_within: {value: 2, unit: kg}",
                        "        ratio: {numerator: {value: 70, unit: '%'}, denominator: {value: 100, unit: '%'}}")
    goal = next(g for g in plan(parse_program(text), hf_ctx, START).goals if g["description"]["text"] == "Weight stable")
    ratio = goal["target"][0]["detailRatio"]
    assert ratio["numerator"]["value"] == 70 and ratio["denominator"]["unit"] == "%"
    validate_resource(goal)
    assert r4_errors(goal) == []


def test_blood_pressure_panel_components_are_facts_of_their_own():
    panel = {"resourceType": "Observation", "id": "bp", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
             "effectiveDateTime": "2025-12-01T09:00:00Z",
             "component": [
                 {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 150, "unit": "mm[Hg]"}},
                 {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 95, "unit": "mm[Hg]"}}]}
    ctx = context_from_resources(patient(), [condition("K77")], [panel])
    values = {f.codes[0][1]: f.value for f in ctx.observations}
    assert values == {"85354-9": None, "8480-6": 150.0, "8462-4": 95.0}
    assert all(f.id == "Observation/bp" for f in ctx.observations)


def test_tasks_carry_the_programmes_dutch_and_french_as_hl7_translations(hf_ctx):
    """The planner writes English in the element and every translation the programme has beside it,
    so a reader shows a Task in its own language; the escalation of an overdue Task is said in the
    overdue Task's own words in each language."""
    from careflow.programs.loader import load_directory
    from careflow.web.i18n import localised

    program = load_directory(None)["heart-failure"]
    tasks = by_type(plan(program, hf_ctx, START), "Task")
    assert tasks
    by_activity = {a.title.en: a for a in program.activities}
    for task in tasks:
        code = task["code"]
        activity = by_activity[code["text"]]
        assert localised(code["text"], code.get("_text"), "fr") == activity.title.fr
        assert localised(code["text"], code.get("_text"), "nl") == activity.title.nl
        assert localised(task["description"], task.get("_description"), "nl") == activity.description.nl
        assert r4_errors(task) == []
