"""The profile checker: hand-made resources that conform pass; each broken promise is reported."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from careflow import naming
from careflow.errors import ProfileDefinitionError
from careflow.fhir import profiles
from careflow.fhir.profiles import conformance_errors, extension_errors
from careflow.programs.codes import HCPARTY, SNOMED

GP_ROLE = {
    "coding": [
        {"system": SNOMED, "code": "62247001", "display": "General practitioner"},
        {"system": HCPARTY, "code": "persphysician"},
    ],
    "text": "GP",
}

CAREPLAN: dict[str, Any] = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "meta": {"profile": [naming.PROFILE_CAREPLAN]},
    "identifier": [{"system": naming.CAREPLAN_IDENTIFIER, "value": "p1/copd"}],
    "instantiatesCanonical": ["https://careflow.dev/fhir/PlanDefinition/copd|1.0.0"],
    "status": "active",
    "intent": "plan",
    "category": [{"coding": [{"system": SNOMED, "code": "734163000"}]}],
    "title": "COPD",
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2025-03-01", "end": "2026-03-01"},
    "created": "2025-03-01",
    "careTeam": [{"reference": "CareTeam/ct1"}],
    "addresses": [{"reference": "Condition/c1"}],
    "goal": [{"reference": "Goal/g1"}],
    "activity": [{"reference": {"reference": "Task/t1"}}],
}
GOAL: dict[str, Any] = {
    "resourceType": "Goal",
    "id": "g1",
    "meta": {"profile": [naming.PROFILE_GOAL]},
    "lifecycleStatus": "active",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-category", "code": "behavioral"}]}],
    "description": {"text": "Stop smoking"},
    "subject": {"reference": "Patient/p1"},
    "startDate": "2025-03-01",
    "target": [{"measure": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]}, "detailString": "never smoker", "dueDate": "2025-09-01"}],
}
CARETEAM: dict[str, Any] = {
    "resourceType": "CareTeam",
    "id": "ct1",
    "meta": {"profile": [naming.PROFILE_CARETEAM]},
    "extension": [{"url": naming.EXT_NEIGHBOURHOOD, "valueString": "Kessel-Lo"}],
    "status": "active",
    "name": "Care team",
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2025-03-01"},
    "participant": [{"role": [GP_ROLE], "member": {"reference": "PractitionerRole/pr1"}}, {"role": [GP_ROLE]}],
}
TASK: dict[str, Any] = {
    "resourceType": "Task",
    "id": "t1",
    "meta": {"profile": [naming.PROFILE_TASK]},
    "extension": [{"url": naming.EXT_OCCURRENCE, "valuePositiveInt": 1}],
    "identifier": [{"system": naming.TASK_IDENTIFIER, "value": "cp1/review/1"}],
    "instantiatesCanonical": "https://careflow.dev/fhir/ActivityDefinition/copd-review|1.0.0",
    "basedOn": [{"reference": "CarePlan/cp1"}],
    "status": "requested",
    "intent": "order",
    "priority": "routine",
    "code": {"coding": [{"system": SNOMED, "code": "390906007"}]},
    "description": "Follow-up",
    "for": {"reference": "Patient/p1"},
    "authoredOn": "2025-03-01",
    "owner": {"reference": "CareTeam/ct1"},
    "performerType": [GP_ROLE],
    "restriction": {"period": {"start": "2025-03-01", "end": "2025-03-15"}},
}
GOOD = [CAREPLAN, GOAL, CARETEAM, TASK]


@pytest.mark.parametrize("resource", GOOD, ids=lambda r: r["resourceType"])
def test_conforming_resources_pass(resource: dict[str, Any]) -> None:
    assert conformance_errors(resource) == []


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            r = r[p]
        del r[last]

    return change


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(r: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            r = r[int(p)] if p.isdigit() else r[p]  # type: ignore[index]
        r[last] = value

    return change


BROKEN = [
    # (resource, change, expected fragment of one error)
    (TASK, _drop("for"), "Task: for is required"),
    (TASK, _drop("restriction.period.end"), "Task.restriction.period: end is required"),
    (TASK, _set("intent", "plan"), 'Task.intent: must be exactly "order"'),
    (TASK, _set("identifier", [{"system": "urn:other", "value": "x"}]), "identifier:careflow is required"),
    (TASK, _set("identifier", [{"system": naming.TASK_IDENTIFIER}]), "Task.identifier[0]: value is required"),
    (TASK, _set("performerType", [{"coding": [{"system": HCPARTY, "code": "persphysician"}]}]), "performerType:snomed is required"),
    (TASK, _set("owner", {"reference": "Practitioner/x"}), "should point at a CareTeam or PractitionerRole"),
    (TASK, _set("basedOn", []), "basedOn is required"),
    (TASK, _set("extension", [{"url": naming.EXT_SHARED_ACTIVITY, "valueId": "flu"}] * 2), "extension:shared is allowed at most 1"),
    (TASK, _set("businessStatus", {"coding": [{"system": "urn:other", "code": "late"}]}), "Task.businessStatus: must match"),
    (TASK, _set("extension", [{"url": naming.EXT_OCCURRENCE, "valuePositiveInt": 1}] * 2), "extension:occurrence is allowed at most 1"),
    (TASK, _set("extension", [{"url": naming.EXT_OCCURRENCE, "valueString": "1"}]), "value[x] may only be positiveInt"),
    (TASK, _set("meta", {"profile": [naming.PROFILE_TASK, naming.PROFILE_TASK]}), "profile:careflow is allowed at most 1"),
    (CAREPLAN, _set("activity", [{"detail": {"status": "scheduled"}}]), "detail is not allowed"),
    (CAREPLAN, _set("activity", [{"reference": {"reference": "ServiceRequest/s"}}]), "should point at a Task"),
    (CAREPLAN, _set("category", [{"text": "care plan"}]), "category:carePlan is required"),
    (CAREPLAN, _drop("careTeam"), "careTeam is required"),
    (CAREPLAN, _set("intent", "proposal"), "CarePlan.intent: must be exactly"),
    (CAREPLAN, _set("subject", {"reference": "Group/g"}), "should point at a Patient"),
    (CAREPLAN, _set("extension", [{"url": naming.EXT_OCCURRENCE, "valuePositiveInt": 2}]), "may only be used on Task"),
    (GOAL, _drop("category"), "Goal: category is required"),
    (GOAL, _set("target", [{"dueDuration": {"value": 3, "unit": "mo"}}]), "due[x] may only be date"),
    (GOAL, _set("startCodeableConcept", {"text": "now"}), "start[x] may only be date"),
    (CARETEAM, _set("participant", []), "participant is required"),
    (CARETEAM, _set("participant", [{"role": [{"coding": [{"system": HCPARTY, "code": "persnurse"}]}]}]), "role:snomed is required"),
    (CARETEAM, _set("participant", [{"role": [GP_ROLE], "member": {"reference": "Patient/p1"}}]), "should point at a PractitionerRole"),
    (CARETEAM, _set("extension", [{"url": f"{naming.BASE}/StructureDefinition/buurt", "valueString": "x"}]), "careflow defines no such extension"),
]


@pytest.mark.parametrize(("resource", "change", "expected"), BROKEN, ids=[b[2][:40] for b in BROKEN])
def test_each_violation_is_reported(resource: dict[str, Any], change: Callable[[dict[str, Any]], None], expected: str) -> None:
    broken = copy.deepcopy(resource)
    change(broken)
    errors = conformance_errors(broken)
    assert any(expected in e for e in errors), errors


def test_a_resource_without_a_careflow_profile_is_reported() -> None:
    task = {k: v for k, v in TASK.items() if k != "meta"}
    assert conformance_errors(task) == [f"Task.meta.profile: names no careflow profile (expected {naming.PROFILE_TASK})"]


def test_a_profile_for_another_type_is_reported() -> None:
    assert conformance_errors(TASK, naming.PROFILE_GOAL) == ["Task: profile CareflowGoal is for Goal, not Task"]


def test_errors_name_the_profile_element() -> None:
    broken = copy.deepcopy(TASK)
    del broken["priority"]
    assert conformance_errors(broken) == ["Task: priority is required (at least 1, found 0) [CareflowTask Task.priority]"]


def test_extension_errors_work_on_any_resource() -> None:
    patient = {"resourceType": "Patient", "extension": [{"url": naming.EXT_NEIGHBOURHOOD, "valueInteger": 3}]}
    assert extension_errors(patient) == [
        "Patient.extension[0].valueInteger: value[x] may only be string [CareflowNeighbourhood Extension.value[x]]"
    ]
    patient["extension"] = [{"url": naming.EXT_NEIGHBOURHOOD, "valueString": "Heverlee"}]
    assert extension_errors(patient) == []


@pytest.fixture
def profile_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for path in profiles.DEFAULT_DIR.glob("*.json"):
        shutil.copy(path, tmp_path)
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path))
    profiles._profiles.cache_clear()
    yield tmp_path
    monkeypatch.delenv(profiles.PROFILES_ENV)
    profiles._profiles.cache_clear()


def _edit(folder: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = folder / name
    sd = json.loads(path.read_text())
    edit(sd)
    path.write_text(json.dumps(sd))


def test_rules_come_from_the_json_files(profile_copy: Path) -> None:
    # Relax Task.priority in the file: the checker follows, proving the rule is not hard-coded.
    def relax(sd: dict[str, Any]) -> None:
        for e in sd["differential"]["element"]:
            if e["id"] == "Task.priority":
                e["min"] = 0

    _edit(profile_copy, "careflow-task.json", relax)
    assert conformance_errors({k: v for k, v in TASK.items() if k != "priority"}) == []


def test_a_rule_the_checker_cannot_enforce_is_refused(profile_copy: Path) -> None:
    def bind(sd: dict[str, Any]) -> None:
        sd["differential"]["element"].append(
            {"id": "Task.code", "path": "Task.code", "binding": {"strength": "required", "valueSet": "http://x"}}
        )

    _edit(profile_copy, "careflow-task.json", bind)
    with pytest.raises(ProfileDefinitionError, match="binding"):
        conformance_errors(TASK)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ({"id": "Task.for", "path": "Task.for", "type": [{"code": "Reference", "aggregation": ["contained"]}]}, "aggregation"),
        ({"id": "Task.code", "path": "Task.code", "type": [{"code": "CodeableConcept", "profile": ["http://x"]}]}, "names a profile"),
        ({"id": "Task.input", "path": "Task.input", "slicing": {"discriminator": [{"type": "type", "path": "value"}]}}, "slices by 'type'"),
        ({"id": "Task.note", "path": "Task.note", "slicing": {"discriminator": [{"type": "value", "path": "text"}], "ordered": True}}, "ordered"),
        ({"id": "Task.note", "path": "Task.note", "max": "many"}, "neither a number"),
        ({"id": "Task.note", "path": "Task.notes"}, "path should be"),
        ({"id": "Task.note", "path": "Task.note", "constraint": [{"key": "x-1"}]}, "constraint"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["id"],
)
def test_element_rules_the_checker_cannot_enforce_are_refused(profile_copy: Path, element: dict[str, Any], message: str) -> None:
    _edit(profile_copy, "careflow-task.json", lambda sd: sd["differential"]["element"].append(element))
    with pytest.raises(ProfileDefinitionError, match=message):
        conformance_errors(TASK)


def test_a_slice_without_a_discriminator_value_is_refused(profile_copy: Path) -> None:
    def unfix(sd: dict[str, Any]) -> None:
        sd["differential"]["element"] = [e for e in sd["differential"]["element"] if e["id"] != "Task.identifier:careflow.system"]

    _edit(profile_copy, "careflow-task.json", unfix)
    with pytest.raises(ProfileDefinitionError, match="no fixed or pattern value"):
        conformance_errors(TASK)


def test_missing_profiles_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path / "none"))
    profiles._profiles.cache_clear()
    try:
        with pytest.raises(ProfileDefinitionError, match="no StructureDefinitions"):
            conformance_errors(TASK)
    finally:
        monkeypatch.delenv(profiles.PROFILES_ENV)
        profiles._profiles.cache_clear()
