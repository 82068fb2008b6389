"""What the planner emits for each care programme is R4B-valid, R4 on the wire, and conforms to our profiles.

Planned for sample patients that take every branch the planner has: a new and an established
diagnosis, a known and an unknown care team, one programme and all programmes at once. Follow-up
occurrences of every activity (what the sweep writes later with ``build_task``) are checked too.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careflow.fhir.profiles import conformance_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.naming import EXT_NEIGHBOURHOOD, POPULATION_GROUP
from careflow.planning import ids
from careflow.planning.patient import PatientContext, context_from_resources
from careflow.planning.planner import build_task, plan, plan_all
from careflow.programs.loader import load_directory
from careflow.programs.model import Program

START = date(2025, 3, 3)
PROGRAMS = load_directory()


def _patient(program_ids: list[str], diagnosed: date, with_team: bool) -> PatientContext:
    patient = {
        "resourceType": "Patient",
        "id": "p-sample",
        "meta": {"tag": [{"system": POPULATION_GROUP, "code": "B"}]},
        "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": "Kessel-Lo"}],
        "birthDate": "1952-06-14",
        "gender": "female",
    }
    conditions = []
    for pid in program_ids:
        code = PROGRAMS[pid].eligibility.conditions[0]
        conditions.append(
            {
                "resourceType": "Condition",
                "id": f"c-{pid}",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": code.system, "code": code.code}]},
                "subject": {"reference": "Patient/p-sample"},
                "onsetDateTime": diagnosed.isoformat(),
            }
        )
    roles = {r for pid in program_ids for r in PROGRAMS[pid].roles}
    team = {r: f"PractitionerRole/pr-{r}" for r in sorted(roles)} if with_team else {}
    return context_from_resources(patient, conditions, team=team, organization="Organization/buurtteam-kessel-lo")


def _problems(resource: dict[str, Any]) -> list[str]:
    problems = []
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
        problems.append(f"fhir.resources R4B: {exc}")
    problems += r4_errors(resource)
    problems += conformance_errors(resource)
    return problems


def _assert_all_conform(resources: list[dict[str, Any]]) -> None:
    report = {f"{r['resourceType']}/{r['id']}": p for r in resources if (p := _problems(r))}
    assert report == {}


def test_there_are_programmes_to_plan() -> None:
    assert {"copd", "heart-failure", "diabetes-type-2"} <= set(PROGRAMS)


CASES = [
    (pid, new, team)
    for pid in sorted(PROGRAMS)
    for new in (True, False)
    for team in (True, False)
]


@pytest.mark.parametrize(
    ("program_id", "new_diagnosis", "with_team"),
    CASES,
    ids=[f"{p}-{'new' if n else 'established'}-{'team' if t else 'noteam'}" for p, n, t in CASES],
)
def test_planned_resources_conform(program_id: str, new_diagnosis: bool, with_team: bool) -> None:
    diagnosed = START - timedelta(days=30 if new_diagnosis else 3 * 365)
    result = plan(PROGRAMS[program_id], _patient([program_id], diagnosed, with_team), START)
    assert result.tasks, "a programme with nothing to do at the start proves little"
    kinds = {r["resourceType"] for r in result.resources}
    assert {"CarePlan", "CareTeam", "Task"} <= kinds
    _assert_all_conform(result.resources)


def test_all_programmes_for_one_patient_conform() -> None:
    ctx = _patient(sorted(PROGRAMS), START - timedelta(days=400), True)
    result = plan_all([PROGRAMS[p] for p in sorted(PROGRAMS)], ctx, START)
    assert len(result.careplans) == len(PROGRAMS)
    _assert_all_conform(result.resources)


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_follow_up_tasks_of_every_activity_conform(program_id: str) -> None:
    program: Program = PROGRAMS[program_id]
    ctx = _patient([program_id], START - timedelta(days=30), False)
    careplan_id = ids.careplan_id(ctx.id, program.id)
    opens = START + timedelta(days=90)
    tasks = [build_task(program, a, ctx, careplan_id, 2, opens, opens) for a in program.activities]
    _assert_all_conform(tasks)


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_overdue_marks_and_escalations_conform(program_id: str) -> None:
    """What the overdue trigger writes: the late Tasks with a businessStatus, and the escalation Tasks."""
    overdue = pytest.importorskip("careflow.triggers.overdue")
    from careflow.triggers.actions import CreateTask, UpdateTask
    from careflow.triggers.task_facts import task_facts

    program = PROGRAMS[program_id]
    if not any(t.when.overdue and t.then.escalate_to for t in program.triggers):
        pytest.skip(f"{program_id} has no overdue escalation")
    ctx = _patient([program_id], START - timedelta(days=30), True)
    result = plan(program, ctx, START)
    facts = [task_facts(t, program) for t in result.tasks]
    late = START + timedelta(days=200)
    actions = overdue.overdue_actions(program, result.careplan, result.tasks, facts, ctx, late)
    created = [a.resource for a in actions if isinstance(a, CreateTask)]
    updated = [a.resource for a in actions if isinstance(a, UpdateTask)]
    assert created and updated, "200 days late must both mark and escalate"
    _assert_all_conform(created + updated)


def test_flagged_plan_with_new_activities_conforms() -> None:
    """The plan update the trigger engine writes: attention flag raised, new Tasks referenced."""
    plan_status = pytest.importorskip("careflow.triggers.plan_status")
    program = PROGRAMS["heart-failure"]
    ctx = _patient(["heart-failure"], START - timedelta(days=30), True)
    result = plan(program, ctx, START)
    careplan_id = ids.careplan_id(ctx.id, program.id)
    later = [build_task(program, a, ctx, careplan_id, 3, START, START) for a in program.activities]
    update = plan_status.plan_update(result.careplan, START, new_tasks=later, raise_flag=True)
    assert update is not None and plan_status.attention(update.resource)
    _assert_all_conform([update.resource])


def test_extensions_inside_a_bundle_are_checked_in_their_own_resource() -> None:
    from careflow.fhir.profiles import extension_errors

    result = plan(PROGRAMS["copd"], _patient(["copd"], START - timedelta(days=30), True), START)
    bundle = result.bundle()
    assert r4_errors(bundle) == [] and extension_errors(bundle) == []
    task_entry = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Task")
    bundle["entry"][0]["resource"]["extension"] = bundle["entry"][task_entry]["resource"]["extension"]  # occurrence on a CareTeam
    assert any("Bundle.entry[0].resource.extension[0]" in e and "may only be used on Task" in e for e in extension_errors(bundle))
