"""The case-finding rules as shipped (2026.1), pure: each rule's edges counted by hand (exactly 40,
exactly three months apart, two months apart, a CKD diagnosis, more than two insulin injections a
day), the new criteria of the shared language (not, coded results, repeated results, doses a day),
the proposal rules (open, rejected for the same evidence, new evidence), the published schema and
file:line errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from careflow.errors import RuleSetError
from careflow.fhir.r4_schema import r4_errors
from careflow.population.case_finding import find, proposal, rule_of, should_propose
from careflow.population.facts import inhabitant, per_day
from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, parse_case_rules, rules_in_force
from careflow.population.schema import render_case
from careflow.programs.codes import LOINC, SNOMED
from population.people import condition, egfr, medicine, patient

DAY = date(2026, 11, 1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rules():
    return rules_in_force(load_case_rule_sets([default_case_rules_dir()]), DAY)


def matched(rules, birth, *resources, day=DAY) -> dict[str, tuple[str, ...]]:
    """rule id -> the evidence, for every rule the inhabitant matches."""
    who = inhabitant(patient("p", birth), list(resources))
    return {m.rule.id: m.evidence for m in find(who, rules, day)}


def status(code: str, day: str = "2026-06-01", n: int = 0) -> dict:
    return {"resourceType": "Observation", "id": f"smoking{n}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "72166-2"}]}, "subject": {"reference": "Patient/p"},
            "effectiveDateTime": day, "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code}]}}


def spirometry(day: str) -> dict:
    return {"resourceType": "Observation", "id": "fev1", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "19926-5"}]}, "subject": {"reference": "Patient/p"},
            "effectiveDateTime": day, "valueQuantity": {"value": 0.62, "unit": "1", "system": "http://unitsofmeasure.org",
                                                        "code": "1"}}


def dosed(atc: str, timing: dict, n: int = 0) -> dict:
    return {**medicine("p", atc, n=n), "dosage": [{"timing": timing}]}


def test_smoker_over_40_without_spirometry(rules):
    smoker = status("77176002")
    assert matched(rules, "1986-11-01", smoker) == {"smoker-without-spirometry": ("Observation/smoking0",)}  # exactly 40
    assert matched(rules, "1986-11-02", smoker) == {}  # 40 tomorrow
    assert matched(rules, "1950-01-01", smoker, spirometry("2021-11-01")) == {}  # five years ago to the day: done
    assert "smoker-without-spirometry" in matched(rules, "1950-01-01", smoker, spirometry("2021-10-31"))
    assert matched(rules, "1950-01-01", status("8517006")) == {}  # ex-smoker
    assert matched(rules, "1950-01-01", status("77176002", "2024-10-31")) == {}  # status older than 24 months
    assert matched(rules, "1950-01-01", smoker, condition("p", "copd")) == {}
    # the latest status decides: a smoker who stopped is not proposed, one who started again is
    assert matched(rules, "1950-01-01", status("77176002", "2025-01-01"), status("8517006", n=1)) == {}
    assert "smoker-without-spirometry" in matched(rules, "1950-01-01", status("8517006", "2025-01-01"), status("65568007", n=1))


def test_suspected_heart_failure(rules):
    def ntprobnp(value: float, day: str = "2026-09-01") -> dict:
        return {"resourceType": "Observation", "id": "bnp", "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "33762-6"}]}, "subject": {"reference": "Patient/p"},
                "effectiveDateTime": day, "valueQuantity": {"value": value, "unit": "pg/mL"}}
    assert matched(rules, "1950-01-01", ntprobnp(126)) == {"suspected-heart-failure": ("Observation/bnp",)}
    assert matched(rules, "1950-01-01", ntprobnp(125)) == {}  # above 125, not at it
    assert matched(rules, "1950-01-01", ntprobnp(900, "2025-10-31")) == {}  # more than a year ago
    assert matched(rules, "1950-01-01", medicine("p", "C03CA01")) == {"suspected-heart-failure": ("MedicationStatement/p-med0",)}
    assert matched(rules, "1950-01-01", medicine("p", "C03AA03")) == {}  # a thiazide is not a loop diuretic
    assert matched(rules, "1950-01-01", ntprobnp(900), condition("p", "heart-failure")) == {}


def test_egfr_below_60_twice_three_months_apart(rules):
    two = [egfr("p", 55, "2026-01-10"), egfr("p", 58, "2026-04-10", n=1)]
    assert matched(rules, "1950-01-01", *two) == {"egfr-low-without-ckd": ("Observation/p-egfr0", "Observation/p-egfr1")}
    assert matched(rules, "1950-01-01", egfr("p", 55, "2026-01-10"), egfr("p", 58, "2026-04-09", n=1)) == {}  # a day short
    assert matched(rules, "1950-01-01", egfr("p", 55, "2026-01-10"), egfr("p", 52, "2026-03-10", n=1)) == {}  # two months
    assert matched(rules, "1950-01-01", egfr("p", 55, "2026-01-10"), egfr("p", 60, "2026-05-10", n=1)) == {}  # 60 is not below
    assert matched(rules, "1950-01-01", *two, condition("p", "kidney")) == {}
    # a second low two months on does not count, a third three months after the first does
    three = [egfr("p", 55, "2026-01-10"), egfr("p", 52, "2026-03-10", n=1), egfr("p", 50, "2026-04-10", n=2)]
    assert matched(rules, "1950-01-01", *three) == {"egfr-low-without-ckd": ("Observation/p-egfr0", "Observation/p-egfr2")}
    assert matched(rules, "1950-01-01", egfr("p", 55, "2024-10-01"), egfr("p", 52, "2026-03-10", n=1)) == {}  # first too old


def test_diabetes_care_pathway(rules):
    once = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
    diabetes = condition("p", "diabetes")
    assert matched(rules, "1960-01-01", diabetes, dosed("A10AE04", once)) == {
        "diabetes-care-pathway": ("Condition/p-diabetes", "MedicationStatement/p-med0")}
    assert "diabetes-care-pathway" in matched(rules, "1960-01-01", diabetes, dosed("A10AB01", {"code": {"coding": [{"code": "BID"}]}}))
    assert matched(rules, "1960-01-01", diabetes, dosed("A10AB01", {"code": {"coding": [{"code": "TID"}]}})) == {}
    # basal once and rapid three times a day: more than two injections, the diabetes convention's
    assert matched(rules, "1960-01-01", diabetes, dosed("A10AE04", once),
                   dosed("A10AB05", {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}, n=1)) == {}
    assert matched(rules, "1960-01-01", diabetes, medicine("p", "A10AE04")) == {}  # how often not said: not proposed
    assert "diabetes-care-pathway" in matched(rules, "1960-01-01", diabetes, medicine("p", "A10BJ06"))  # GLP-1
    assert matched(rules, "1960-01-01", diabetes, medicine("p", "A10BA02")) == {}  # metformin only
    assert matched(rules, "1960-01-01", medicine("p", "A10BJ06")) == {}  # no type 2 diagnosis
    pregnant = {**condition("p", "diabetes", n=1), "code": {"coding": [{"system": SNOMED, "code": "77386006"}]}}
    assert matched(rules, "1960-01-01", diabetes, medicine("p", "A10BJ06"), pregnant) == {}


def test_doses_a_day_are_read_from_the_timing():
    assert per_day([{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}}]) == 2
    assert per_day([{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}}]) == pytest.approx(1 / 7)
    assert per_day([{"timing": {"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}}]) == 2
    assert per_day([{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}},
                    {"timing": {"code": {"coding": [{"code": "QD"}]}}}]) == 2  # morning and evening instructions
    assert per_day([{"text": "as agreed"}]) is None and per_day(None) is None


def test_proposal_is_r4_and_is_not_made_twice(rules):
    who = inhabitant(patient("p", "1950-01-01"), [egfr("p", 55, "2026-01-10"), egfr("p", 52, "2026-04-10", n=1)])
    (m,) = find(who, rules, DAY)
    task = proposal(m, {"gp": "PractitionerRole/gp-1"}, "Organization/team-1", DAY,
                    ("https://careflow.dev/fhir/PlanDefinition/chronic-kidney-disease|2026.1", "Chronic kidney disease",
                     "Chronische nierziekte"))
    assert r4_errors(task) == []
    assert rule_of(task) == "egfr-low-without-ckd" and task["owner"] == {"reference": "PractitionerRole/gp-1"}
    assert task["reasonCode"]["text"] == ("eGFR below 60 twice without a chronic kidney disease diagnosis: eGFR 55 on "
                                          "2026-01-10 and 52 on 2026-04-10, no chronic kidney disease diagnosis "
                                          "(rule set case-finding 2026.1)")
    assert should_propose(m, []) is None
    assert should_propose(m, [task]) == "already-proposed"
    assert should_propose(m, [{**task, "status": "rejected"}]) == "seen-before"
    assert should_propose(m, [{**task, "status": "completed"}]) == "seen-before"
    later = inhabitant(patient("p", "1950-01-01"), [egfr("p", 55, "2026-01-10"), egfr("p", 52, "2026-04-10", n=1),
                                                    egfr("p", 49, "2026-10-01", n=2)])
    (m2,) = find(later, rules, DAY)
    assert m2.evidence == m.evidence  # the first two still make the count: the same evidence
    other = inhabitant(patient("p", "1950-01-01"), [egfr("p", 55, "2026-02-10", n=3), egfr("p", 52, "2026-06-10", n=4)])
    (m3,) = find(other, rules, DAY)
    assert should_propose(m3, [{**task, "status": "rejected"}]) is None  # new evidence: proposed again
    assert proposal(m3, {}, None, DAY, None)["id"] != task["id"]


def test_published_schema_is_the_model():
    assert (ROOT / "case_finding" / "schema.json").read_text(encoding="utf-8") == render_case()


GOOD = (ROOT / "case_finding" / "case-finding-2026.1.yaml").read_text(encoding="utf-8")


def _problems(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as info:
        parse_case_rules(text, "c.yaml")
    return [str(p) for p in info.value.problems]


def test_errors_point_at_file_line_column():
    text = GOOD.replace("condition: {any_of: [kidney]}", "condition: {any_of: [kidny]}")
    text = text.replace("          apart: P3M\n", "          apart: three months\n")
    text = text.replace("  - id: diabetes-care-pathway\n", "  - id: Diabetes\n")
    text = text.replace("      - medicines: {atc: [C03C]}", "      - medicine: {atc: [C03C]}")
    lines = text.splitlines()

    def at(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if fragment in line)

    problems = _problems(text)
    assert any(p.startswith(f"c.yaml:{at('[kidny]')}:") and "chronic kind 'kidny' is not declared under `chronic` "
               "(did you mean 'kidney'?)" in p for p in problems), problems
    assert any(p.startswith(f"c.yaml:{at('apart: three')}:") and "apart" in p for p in problems), problems
    assert any(p.startswith(f"c.yaml:{at('id: Diabetes')}:") and "is not a valid id" in p for p in problems), problems
    assert any(p.startswith(f"c.yaml:{at('medicine: {atc')}:") and "did you mean 'medicines'?" in p for p in problems), problems
    assert len(problems) == 4, problems


def test_a_rule_without_groups_is_not_a_pyramid_rule():
    problems = _problems(GOOD.replace("    programme: copd\n", "    programme: copd\n    group: A\n"))
    assert problems == [f"c.yaml:{GOOD.splitlines().index('    programme: copd') + 2}:5: rules[0].group: unknown key 'group'"]
