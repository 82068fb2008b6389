"""The programme compiler's PlanDefinition and ActivityDefinitions are R4 and use careflow's
extensions as their StructureDefinitions in fhir_profiles/ define them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careflow import naming
from careflow.fhir.profiles import extension_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.programs.loader import load_directory

plandefinition = pytest.importorskip("careflow.programs.plandefinition")

PROGRAMS = load_directory()


def _definitions(program_id: str) -> list[dict[str, Any]]:
    program = PROGRAMS[program_id]
    return [plandefinition.to_plan_definition(program), *plandefinition.to_activity_definitions(program)]


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_compiled_definitions_are_r4_and_use_defined_extensions(program_id: str) -> None:
    report = {}
    for resource in _definitions(program_id):
        problems = r4_errors(resource) + extension_errors(resource)
        try:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
            problems.append(f"fhir.resources R4B: {exc}")
        if problems:
            report[f"{resource['resourceType']}/{resource['id']}"] = problems
    assert report == {}


def _extensions(node: Any, url: str) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("url") == url:
            found.append(node)
        for child in node.values():
            found += _extensions(child, url)
    elif isinstance(node, list):
        for child in node:
            found += _extensions(child, url)
    return found


def test_a_misshapen_complex_extension_is_caught() -> None:
    pd = copy.deepcopy(_definitions("copd")[0])
    role = _extensions(pd, naming.EXT_CARE_ROLE)[0]
    role["extension"] = [e for e in role["extension"] if e["url"] != "role"] + [{"url": "colour", "valueString": "red"}]
    errors = extension_errors(pd)
    assert any("extension:role is required" in e for e in errors), errors
    assert any("matches none of the slices of closed Extension.extension" in e for e in errors), errors


def test_an_extension_in_the_wrong_place_is_caught() -> None:
    pd = copy.deepcopy(_definitions("copd")[0])
    trigger_ext = next(e for e in _extensions(pd, naming.EXT_TRIGGER_ACTIVITY))
    pd.setdefault("extension", []).append(copy.deepcopy(trigger_ext))
    errors = extension_errors(pd)
    assert any("may only be used on TriggerDefinition, not on PlanDefinition" in e for e in errors), errors


def test_group_codes_must_come_from_the_population_group_system() -> None:
    pd = copy.deepcopy(_definitions("copd")[0])
    eligibility = _extensions(pd, naming.EXT_ELIGIBILITY)[0]
    group = next(e for e in eligibility["extension"] if e["url"] == "group")
    group["valueCoding"] = {"system": "urn:other", "code": "A"}
    assert any("must match" in e and naming.POPULATION_GROUP in e for e in extension_errors(pd))
