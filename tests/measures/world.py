"""A small population for the indicator tests, each fact dated so the hand counts in the tests hold.

The measurement period of the tests is March 2026 (1-31 March): "the last 14 days" starts on
17 March, "6 months" on 30 September 2025, "12 months" on 31 March 2025, the flu season on 1 October 2025.
"""

from __future__ import annotations

from typing import Any

from careflow.access.principal import SYSTEM
from careflow.naming import EXT_NEIGHBOURHOOD, POPULATION_GROUP, TASK_BUSINESS_STATUS

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
TEAM = "Organization/org-team-1"
PROGRAMS = {"dm": "https://careflow.dev/fhir/PlanDefinition/diabetes-type-2|1.1.0",
            "hf": "https://careflow.dev/fhir/PlanDefinition/heart-failure|1.2.0",
            "copd": "https://careflow.dev/fhir/PlanDefinition/copd|1.2.0"}


def patient(pid: str, *, hood: str = "Heverlee", deceased: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": pid, "active": True, "birthDate": "1950-01-01",
                           "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": hood}],
                           "generalPractitioner": [{"reference": "PractitionerRole/role-gp-1"}]}
    if deceased:
        out["deceasedDateTime"] = deceased
    return out


def plan(pid: str, program: str, *, status: str = "active", start: str = "2025-06-01", end: str = "2026-06-01") -> dict[str, Any]:
    return {"resourceType": "CarePlan", "id": f"cp-{pid}-{program}", "status": status, "intent": "plan",
            "instantiatesCanonical": [PROGRAMS[program]], "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": start, "end": end}}


def group(pid: str, g: str) -> dict[str, Any]:
    return {"resourceType": "RiskAssessment", "id": f"strat-pyramid-{pid}", "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "prediction": [{"outcome": {"coding": [{"system": POPULATION_GROUP, "code": g}]}}]}


def obs(pid: str, code: str, day: str, value: float, unit: str = "%", n: int = 0) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"obs-{pid}-{code}-{n}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"{day}T10:00:00+01:00",
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def med(pid: str, atc: str, *, status: str = "active", kind: str = "MedicationStatement", n: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": kind, "id": f"med-{pid}-{n}", "status": status,
                           "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]},
                           "subject": {"reference": f"Patient/{pid}"}}
    if kind == "MedicationRequest":
        out["intent"] = "order"
    if status == "not-taken":
        out["statusReason"] = [{"text": "intolerance"}]
    return out


def task(tid: str, pid: str, *, code: tuple[str, str] = (SNOMED, "182836005"), status: str = "completed",
         modified: str = "2026-03-10", due: str = "2026-03-10", performer: str = "158997000",
         business: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Task", "id": tid, "status": status, "intent": "order",
                           "code": {"coding": [{"system": code[0], "code": code[1]}]},
                           "for": {"reference": f"Patient/{pid}"}, "lastModified": modified,
                           "performerType": [{"coding": [{"system": SNOMED, "code": performer}]}],
                           "restriction": {"period": {"start": "2026-03-01", "end": due}}}
    if business:
        out["businessStatus"] = {"coding": [{"system": TASK_BUSINESS_STATUS, "code": business}]}
    return out


def resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": "org-team-1", "name": "Buurtteam Een"},
        {"resourceType": "PractitionerRole", "id": "role-gp-1", "organization": {"reference": TEAM}},
    ]
    # diabetes
    for pid, hood, g in (("d1", "Heverlee", "B"), ("d2", "Kessel-Lo", "A"), ("d3", "Heverlee", "C"), ("d4", "Heverlee", "C"),
                         ("d5", "Heverlee", "B"), ("d6", "Heverlee", "C"), ("d7", "Heverlee", "C"), ("d8", "Heverlee", "C")):
        out += [patient(pid, hood=hood, deceased="2026-03-10" if pid == "d4" else None), group(pid, g)]
    out += [plan(p, "dm") for p in ("d1", "d2", "d3", "d4", "d5", "d8")]
    out += [plan("d6", "dm", status="draft"), plan("d7", "dm", status="completed", start="2025-01-01", end="2026-02-28")]
    out += [obs("d1", "4548-4", "2025-09-30", 6.8), obs("d2", "4548-4", "2026-03-15", 7.5),
            obs("d3", "4548-4", "2025-09-29", 6.5), obs("d4", "4548-4", "2026-03-01", 6.0),
            obs("d5", "4548-4", "2026-03-01", 6.0), obs("d8", "4548-4", "2026-03-01", 6.0),
            obs("d6", "4548-4", "2026-03-01", 6.0), obs("d7", "4548-4", "2026-02-01", 6.0)]
    out += [{"resourceType": "Condition", "id": "cond-d5-palliative",
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
             "code": {"coding": [{"system": SNOMED, "code": "103735009"}]}, "subject": {"reference": "Patient/d5"}},
            {"resourceType": "Consent", "id": "consent-d8", "status": "inactive",
             "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
             "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}], "patient": {"reference": "Patient/d8"}}]
    out += [med("d1", "C10AA05"), med("d2", "C10BA02", kind="MedicationRequest"), med("d3", "C10AA01", status="stopped")]
    # heart failure
    for pid in ("h1", "h2", "h3"):
        out += [patient(pid), group(pid, "B"), plan(pid, "hf")]
    out += [obs("h1", "29463-7", "2026-03-17", 80, "kg"), obs("h2", "29463-7", "2026-03-16", 80, "kg")]
    out += [med("h1", "C09DX04", n=1), med("h1", "C07AB07", n=2), med("h1", "C03DA01", n=3), med("h1", "A10BK01", n=4),
            med("h2", "C09AA05", n=1), med("h2", "C07AB07", n=2), med("h2", "C03DA01", n=3),
            med("h2", "A10BK01", status="not-taken", n=4),
            med("h3", "C09AA05", n=1), med("h3", "C07AB07", n=2), med("h3", "A10BK01", n=4)]
    # COPD
    for pid in ("c1", "c2", "c3"):
        out += [patient(pid, hood="Wilsele"), group(pid, "C"), plan(pid, "copd")]
    flu = (SNOMED, "86198006")
    out += [task("flu-c1", "c1", code=flu, modified="2025-10-01", due="2025-12-31", performer="62247001"),
            task("flu-c2", "c2", code=flu, modified="2025-09-30", due="2025-12-31", performer="62247001"),
            obs("c3", "20150-9", "2025-03-31", 2.1, "L")]
    # home-nurse Tasks of h1, due in March unless said
    out += [task("t1", "h1"), task("t2", "h1", modified="2026-03-11", business="overdue"),
            task("t3", "h1", status="requested", due="2026-03-20", business="escalated"),
            task("t4", "h1", status="cancelled", due="2026-03-25"), task("t5", "h1", status="requested", due="2026-04-01")]
    return out


def load(repo: Any) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        for r in resources():
            uow.update(r)
