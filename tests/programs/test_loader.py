"""The loader reports every problem at once, each at its file:line:column, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from careflow.errors import ProgramError
from careflow.programs.loader import load_program, load_programs, parse_program
from careflow.programs.schema import render

ROOT = Path(__file__).resolve().parents[2]
MINI = (ROOT / "tests/programs/fixtures/mini-hf.yaml").read_text()


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProgramError) as info:
        parse_program(text, "p.yaml")
    return [str(p) for p in info.value.problems]


def test_fixture_is_valid(mini_hf):
    assert mini_hf.id == "mini-hf"
    assert mini_hf.canonical == "https://careflow.dev/fhir/PlanDefinition/mini-hf|0.1.0"


def test_every_problem_reported_together_with_positions():
    bad = (
        MINI.replace("version: 0.1.0", "version: 0.1")
        .replace("role: home-nurse\n    code: {system: careflow, code: weight-check}", "role: nurse\n    code: {system: careflow, code: weight-check}")
        .replace("timing: {every: P1M, due_within: P7D}", "timing: {every: 1 month, due_within: P7D}")
        .replace('code: "84114007"', 'code: "84114008"')
        .replace("plan_period: P1Y", "plan_period: P1Y\nowner: somebody")
    )
    found = problems_of(bad)
    text = "\n".join(found)
    assert len(found) == 5, text
    assert "p.yaml:3:1: version: should be text" in text
    assert "p.yaml:8:1: owner: unknown key 'owner'" in text
    assert "eligibility.conditions[1]: code '84114008' is not well-formed" in text and "Verhoeff" in text
    assert "activities[1].role: role 'nurse' is not declared under `roles`" in text
    assert "activities[1].timing.every: '1 month' is not an ISO 8601 duration" in text
    for line in found:  # each problem points at a real line of the file
        assert line.split(":")[0] == "p.yaml" and int(line.split(":")[1]) > 0


def test_unknown_key_suggests_the_near_miss():
    found = problems_of(MINI.replace("    due: P3M", "    dew: P3M"))
    assert any("unknown key 'dew' (did you mean 'due'?)" in p for p in found), found


def test_dependency_cycle_named():
    text = MINI.replace("role: gp\n    code: {system: careflow, code: care-plan-start}",
                        "role: gp\n    code: {system: careflow, code: care-plan-start}\n    after: [review]")
    found = problems_of(text)
    assert any("dependency cycle: review → start-plan → review" in p for p in found), found


def test_duplicate_ids_and_unknown_activity_references():
    text = MINI.replace("- id: education", "- id: weight-check").replace("after: [start-plan]", "after: [start-plan, intake]")
    found = "\n".join(problems_of(text))
    assert "duplicate id 'weight-check' (first used at activities[1])" in found
    assert "activity 'intake' is not declared under `activities`" in found


def test_malformed_codes_per_system():
    text = MINI.replace("code: K77", "code: K7").replace("code: 29463-7, display: Body weight", "code: 29463-1, display: Body weight")
    found = "\n".join(problems_of(text))
    assert "an ICPC-2 code is a chapter letter and two digits" in found
    assert "LOINC codes end in a mod-10 check digit" in found


def test_yaml_syntax_error_has_position():
    found = problems_of("id: x\ntitle: [unclosed\n")
    assert len(found) == 1 and found[0].startswith("p.yaml:") and "not valid YAML" in found[0]


def test_duplicate_yaml_key_is_reported():
    found = problems_of(MINI.replace("status: active", "status: active\nstatus: draft", 1))
    assert len(found) == 1 and "duplicate key" in found[0] and found[0].startswith("p.yaml:")


def test_not_a_mapping():
    assert "must be a mapping" in problems_of("- just\n- a list\n")[0]


def test_missing_file_is_a_problem_not_a_crash(tmp_path):
    with pytest.raises(ProgramError) as info:
        load_program(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_duplicate_programme_ids_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(MINI)
    (tmp_path / "b.yaml").write_text(MINI)
    with pytest.raises(ProgramError) as info:
        load_programs([tmp_path])
    assert "programme id 'mini-hf' is also used by" in str(info.value)


def test_schema_json_is_in_sync_with_the_model():
    on_disk = (ROOT / "care_programs/schema.json").read_text()
    assert on_disk == render(), "regenerate with: careflow programs schema > care_programs/schema.json"


@pytest.mark.parametrize("path", sorted((ROOT / "care_programs").glob("*.yaml")) + [ROOT / "tests/programs/fixtures/mini-hf.yaml", ROOT / "tests/programs/language/language.yaml"], ids=lambda p: p.name)
def test_programmes_validate_against_the_published_schema(path):
    schema = json.loads((ROOT / "care_programs/schema.json").read_text())
    data = json.loads(json.dumps(YAML(typ="safe").load(path.read_text())))
    jsonschema.Draft202012Validator(schema).validate(data)
    load_program(path)


def test_schema_rejects_what_the_loader_rejects():
    schema = json.loads((ROOT / "care_programs/schema.json").read_text())
    data = YAML(typ="safe").load(MINI.replace("P7D", "7 days"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(json.dumps(data))))
    assert errors, "an editor must flag a bad duration too"


def test_ids_that_would_clash_in_the_plan_definition():
    text = MINI.replace("- id: weight-stable", "- id: weight-check").replace("- id: reassign", "- id: education-x")
    text = text.replace("- id: education\n", "- id: trigger-education-x\n")
    found = "\n".join(problems_of(text))
    assert "id 'weight-check' is also a goal id" in found
    assert "clashes with the exported id of trigger 'education-x'" in found


def test_activity_id_too_long_for_a_fhir_id():
    long_id = "a" * 60
    found = "\n".join(problems_of(MINI.replace("- id: education\n", f"- id: {long_id}\n")))
    assert "must fit a FHIR id (64 characters)" in found


def test_fact_and_rule_problems_are_reported_at_their_line():
    text = (ROOT / "tests/programs/language/language.yaml").read_text()
    bad = (
        text.replace("at_least: {value: 2, unit: \"{grade}\"}", "at_least: {value: 2, unit: \"{grade}\"}\n        below: {value: 4, unit: \"{grade}\"}")
        .replace("code: A10BK}", "code: A1OBK}")
        .replace("persists: {times: 2, within: P1D}", "persists: {times: 1, within: P1D}")
        .replace("below_baseline: {value: 4, unit: \"%\"}\n        within: P3M", "below_baseline: {value: 4, unit: \"%\"}")
    )
    found = problems_of(bad)
    text_found = "\n".join(found)
    assert len(found) == 4, text_found
    assert "activities[2].only_if.observation: an observation test needs exactly one of" in text_found
    assert "activities[3].only_if.medication.codes[0]: code 'A1OBK' is not well-formed: an ATC code" in text_found
    assert "triggers[0].when.observation.persists.times" in text_found
    assert "triggers[1].when.observation: below_baseline needs a `within` window" in text_found
    medication_line = next(i for i, row in enumerate(bad.splitlines(), 1) if "A1OBK" in row)
    assert any(p.startswith(f"p.yaml:{medication_line}:") for p in found), found


def test_trigger_only_if_needs_an_observation_trigger():
    found = "\n".join(problems_of(MINI.replace("when: {rejected: any}", "when: {rejected: any}\n    only_if: {groups: [A]}")))
    assert "only_if` on a trigger needs `when: observation`" in found


def test_texts_in_three_languages_or_one_string():
    three = MINI.replace("title: {nl: Mini hartfalen, en: Mini heart failure}",
                         "title: {nl: Mini hartfalen, en: Mini heart failure, fr: Mini insuffisance cardiaque}")
    assert three != MINI, "the fixture's programme title changed: adapt this test"
    program = parse_program(three, "p.yaml")
    assert program.title.in_language("fr") == "Mini insuffisance cardiaque"
    assert program.title.in_language("nl") == "Mini hartfalen" and program.title.in_language("de") == "Mini heart failure"
    # a one-language file (a plain string) stays valid: the same text whatever the reader's language
    single = parse_program(MINI.replace("title: {nl: Mini hartfalen, en: Mini heart failure}", "title: Mini HF"), "p.yaml")
    assert single.title.in_language("nl") == single.title.in_language("fr") == single.title.en == "Mini HF"
    # no French: a French reader gets the English
    assert parse_program(MINI, "p.yaml").title.in_language("fr") == "Mini heart failure"
    schema = json.loads((ROOT / "care_programs/schema.json").read_text())
    for text in (three, MINI.replace("title: {nl: Mini hartfalen, en: Mini heart failure}", "title: Mini HF")):
        jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(YAML(typ="safe").load(text))))


def test_a_wrong_language_is_reported_at_its_line():
    bad = MINI.replace("title: {nl: Mini hartfalen, en: Mini heart failure}",
                       "title: {nl: Mini hartfalen, en: Mini heart failure, de: Mini Herzinsuffizienz}")
    found = problems_of(bad)
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "Herzinsuffizienz" in text)
    assert any(p.startswith(f"p.yaml:{line}:") and "unknown key 'de'" in p for p in found), found
    empty = problems_of(MINI.replace("title: {nl: Mini hartfalen, en: Mini heart failure}",
                                     'title: {nl: Mini hartfalen, en: Mini heart failure, fr: ""}'))
    assert any("title.fr" in p for p in empty), empty
    schema = json.loads((ROOT / "care_programs/schema.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(json.dumps(YAML(typ="safe").load(bad)))))


def test_every_programme_title_is_in_dutch_french_and_english():
    from careflow.programs.loader import load_directory

    for program in load_directory(None).values():
        texts = [program.title, *(r.title for r in program.roles.values()), *(g.title for g in program.goals),
                 *(a.title for a in program.activities), *(t.title for t in program.triggers if t.title),
                 *(t.then.create_task.title for t in program.triggers if t.then.create_task)]
        untranslated = [t.en for t in texts if not t.fr or not t.nl or t.fr == t.en and t.en not in ("NT-proBNP", "Case manager", "Case management")]
        assert not untranslated, f"{program.id}: no French for {untranslated}"


def test_a_key_that_looks_like_a_union_tag_is_a_problem_not_a_crash():
    # found by the viewer's fuzz test: "0[" was dropped from the error's path with the union tags
    with pytest.raises(ProgramError) as info:
        parse_program("0[:\n", "p.yaml")
    assert "p.yaml:1:1: 0[: unknown key '0['" in [str(p) for p in info.value.problems]
    from careflow.measures.loader import parse_measures
    from careflow.population.loader import parse_case_rules, parse_rules

    for parse in (parse_rules, parse_measures, parse_case_rules):  # the same reading of pydantic's errors
        with pytest.raises(ProgramError) as info:
            parse("0[:\n", "p.yaml")
        assert "p.yaml:1:1: 0[: unknown key '0['" in [str(p) for p in info.value.problems]
