"""The shipped care programmes say what the brief and the guidelines ask of them.

The loader already proves each file is well-formed; these tests guard the clinical content, so an
edit that drops the heart-failure weight alarm or the care-coach escalation fails loudly.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from careflow.planning.patient import ConditionFact, PatientContext
from careflow.planning.planner import plan
from careflow.programs.codes import HCPARTY, ICD10, ICPC2, LOINC, SNOMED
from careflow.programs.loader import load_program
from careflow.programs.model import Program

PROGRAM_DIR = Path(__file__).resolve().parents[2] / "care_programs"
PROGRAM_IDS = ("copd", "heart-failure", "diabetes-type-2", "chronic-kidney-disease")

# The condition codes each programme must accept: the Belgian GP's ICPC-2 code, the ICD-10
# category, and the SNOMED CT codes Synthea writes for the disease.
EXPECTED_ELIGIBILITY = {
    "copd": {"icpc": "R95", "icd": "J44", "synthea": {"185086009", "87433001"}},
    "heart-failure": {"icpc": "K77", "icd": "I50", "synthea": {"88805009"}},
    "diabetes-type-2": {"icpc": "T90", "icd": "E11", "synthea": {"44054006", "368581000119106"}},
    # ICPC-2 has no rubric for chronic kidney disease (U99 is "other urinary disease")
    "chronic-kidney-disease": {"icpc": None, "icd": "N18", "synthea": {"431855005", "431856006", "433144002", "431857002"}},
}

# Role ids shared by all programmes (the demo region staffs them) and, where HL7 Belgium's
# CD-HCPARTY has the discipline, the code it must carry.
KNOWN_ROLES = {
    "gp", "pharmacist", "home-nurse", "physiotherapist", "dietitian", "care-coach",
    "case-manager", "hf-educator", "diabetes-educator", "psychologist", "podiatrist", "nephrologist",
}
HCPARTY_FOR_ROLE = {
    "gp": "persgeneralphysician",
    "pharmacist": "perspharmacist",
    "home-nurse": "persnurse",
    "physiotherapist": "persphysiotherapist",
    "dietitian": "persdietician",
    "psychologist": "perspsychologist",
    "podiatrist": "perspodologist",
    "diabetes-educator": "persdiabeticeducator",
    "nephrologist": "persnephrologist",
}
RECURRING_FOLLOW_UP = {"P3M", "P6M", "P1Y"}


def _load(program_id: str) -> Program:
    return load_program(PROGRAM_DIR / f"{program_id}.yaml")


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return {pid: _load(pid) for pid in PROGRAM_IDS}


@pytest.fixture(params=PROGRAM_IDS)
def program(request: pytest.FixtureRequest, programs: dict[str, Program]) -> Program:
    return programs[request.param]


# ---------------------------------------------------------------- header


def test_header(program: Program) -> None:
    # the 2025 review; COPD and heart failure 1.2.0 add the follow-up after a hospital stay
    assert program.version == {"chronic-kidney-disease": "1.0.0", "diabetes-type-2": "1.1.0"}.get(program.id, "1.2.0")
    assert program.status == "active"
    assert program.url == f"https://careflow.dev/fhir/PlanDefinition/{program.id}"
    assert program.title.nl and program.title.en
    assert program.description is not None and program.description.nl and program.description.en


def test_file_name_is_the_programme_id(programs: dict[str, Program]) -> None:
    assert set(programs) == {p.id for p in programs.values()}


def test_file_cites_its_guidance() -> None:
    cited = {
        "copd": ["GOLD", "2025", "Hoge Gezondheidsraad"],
        "heart-failure": ["ESC", "2021", "focused update, 2023"],
        "diabetes-type-2": ["ADA", "2025", "Domus Medica", "zorgtraject diabetes"],
        "chronic-kidney-disease": ["KDIGO 2024", "zorgtraject chronische nierinsufficiëntie"],
    }
    for pid, words in cited.items():
        header = "".join(line for line in (PROGRAM_DIR / f"{pid}.yaml").read_text().splitlines(True) if line.startswith("#"))
        for word in words:
            assert word in header, f"{pid}.yaml header does not cite {word}"


# ---------------------------------------------------------------- who qualifies


def test_eligibility_codes(program: Program) -> None:
    expected = EXPECTED_ELIGIBILITY[program.id]
    by_system: dict[str, set[str]] = {}
    for c in program.eligibility.conditions:
        by_system.setdefault(c.system, set()).add(c.code)
    if expected["icpc"]:
        assert expected["icpc"] in by_system.get(ICPC2, set())
    assert expected["icd"] in by_system.get(ICD10, set())
    snomed = by_system.get(SNOMED, set())
    assert len(snomed) >= 2, "several SNOMED CT codes"
    assert expected["synthea"] <= snomed, f"missing Synthea codes {expected['synthea'] - snomed}"


def test_adults_only(program: Program) -> None:
    age = program.eligibility.age
    assert age is not None and age.min is not None and age.min >= 18
    assert program.eligibility.groups


# ---------------------------------------------------------------- who takes part


def test_roles_are_known_and_coded(program: Program) -> None:
    for role_id, role in program.roles.items():
        assert role_id in KNOWN_ROLES, f"unexpected role id {role_id}"
        systems = {c.system for c in role.codes}
        assert SNOMED in systems, f"{role_id} has no SNOMED CT occupation code"
        hcparty = {c.code for c in role.codes if c.system == HCPARTY}
        if role_id in HCPARTY_FOR_ROLE:
            assert hcparty == {HCPARTY_FOR_ROLE[role_id]}, f"{role_id} should carry CD-HCPARTY {HCPARTY_FOR_ROLE[role_id]}"
        else:
            assert not hcparty, f"{role_id} has no CD-HCPARTY discipline, yet carries {hcparty}"


def test_shared_roles_are_identical_across_programmes(programs: dict[str, Program]) -> None:
    """One patient has one CareTeam across programmes, so a role id must mean the same everywhere."""
    seen: dict[str, tuple[str, object]] = {}
    for pid, prog in programs.items():
        for role_id, role in prog.roles.items():
            if role_id in seen:
                first_pid, first = seen[role_id]
                assert role == first, f"role {role_id} differs between {first_pid} and {pid}"
            else:
                seen[role_id] = (pid, role)


def test_every_programme_uses_the_care_coach(program: Program) -> None:
    assert "care-coach" in program.roles


# ---------------------------------------------------------------- what each discipline does


def test_enough_activities_over_enough_roles(program: Program) -> None:
    assert len(program.activities) >= 8
    assert len({a.role for a in program.activities}) >= 4


def test_recurring_follow_up(program: Program) -> None:
    assert {a.timing.every for a in program.activities} & RECURRING_FOLLOW_UP


def test_dependencies_and_patient_instructions(program: Program) -> None:
    assert any(a.after for a in program.activities), "no activity waits on another"
    with_instructions = [a for a in program.activities if a.instructions]
    assert len(with_instructions) >= 3
    for a in with_instructions:
        assert a.instructions is not None and a.instructions.nl.strip() and a.instructions.en.strip()


def test_coded_activities(program: Program) -> None:
    snomed = [a for a in program.activities if a.code.system == SNOMED]
    assert len(snomed) >= 4, "prefer SNOMED CT procedure codes where one fits"


# ---------------------------------------------------------------- what we aim for


def test_measurable_goals(program: Program) -> None:
    measured = [g for g in program.goals if g.targets and all(t.measure.system == LOINC for t in g.targets)]
    assert len(measured) >= 2


def _targets(prog: Program) -> dict[str, object]:
    return {t.measure.code: t for g in prog.goals for t in g.targets}


@pytest.mark.parametrize(("program_id", "systolic_below", "diastolic_below"),
                         [("heart-failure", 140, 90), ("diabetes-type-2", 130, 80)])
def test_blood_pressure_targets(programs: dict[str, Program], program_id: str, systolic_below: int,
                                diastolic_below: int) -> None:
    targets = _targets(programs[program_id])
    systolic, diastolic = targets["8480-6"], targets["8462-4"]
    assert systolic.below is not None and systolic.below.value == systolic_below  # type: ignore[attr-defined]
    assert diastolic.below is not None and diastolic.below.value == diastolic_below  # type: ignore[attr-defined]


def test_heart_failure_weight_stable_within_2_kg(programs: dict[str, Program]) -> None:
    weight = _targets(programs["heart-failure"])["29463-7"]
    assert weight.stable_within is not None and (weight.stable_within.value, weight.stable_within.unit) == (2, "kg")  # type: ignore[attr-defined]


def test_diabetes_hba1c_below_7_percent_and_53_mmol_mol(programs: dict[str, Program]) -> None:
    targets = _targets(programs["diabetes-type-2"])
    percent, ifcc = targets["4548-4"], targets["59261-8"]
    assert (percent.below.value, percent.below.unit) == (7, "%")  # type: ignore[attr-defined]
    assert (ifcc.below.value, ifcc.below.unit) == (53, "mmol/mol")  # type: ignore[attr-defined]
    assert "2089-1" in targets, "an LDL cholesterol target"


# ---------------------------------------------------------------- what happens when


def test_overdue_escalates_to_care_coach(program: Program) -> None:
    escalations = [t for t in program.triggers if t.when.overdue and t.then.escalate_to == "care-coach"]
    assert escalations and all(t.then.priority for t in escalations)


def test_task_event_triggers(program: Program) -> None:
    assert any(t.when.completed and t.then.start for t in program.triggers), "completed X -> start Y"
    assert any(t.when.rejected == "any" and t.then.reassign_to == "care-coach" for t in program.triggers)


def test_observation_trigger(program: Program) -> None:
    assert any(t.when.observation for t in program.triggers)


def test_heart_failure_weight_gain_alarm(programs: dict[str, Program]) -> None:
    prog = programs["heart-failure"]
    alarms = [
        t for t in prog.triggers
        if t.when.observation and "29463-7" in {c.code for c in t.when.observation.codes} and t.when.observation.rises_by
    ]
    assert alarms
    rule, then = alarms[0].when.observation, alarms[0].then
    assert rule is not None and (rule.rises_by.value, rule.rises_by.unit, rule.within) == (2, "kg", "P3D")  # type: ignore[union-attr]
    assert then.create_task is not None and then.create_task.role in {"home-nurse", "gp"}
    assert then.create_task.priority in {"urgent", "asap", "stat"} and then.flag_plan


def test_heart_failure_educator_at_new_diagnosis(programs: dict[str, Program]) -> None:
    educator = [a for a in programs["heart-failure"].activities if a.role == "hf-educator"]
    assert educator and all(a.only_if and a.only_if.new_diagnosis for a in educator)


# ---------------------------------------------------------------- the programmes plan


SYNTHEA_CONDITION = {"copd": "185086009", "heart-failure": "88805009", "diabetes-type-2": "44054006",
                     "chronic-kidney-disease": "433144002"}


@pytest.mark.parametrize("new_diagnosis", [True, False])
def test_plans_for_a_synthea_coded_patient(program: Program, new_diagnosis: bool) -> None:
    start = date(2026, 3, 1)
    onset = date(2026, 1, 15) if new_diagnosis else date(2015, 1, 15)
    ctx = PatientContext(
        id="p1",
        birth_date=date(1950, 6, 1),
        group="B",
        conditions=(ConditionFact(id="Condition/c1", codes=((SNOMED, SYNTHEA_CONDITION[program.id]),), onset=onset),),
    )
    result = plan(program, ctx, start)
    opened = {t["identifier"][0]["value"].split("/")[-2] for t in result.tasks}
    assert result.tasks, "nothing to do on day one"
    assert len(result.goals) == len(program.goals)
    assert "care-plan-conversation" in opened
    at_new_diagnosis = {
        a.id for a in program.activities
        if a.only_if and a.only_if.new_diagnosis is True and not a.after and a.timing.start == "P0D"
    }
    if new_diagnosis:
        assert at_new_diagnosis <= opened
    else:
        assert not at_new_diagnosis & opened, "new-diagnosis activities planned for an established patient"
