"""The demo region speaks HL7 Belgium: Patients as BePatient, PractitionerRoles as BePractitionerRole.

The Belgian expectations checked here are those the core IG's FSH states (profiles BePatient,
BePractitioner, BePractitionerRole and invariants be-inv-SSIN / be-inv-NIHDI); and the region's
patients, planned with every programme they qualify for, give conforming careflow resources.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careflow import naming
from careflow.fhir.profiles import conformance_errors, extension_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.planning.eligibility import eligible_programs
from careflow.planning.patient import context_from_resources
from careflow.planning.planner import plan_all
from careflow.programs.codes import HCPARTY, SNOMED
from careflow.programs.loader import load_directory
from careflow.region.generate import Region, generate_region

SSIN_VALUE = re.compile(r"\d{11}")  # be-inv-SSIN
NIHDI_VALUE = re.compile(r"\d{11}|\d{8}")  # be-inv-NIHDI
NIHDI_SYSTEMS = {naming.NIHDI, f"{naming.NIHDI}-organization", f"{naming.NIHDI}-professional"}


@pytest.fixture(scope="module")
def region() -> Region:
    return generate_region(1200, seed=11)


def _target_type(reference: dict[str, Any]) -> str:
    return reference["reference"].split("/")[-2]


def _structure_problems(resource: dict[str, Any]) -> list[str]:
    problems = list(r4_errors(resource)) + extension_errors(resource)
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
        problems.append(f"fhir.resources R4B: {exc}")
    return problems


def bepatient_problems(patient: dict[str, Any]) -> list[str]:
    problems = []
    ssins = [i for i in patient.get("identifier", []) if i.get("system") == naming.SSIN]
    if not ssins:
        problems.append("no SSIN identifier (BePatient identifier[SSIN])")
    for identifier in ssins:
        if not SSIN_VALUE.fullmatch(identifier.get("value", "")):
            problems.append(f"SSIN {identifier.get('value')!r} is not 11 digits (be-inv-SSIN)")
    for gp in patient.get("generalPractitioner", []):
        if _target_type(gp) not in ("Organization", "Practitioner", "PractitionerRole"):
            problems.append(f"generalPractitioner {gp} is not a BeOrganization/BePractitioner/BePractitionerRole")
    if "managingOrganization" in patient and _target_type(patient["managingOrganization"]) != "Organization":
        problems.append("managingOrganization is not an Organization")
    return problems


def bepractitionerrole_problems(role: dict[str, Any]) -> list[str]:
    problems = []
    codings = [c for concept in role.get("code", []) for c in concept.get("coding", [])]
    for system, name in ((HCPARTY, "CD-HCPARTY"), (SNOMED, "SNOMED-CT")):
        if not any(c.get("system") == system and c.get("code") for c in codings):
            problems.append(f"code has no {name} coding with a code (BePractitionerRole.code[{name}])")
    if "practitioner" in role and _target_type(role["practitioner"]) != "Practitioner":
        problems.append("practitioner is not a Practitioner")
    if "organization" in role and _target_type(role["organization"]) != "Organization":
        problems.append("organization is not an Organization")
    return problems


def bepractitioner_problems(practitioner: dict[str, Any]) -> list[str]:
    problems = []
    if not practitioner.get("name"):
        problems.append("no name (BePractitioner.name 1..*)")
    for identifier in practitioner.get("identifier", []):
        value = identifier.get("value", "")
        if identifier.get("system") in NIHDI_SYSTEMS and not NIHDI_VALUE.fullmatch(value):
            problems.append(f"NIHDI {value!r} is not 11 or 8 digits (be-inv-NIHDI)")
        if identifier.get("system") == naming.SSIN and not SSIN_VALUE.fullmatch(value):
            problems.append(f"SSIN {value!r} is not 11 digits (be-inv-SSIN)")
    return problems


def test_the_belgian_checks_catch_what_they_should() -> None:
    assert bepatient_problems({"identifier": [{"system": naming.SSIN, "value": "85.07.30-033.28"}]}) == [
        "SSIN '85.07.30-033.28' is not 11 digits (be-inv-SSIN)"
    ]
    assert bepatient_problems({"identifier": [{"system": "urn:other", "value": "1"}]})
    only_snomed = {"code": [{"coding": [{"system": SNOMED, "code": "62247001"}]}]}
    assert bepractitionerrole_problems(only_snomed) == [
        "code has no CD-HCPARTY coding with a code (BePractitionerRole.code[CD-HCPARTY])"
    ]
    assert bepractitioner_problems({"identifier": [{"system": naming.NIHDI, "value": "1234"}]}) == [
        "no name (BePractitioner.name 1..*)",
        "NIHDI '1234' is not 11 or 8 digits (be-inv-NIHDI)",
    ]


def test_patients_are_bepatients(region: Region) -> None:
    report = {}
    for record in islice(region.patient_records(chronic_only=False), 300):
        problems = _structure_problems(record.patient) + bepatient_problems(record.patient)
        problems += [p for r in record.conditions + record.observations for p in r4_errors(r)]
        if problems:
            report[record.patient["id"]] = problems
    assert report == {}


def test_practitioners_and_roles_are_belgian(region: Region) -> None:
    report = {}
    for role in region.practitioner_roles:
        if problems := _structure_problems(role) + bepractitionerrole_problems(role):
            report[role["id"]] = problems
    for practitioner in region.practitioners:
        if problems := _structure_problems(practitioner) + bepractitioner_problems(practitioner):
            report[practitioner["id"]] = problems
    for resource in region.organizations + region.locations:
        if problems := _structure_problems(resource):
            report[resource["id"]] = problems
    assert report == {}


def test_region_patients_plan_into_conforming_resources(region: Region) -> None:
    programs = list(load_directory().values())
    planned = 0
    report = {}
    for record in region.patient_records(chronic_only=True):
        neighbourhood = region.neighbourhood(record.neighbourhood)
        ctx = context_from_resources(
            record.patient,
            record.conditions,
            record.observations,
            team=region.team_for(record),
            organization=f"Organization/{neighbourhood.organization_id}",
        )
        chosen = eligible_programs(programs, ctx, region.reference_date)
        if not chosen:
            continue
        for resource in plan_all(chosen, ctx, region.reference_date).resources:
            problems = r4_errors(resource) + conformance_errors(resource)
            if problems:
                report[f"{resource['resourceType']}/{resource['id']}"] = problems
        planned += 1
        if planned == 25:
            break
    assert planned == 25, "the demo region should have 25 patients that some programme takes"
    assert report == {}
