"""The stratification rules on a small population whose groups were worked out by hand (rule sets
2026.1 and 2026.2 as shipped), the edges of each criterion, the explanation sentence, the choice of
version by date, the published schema and file:line errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from careflow.errors import CareflowError, RuleSetError
from careflow.population.evaluate import stratify
from careflow.population.facts import inhabitant
from careflow.population.loader import default_rules_dir, load_rule_sets, parse_rules, rules_in_force
from careflow.population.schema import render
from population.people import belrai, condition, egfr, medicine, patient, stay

DAY = date(2026, 11, 1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sets():
    return load_rule_sets([default_rules_dir()])


@pytest.fixture(scope="module")
def v2(sets):
    return rules_in_force(sets, DAY)


def group(rules, birth, *resources, day=DAY):
    pid = "p"
    return stratify(inhabitant(patient(pid, birth), [r(pid) if callable(r) else r for r in resources]), rules, day)


def cond(kind, onset="2015-01-01", **kw):
    return lambda pid: condition(pid, kind, onset, **kw)


def test_versions_are_chosen_by_the_day(sets):
    assert [s.version for s in sets] == ["2026.1", "2026.2"]
    assert rules_in_force(sets, date(2026, 6, 30)).version == "2026.1"
    assert rules_in_force(sets, date(2026, 7, 1)).version == "2026.2"
    with pytest.raises(CareflowError, match="no stratification rule set is in force on 2025-12-31"):
        rules_in_force(sets, date(2025, 12, 31))


def test_the_issue_example_reads_as_written(v2):
    s = group(v2, "1945-03-01", cond("copd"), cond("heart-failure"))
    assert s.group == "B" and s.rule == "multimorbid"
    assert s.explanation() == "group B because: COPD + heart failure, age 81, rule set 2026.2"
    assert s.evidence == ("Condition/p-copd", "Condition/p-heart-failure")


def test_no_condition_is_d_and_one_is_c(v2):
    d = group(v2, "1986-05-05")
    assert (d.group, d.rule) == ("D", None)
    assert d.explanation() == "group D because: no chronic condition, no rule for another group holds, age 40, rule set 2026.2"
    assert group(v2, "1966-05-05", cond("copd")).explanation() == "group C because: COPD, age 60, rule set 2026.2"


@pytest.mark.parametrize(("birth", "expected"), [("1951-11-01", "A"), ("1951-11-02", "B")])
def test_age_75_edge_with_dementia(v2, birth, expected):
    # 75 on the day itself (born 1 November 1951) is 75; a day later is still 74
    assert group(v2, birth, cond("dementia"), cond("diabetes")).group == expected


@pytest.mark.parametrize(("birth", "expected"), [("1941-11-01", "A"), ("1941-11-02", "C")])
def test_age_85_edge_with_heart_failure_alone(v2, birth, expected):
    s = group(v2, birth, cond("heart-failure"))
    assert s.group == expected
    if expected == "A":
        assert s.explanation() == "group A because: age 85, heart failure, rule set 2026.2"


def test_three_conditions_at_75_are_frail(v2):
    s = group(v2, "1950-01-01", cond("copd"), cond("diabetes"), cond("kidney"))
    assert s.group == "A" and s.rule == "frail-elderly"
    assert s.explanation() == "group A because: age 76, COPD + diabetes + chronic kidney disease, rule set 2026.2"


def test_frailty_screen_twelve_month_edge(v2):
    fresh = group(v2, "1966-05-05", cond("copd"), lambda pid: belrai(pid, 4, "2025-11-01"))
    assert fresh.group == "A" and fresh.rule == "frail-screened" and not fresh.flags
    assert fresh.explanation() == "group A because: COPD, BelRAI screener 4 on 2025-11-01, age 60, rule set 2026.2"
    assert "Observation/p-belrai0" in fresh.evidence
    stale = group(v2, "1966-05-05", cond("copd"), lambda pid: belrai(pid, 4, "2025-10-31"))
    assert stale.group == "C"
    assert stale.flags == ("BelRAI screener of 2025-10-31 is older than 12 months: not used",)
    assert stale.explanation().endswith("; BelRAI screener of 2025-10-31 is older than 12 months: not used")
    # a stale screen is flagged even for someone no rule asks it of, and a newer low score is used
    assert group(v2, "1986-05-05", lambda pid: belrai(pid, 5, "2024-01-01")).flags
    low = group(v2, "1966-05-05", cond("copd"), lambda pid: belrai(pid, 5, "2025-01-01"),
                lambda pid: belrai(pid, 2, "2026-09-01", n=1))
    assert (low.group, low.flags) == ("C", ())
    # a screen after the day does not count yet
    assert group(v2, "1966-05-05", cond("copd"), lambda pid: belrai(pid, 4, "2026-11-02")).group == "C"


def test_hospital_stay_window(v2):
    one = group(v2, "1966-05-05", cond("copd"), lambda pid: stay(pid, "2025-11-01T10:00:00+01:00", "2025-11-05"))
    assert one.group == "B" and one.rule == "complex"
    assert one.explanation() == "group B because: COPD, 1 hospital stay in 12 months, age 60, rule set 2026.2"
    before = group(v2, "1966-05-05", cond("copd"), lambda pid: stay(pid, "2025-10-31", "2025-11-05"))
    assert before.group == "C"
    ambulatory = group(v2, "1966-05-05", cond("copd"), lambda pid: stay(pid, "2026-05-01", "2026-05-01", cls="AMB"))
    assert ambulatory.group == "C"
    twice = group(v2, "1966-05-05", cond("copd"), cond("diabetes"), lambda pid: stay(pid, "2026-01-10", "2026-01-12"),
                  lambda pid: stay(pid, "2026-08-01", "2026-08-09", n=1))
    assert twice.group == "A" and twice.rule == "readmitted"
    assert twice.evidence[-2:] == ("Encounter/p-stay0", "Encounter/p-stay1")


def test_medicines_count_only_what_is_taken_on_the_day(v2):
    five = [lambda pid, i=i, code=code: medicine(pid, code, n=i) for i, code in enumerate(("C03CA01", "C07AB07", "C09AA05", "B01AC06", "A10BA02"))]
    assert group(v2, "1966-05-05", cond("copd"), *five).explanation() == \
        "group B because: COPD, 5 medicines, age 60, rule set 2026.2"
    ended = [*five[:4], lambda pid: medicine(pid, "A10BA02", end="2026-10-31", n=4)]
    assert group(v2, "1966-05-05", cond("copd"), *ended).group == "C"
    later = [*five[:4], lambda pid: medicine(pid, "A10BA02", start="2026-11-02", n=4)]
    assert group(v2, "1966-05-05", cond("copd"), *later).group == "C"


def test_egfr_below_30_within_a_year(v2):
    low = group(v2, "1956-05-05", cond("kidney"), lambda pid: egfr(pid, 25, "2026-03-01"))
    assert low.explanation() == "group B because: chronic kidney disease, eGFR 25 on 2026-03-01, age 70, rule set 2026.2"
    assert group(v2, "1956-05-05", cond("kidney"), lambda pid: egfr(pid, 25, "2025-09-01")).group == "C"
    assert group(v2, "1956-05-05", cond("kidney"), lambda pid: egfr(pid, 30, "2026-03-01")).group == "C"
    # the latest counts: a later better value lifts it
    assert group(v2, "1956-05-05", cond("kidney"), lambda pid: egfr(pid, 25, "2026-03-01"),
                 lambda pid: egfr(pid, 41, "2026-06-01", n=1)).group == "C"


def test_conditions_count_as_they_stood_on_the_day(v2):
    assert group(v2, "1966-05-05", cond("copd", onset="2026-11-02")).group == "D"
    assert group(v2, "1966-05-05", cond("copd", status="resolved")).group == "D"
    assert group(v2, "1966-05-05", cond("asthma"), cond("copd", onset="2026-11-01")).group == "B"


def test_the_old_version_ignores_what_the_new_one_added(sets):
    v1 = sets[0]
    frail = [cond("copd"), lambda pid: belrai(pid, 4, "2026-05-01")]
    assert group(v1, "1966-05-05", *frail, day=date(2026, 6, 1)).explanation() == \
        "group C because: COPD, age 60, rule set 2026.1"
    assert group(sets[1], "1966-05-05", *frail, day=date(2026, 7, 1)).group == "A"


def test_published_schema_is_the_model():
    assert (ROOT / "population_rules" / "schema.json").read_text(encoding="utf-8") == render()


GOOD = (ROOT / "population_rules" / "pyramid-2026.2.yaml").read_text(encoding="utf-8")


def _problems(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as info:
        parse_rules(text, "r.yaml")
    return [str(p) for p in info.value.problems]


def test_errors_point_at_file_line_column():
    text = GOOD.replace('version: "2026.2"', 'version: "2026-2"').replace(
        "      - chronic: {at_least: 2}\n      - hospital_stays", "      - chronic: {at_least: 2, of: [copd, hart-failure]}\n      - hospital_stays")
    text = text.replace("      - frailty: {at_least: 3}", "      - frailty: {at_leest: 3}")
    lines = text.splitlines()
    version_line = next(i for i, line in enumerate(lines, 1) if line.startswith("version:"))
    of_line = next(i for i, line in enumerate(lines, 1) if "hart-failure" in line)
    frail_line = next(i for i, line in enumerate(lines, 1) if "at_leest" in line)
    problems = _problems(text)
    assert f"r.yaml:{version_line}:1: version: '2026-2' is not a rule-set version such as 2026.2" in problems
    assert any(p.startswith(f"r.yaml:{of_line}:") and "chronic kind 'hart-failure' is not declared under `chronic` "
               "(did you mean 'heart-failure'?)" in p for p in problems), problems
    assert any(p.startswith(f"r.yaml:{frail_line}:") for p in problems), problems


def test_frailty_rule_needs_a_screen_and_ids_are_unique():
    start, end = GOOD.index("frailty:\n"), GOOD.index("rules:\n")
    text = GOOD[:start] + GOOD[end:]
    text = text.replace("  - id: readmitted", "  - id: frail-elderly")
    problems = _problems(text)
    assert any("tests the frailty screen, but the rule set declares no `frailty` screen" in p for p in problems)
    assert any("duplicate rule id 'frail-elderly' (first used at rules[1])" in p for p in problems)


def test_not_yaml_and_not_a_mapping():
    assert _problems("id: [unclosed\n")[0].startswith("r.yaml:")
    assert _problems("- a\n- b\n") == ["r.yaml:1:1: a rule file must be a mapping of keys (id, version, rules, …)"]
    # the programmes' reading, shared: a duplicate key and a number Python refuses to build are problems too
    assert _problems("id: a\nid: b\n")[0].startswith("r.yaml:2:1: not valid YAML: duplicate key")
    assert _problems(f"id: a\nversion: {'9' * 5000}\n")[0].startswith("r.yaml:1:1: not valid YAML:")


def test_a_misspelt_criterion_and_a_bad_value_are_named_where_they_stand():
    text = GOOD.replace("hospital_stays: {at_least: 2, within: P12M}", "hospital_stay: {at_least: 2}")
    text = text.replace("medicines: {at_least: 5}", "medicines: {at_least: 5, atc: [c09]}")
    lines = text.splitlines()
    stay_line = next(i for i, line in enumerate(lines, 1) if "hospital_stay:" in line)
    atc_line = next(i for i, line in enumerate(lines, 1) if "[c09]" in line)
    problems = _problems(text)
    assert f"r.yaml:{stay_line}:9: rules[2].when[1]: not a criterion: give exactly one of age, chronic, condition, " \
        "observation, medicines, hospital_stays, frailty, any, all, not (did you mean 'hospital_stays'?)" in problems
    assert f"r.yaml:{atc_line}:38: rules[4].when[1].any[1].medicines.atc: 'c09': an ATC code is a level of the " \
        "classification, like C09, C09A, C09AA or C09AA05" in problems
    assert len(problems) == 2
