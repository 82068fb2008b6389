"""A small world for the access rules: one GP practice, a care team, consent given or not.

Shared by the store's access contract tests and the API's leak-proof differential test.
"""

from __future__ import annotations

from typing import Any

from careflow.access.principal import SYSTEM, Principal, Scope

LAB = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
VITAL = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
EGFR = {"system": "http://loinc.org", "code": "62238-1"}


def role(rid: str, discipline: str, org: str = "org-1") -> Principal:
    return Principal("practitioner", f"PractitionerRole/{rid}", acts_as=(f"PractitionerRole/{rid}", f"Practitioner/{rid}-p"),
                     discipline=discipline, organizations=(f"Organization/{org}",))


GP = role("gp1", "gp")
NURSE = role("nurse1", "home-nurse")
PHARMACIST = role("pharm1", "pharmacist")
OUTSIDER = role("out1", "home-nurse", org="org-2")
COACH = role("coach1", "care-coach")


def patient_principal(pid: str) -> Principal:
    return Principal("patient", f"Patient/{pid}", patient=pid)


def consent(pid: str, *, status: str = "active", deny: list[str] | None = None, cid: str | None = None) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "permit"}
    if deny:
        provision["provision"] = [{"type": "deny", "actor": [
            {"role": {"text": "excluded"}, "reference": {"reference": ref}} for ref in deny]}]
    return {"resourceType": "Consent", "id": cid or f"consent-{pid}", "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"}, "dateTime": "2026-01-01",
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": provision}


def patient_resources(pid: str, *, consented: bool = True, team_end: str | None = None) -> list[dict[str, Any]]:
    member: dict[str, Any] = {"member": {"reference": "PractitionerRole/nurse1"}}
    if team_end:
        member["period"] = {"end": team_end}
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "name": [{"family": f"Fam{pid}", "given": ["Jan"]}],
         "identifier": [{"system": "urn:ssin", "value": f"ssin-{pid}"}],
         "generalPractitioner": [{"reference": "PractitionerRole/gp1"}]},
        {"resourceType": "CareTeam", "id": f"ct-{pid}", "status": "active", "subject": {"reference": f"Patient/{pid}"},
         "participant": [member, {"member": {"reference": "PractitionerRole/pharm1"}},
                         {"member": {"reference": "PractitionerRole/coach1"}}]},
        {"resourceType": "Observation", "id": f"lab-{pid}", "status": "final", "category": [{"coding": [LAB]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "subject": {"reference": f"Patient/{pid}"},
         "performer": [{"reference": "PractitionerRole/gp1"}]},
        {"resourceType": "Observation", "id": f"egfr-{pid}", "status": "final", "category": [{"coding": [LAB]}],
         "code": {"coding": [EGFR]}, "subject": {"reference": f"Patient/{pid}"}},
        {"resourceType": "Observation", "id": f"weight-{pid}", "status": "final", "category": [{"coding": [VITAL]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "subject": {"reference": f"Patient/{pid}"},
         "valueQuantity": {"value": 81.5, "unit": "kg"}, "performer": [{"reference": "PractitionerRole/nurse1"}]},
        {"resourceType": "CarePlan", "id": f"cp-{pid}", "status": "active", "intent": "plan",
         "subject": {"reference": f"Patient/{pid}"}},
        {"resourceType": "Task", "id": f"task-{pid}", "status": "requested", "intent": "order",
         "for": {"reference": f"Patient/{pid}"}, "basedOn": [{"reference": f"CarePlan/cp-{pid}"}],
         "owner": {"reference": "PractitionerRole/nurse1"}},
    ]
    if consented:
        out.insert(1, consent(pid))
    return out


def directory() -> list[dict[str, Any]]:
    return [{"resourceType": "PractitionerRole", "id": rid} for rid in ("gp1", "nurse1", "pharm1", "out1", "coach1")]


def load(repo: Any, resources: list[dict[str, Any]]) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        for r in resources:
            uow.update(dict(r))


def scoped(principal: Principal, *scopes: str) -> Principal:
    parsed = []
    for text in scopes:
        context, rest = text.split("/", 1)
        head, _, query = rest.partition("?")
        rtype, letters = head.split(".", 1)
        flt = tuple(tuple(p.split("=", 1)) for p in query.split("&")) if query else ()
        parsed.append(Scope(context, rtype, frozenset(letters), flt))  # type: ignore[arg-type]
    from dataclasses import replace

    return replace(principal, scopes=tuple(parsed))
