"""A small care network used by the search contract tests (ids chosen so expectations read easily)."""

from __future__ import annotations

from careflow.access.principal import SYSTEM

SSIN = "https://ssin"
NIHDI = "https://nihdi"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
TASK_SID = "https://careflow.dev/fhir/sid/task"
COPD = "https://careflow.dev/fhir/PlanDefinition/copd"
HF = "https://careflow.dev/fhir/PlanDefinition/heart-failure"
SCT = "http://snomed.info/sct"


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def concept(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


RESOURCES: list[dict] = [
    {"resourceType": "Patient", "id": "pat-a", "identifier": [{"system": SSIN, "value": "111"}],
     "name": [{"family": "Peeters", "given": ["Jan"]}], "birthDate": "1950-03-04", "gender": "male",
     "telecom": [{"system": "email", "value": "jan@example.org"}, {"system": "phone", "value": "016 12 34 56"}],
     "address": [{"city": "Kessel-Lo", "postalCode": "3010"}], "meta": {"tag": [{"system": "https://tags", "code": "vip"}]}},
    {"resourceType": "Patient", "id": "pat-b", "identifier": [{"system": SSIN, "value": "222"}],
     "name": [{"family": "Müller", "given": ["Anna", "Maria"]}], "birthDate": "1962-11", "gender": "female"},
    {"resourceType": "Patient", "id": "pat-c", "name": [{"family": "Peetersen"}], "birthDate": "1971",
     "gender": "other"},
    {"resourceType": "Practitioner", "id": "pr-1", "identifier": [{"system": NIHDI, "value": "1"}],
     "name": [{"family": "Janssens", "prefix": ["Dr"]}]},
    {"resourceType": "Practitioner", "id": "pr-2", "identifier": [{"system": NIHDI, "value": "2"}],
     "name": [{"family": "Claes"}]},
    {"resourceType": "Organization", "id": "org-1", "name": "Wijkgezondheidscentrum Leuven",
     "identifier": [{"system": "https://org", "value": "o1"}]},
    {"resourceType": "PractitionerRole", "id": "role-1", "practitioner": ref("Practitioner/pr-1"),
     "organization": ref("Organization/org-1"), "code": [concept("https://roles", "gp")]},
    {"resourceType": "CareTeam", "id": "ct-a", "status": "active", "subject": ref("Patient/pat-a"),
     "participant": [{"member": ref("Practitioner/pr-1")}, {"member": ref("PractitionerRole/role-1")}]},
    {"resourceType": "Goal", "id": "goal-a", "lifecycleStatus": "active", "subject": ref("Patient/pat-a"),
     "description": {"text": "walk"}},
    {"resourceType": "CarePlan", "id": "cp-a", "status": "active", "intent": "plan", "subject": ref("Patient/pat-a"),
     "instantiatesCanonical": [f"{COPD}|1.0"], "careTeam": [ref("CareTeam/ct-a")], "goal": [ref("Goal/goal-a")],
     "category": [concept("https://cat", "copd")]},
    {"resourceType": "CarePlan", "id": "cp-b", "status": "draft", "intent": "plan", "subject": ref("Patient/pat-b"),
     "instantiatesCanonical": [HF]},
    {"resourceType": "CarePlan", "id": "cp-c", "status": "completed", "intent": "plan", "subject": ref("Group/grp-1"),
     "basedOn": [ref("CarePlan/cp-a")], "partOf": [ref("CarePlan/cp-a")], "replaces": [ref("CarePlan/cp-b")],
     "addresses": [ref("Condition/c1")], "period": {"start": "2024-01-01"}, "encounter": ref("Encounter/enc-1"),
     "instantiatesUri": ["https://example.org/protocol"],
     "activity": [{"reference": ref("Task/t3")},
                  {"detail": {"status": "scheduled", "code": concept("https://act", "walk"),
                              "scheduledPeriod": {"start": "2024-07-01", "end": "2024-07-31"},
                              "performer": [ref("Practitioner/pr-2")]}}]},
    {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order", "priority": "routine",
     "for": ref("Patient/pat-a"), "basedOn": [ref("CarePlan/cp-a")], "owner": ref("Practitioner/pr-1"),
     "code": concept("https://tasks", "spiro"), "businessStatus": concept("https://bs", "on-time"),
     "identifier": [{"system": TASK_SID, "value": "cp-a/1/1"}], "focus": ref("Goal/goal-a"),
     "restriction": {"period": {"end": "2024-05-10"}}, "requester": ref("Practitioner/pr-1"),
     "performerType": [concept(SCT, "158965000")], "authoredOn": "2024-05-01",
     "lastModified": "2024-05-02T10:00:00Z", "executionPeriod": {"start": "2024-05-01", "end": "2024-05-10"},
     "instantiatesCanonical": f"{COPD.replace('PlanDefinition', 'ActivityDefinition')}-spiro|1.0"},
    {"resourceType": "Task", "id": "t2", "status": "completed", "intent": "order", "priority": "urgent",
     "for": ref("Patient/pat-a"), "basedOn": [ref("CarePlan/cp-a")], "owner": ref("Practitioner/pr-2"),
     "code": concept("https://tasks", "educ"), "restriction": {"period": {"end": "2024-06-01T12:00:00+02:00"}},
     "partOf": [ref("Task/t1")], "requester": ref("Practitioner/pr-2"), "performerType": [concept(SCT, "106292003")],
     "authoredOn": "2024-05-20T09:00:00+02:00", "lastModified": "2024-06-01T08:00:00Z",
     "executionPeriod": {"start": "2024-06-01"}},
    {"resourceType": "Task", "id": "t3", "status": "requested", "intent": "order", "priority": "routine",
     "for": ref("Patient/pat-b"), "basedOn": [ref("CarePlan/cp-b")], "owner": ref("Practitioner/pr-1"),
     "code": concept("https://tasks", "spiro"), "businessStatus": concept("https://bs", "overdue")},
    {"resourceType": "Observation", "id": "o1", "status": "final", "subject": ref("Patient/pat-a"),
     "code": concept(LOINC, "29463-7"), "category": [concept("http://cat", "vital-signs")],
     "valueQuantity": {"value": 82.5, "unit": "kg", "system": UCUM, "code": "kg"},
     "effectiveDateTime": "2024-05-01T08:30:00Z"},
    {"resourceType": "Observation", "id": "o2", "status": "final", "subject": ref("Patient/pat-a"),
     "code": concept(LOINC, "8867-4"), "category": [concept("http://cat", "vital-signs")],
     "valueQuantity": {"value": 72, "unit": "/min", "system": UCUM, "code": "/min"},
     "effectivePeriod": {"start": "2024-05-02", "end": "2024-05-03"}},
    {"resourceType": "Observation", "id": "o3", "status": "final", "subject": ref("Patient/pat-b"),
     "code": concept(LOINC, "29463-7"), "valueQuantity": {"value": 5.4, "unit": "kg", "system": UCUM, "code": "kg"},
     "effectiveDateTime": "2024-04-30"},
    {"resourceType": "Condition", "id": "c1", "subject": ref("Patient/pat-a"), "code": concept("https://icpc", "R95"),
     "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")},
    {"resourceType": "PlanDefinition", "id": "pd-copd", "url": COPD, "version": "1.0", "status": "active",
     "name": "CopdProgramme"},
    {"resourceType": "ActivityDefinition", "id": "ad-1", "url": f"{COPD.replace('PlanDefinition', 'ActivityDefinition')}-spiro",
     "status": "draft", "name": "Spirometry"},
    {"resourceType": "Location", "id": "loc-1", "name": "Leuven Noord"},
]


def load(repo) -> None:  # type: ignore[no-untyped-def]
    with repo.unit_of_work(SYSTEM) as uow:
        for body in RESOURCES:
            uow.update(body)
