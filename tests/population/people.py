"""Small FHIR builders for the stratification tests: one inhabitant at a time, dates spelt out."""

from __future__ import annotations

from typing import Any

from careflow.naming import EXT_NEIGHBOURHOOD
from careflow.programs.codes import CAREFLOW_OBSERVATION, ICPC2, LOINC, SNOMED

ATC = "http://www.whocc.no/atc"
CONDITION_CODES = {
    "copd": (ICPC2, "R95"), "heart-failure": (SNOMED, "84114007"), "diabetes": (ICPC2, "T90"),
    "dementia": (ICPC2, "P70"), "kidney": (SNOMED, "709044004"), "asthma": (ICPC2, "R96"),
}


def patient(pid: str, birth: str, *, hood: str = "Heverlee", gp: str = "PractitionerRole/role-gp-1",
            **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "active": True,
            "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": hood}],
            "generalPractitioner": [{"reference": gp}], **extra}


def condition(pid: str, kind: str, onset: str = "2015-01-01", *, status: str = "active", n: int = 0) -> dict[str, Any]:
    system, code = CONDITION_CODES[kind]
    return {"resourceType": "Condition", "id": f"{pid}-{kind}{n or ''}",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": status}]},
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": onset}


def belrai(pid: str, score: int, day: str, n: int = 0) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"{pid}-belrai{n}", "status": "final",
            "code": {"coding": [{"system": CAREFLOW_OBSERVATION, "code": "belrai-screener-score"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day, "valueInteger": score}


def egfr(pid: str, value: float, day: str, n: int = 0) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"{pid}-egfr{n}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "62238-1"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": f"{day}T09:00:00+01:00",
            "valueQuantity": {"value": value, "unit": "mL/min/{1.73_m2}", "system": "http://unitsofmeasure.org",
                              "code": "mL/min/{1.73_m2}"}}


def stay(pid: str, start: str, end: str, *, cls: str = "IMP", n: int = 0) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": f"{pid}-stay{n}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
            "subject": {"reference": f"Patient/{pid}"}, "period": {"start": start, "end": end}}


def medicine(pid: str, atc: str, *, start: str = "2026-01-01", end: str | None = None, n: int = 0) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "MedicationStatement", "id": f"{pid}-med{n}", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectivePeriod": period}
