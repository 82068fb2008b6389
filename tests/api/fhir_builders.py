"""Small resource builders shared by the API tests."""

from __future__ import annotations

from typing import Any


def patient(family: str = "Peeters", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["An"]}], "gender": "female",
            "birthDate": "1950-04-01", **extra}


def copd_condition(patient_ref: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": patient_ref},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": "R95", "display": "COPD"}]},
    }


def task(patient_ref: str, owner: str, status: str = "requested", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": status, "intent": "order", "for": {"reference": patient_ref},
            "owner": {"reference": owner}, "description": "Medication review", **extra}
