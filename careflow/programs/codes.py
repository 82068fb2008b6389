"""Code systems a programme may cite, and the well-formedness checks for their codes.

Authors write short system names (``icpc-2``, ``snomed``); FHIR wants canonical URIs. One table
maps both ways so the loader, the planner and the PlanDefinition compiler agree.
"""

from __future__ import annotations

import re
from typing import Callable

ICPC2 = "http://hl7.org/fhir/sid/icpc-2"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
HCPARTY = "https://www.ehealth.fgov.be/standards/fhir/core/CodeSystem/cd-hcparty"
CAREFLOW_ACTIVITY = "https://careflow.dev/fhir/CodeSystem/activity"
# careflow's own codes for measurements no international code system has (a foot-risk grade)
CAREFLOW_OBSERVATION = "https://careflow.dev/fhir/CodeSystem/observation"
ATC = "http://www.whocc.no/atc"  # WHO Anatomical Therapeutic Chemical classification (as FHIR names it)

# The answers the HL7 Belgium patient-monitoring IG sends for a patient-reported symptom (its value set
# symptom-severity, SNOMED CT), mildest first: a rule on "moderate or worse" lists the last two.
SYMPTOM_SEVERITY: tuple[tuple[str, str], ...] = (
    ("2667000", "Absent"),
    ("255604002", "Mild"),
    ("1255665007", "Moderate"),
    ("24484000", "Severe"),
)

SYSTEM_ALIASES: dict[str, str] = {
    "icpc-2": ICPC2,
    "icpc2": ICPC2,
    "snomed": SNOMED,
    "snomed-ct": SNOMED,
    "sct": SNOMED,
    "icd-10": ICD10,
    "icd10": ICD10,
    "loinc": LOINC,
    "ucum": UCUM,
    "cd-hcparty": HCPARTY,
    "hcparty": HCPARTY,
    "careflow": CAREFLOW_ACTIVITY,
    "careflow-observation": CAREFLOW_OBSERVATION,
    "atc": ATC,
}
SHORT_NAMES: dict[str, str] = {
    ICPC2: "icpc-2",
    SNOMED: "snomed",
    ICD10: "icd-10",
    LOINC: "loinc",
    UCUM: "ucum",
    HCPARTY: "cd-hcparty",
    CAREFLOW_ACTIVITY: "careflow",
    CAREFLOW_OBSERVATION: "careflow-observation",
    ATC: "atc",
}


def canonical_system(name: str) -> str | None:
    """The canonical URI for a short name or a URI we know; None when unknown."""
    key = name.strip()
    if key.lower() in SYSTEM_ALIASES:
        return SYSTEM_ALIASES[key.lower()]
    if key in SHORT_NAMES:
        return key
    return None


# Verhoeff tables: SNOMED CT identifiers end in a Verhoeff check digit.
_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def verhoeff_ok(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def loinc_check_ok(code: str) -> bool:
    """LOINC codes end in a mod-10 (Luhn) check digit after the hyphen."""
    body, check = code.split("-")
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(check)


def _snomed(code: str) -> str | None:
    if not re.fullmatch(r"[1-9]\d{5,17}", code):
        return "a SNOMED CT code is 6 to 18 digits"
    if code[-3:-1] not in ("00", "10", "01", "11", "02", "12"):
        return "a SNOMED CT code has a partition identifier (the 2nd and 3rd last digits) of a concept or description"
    if not verhoeff_ok(code):
        return "its check digit is wrong (SNOMED CT codes end in a Verhoeff check digit)"
    return None


def _loinc(code: str) -> str | None:
    if not re.fullmatch(r"(LP|LA|LL)?\d{1,7}-\d", code):
        return "a LOINC code looks like 29463-7"
    if code[:2].isdigit() and not loinc_check_ok(code):
        return "its check digit is wrong (LOINC codes end in a mod-10 check digit)"
    return None


def _icpc2(code: str) -> str | None:
    if not re.fullmatch(r"[ABDFHKLNPRSTUWXYZ](\d{2})(\.\d{1,2})?", code):
        return "an ICPC-2 code is a chapter letter and two digits, like K77"
    return None


def _icd10(code: str) -> str | None:
    if not re.fullmatch(r"[A-Z]\d{2}(\.\d{1,4})?", code):
        return "an ICD-10 code is a letter, two digits and an optional decimal part, like I50.9"
    return None


def _token(code: str) -> str | None:
    if not re.fullmatch(r"[a-z][a-z0-9-]*", code):
        return "the code must be lower-case letters, digits and hyphens"
    return None


def _atc(code: str) -> str | None:
    # anatomical group, therapeutic (2 digits), pharmacological, chemical subgroup, substance (2 digits)
    if not re.fullmatch(r"[ABCDGHJLMNPRSV](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?", code):
        return "an ATC code is a level of the classification, like C09, C09A, C09AA or C09AA05"
    return None


def _hcparty(code: str) -> str | None:
    if not re.fullmatch(r"[a-z][a-z0-9]*", code):
        return "a CD-HCPARTY code is lower-case letters and digits, like persphysician"
    return None


CHECKS: dict[str, Callable[[str], str | None]] = {
    SNOMED: _snomed,
    LOINC: _loinc,
    ICPC2: _icpc2,
    ICD10: _icd10,
    HCPARTY: _hcparty,
    CAREFLOW_ACTIVITY: _token,
    CAREFLOW_OBSERVATION: _token,
    ATC: _atc,
    UCUM: lambda code: None if code.strip() else "a UCUM unit may not be blank",
}


def code_problem(system: str, code: str) -> str | None:
    """A plain sentence on why ``code`` is not well-formed for ``system``; None when it is."""
    check = CHECKS.get(system)
    return check(code) if check else None
