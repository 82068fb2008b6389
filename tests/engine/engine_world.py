"""A small neighbourhood written into a store: a team Organization with care givers coded as the
demo region codes them, and patients with their Conditions."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from careflow.access.principal import SYSTEM
from careflow.naming import CARE_ROLE_SYSTEM, EXT_NEIGHBOURHOOD, POPULATION_GROUP
from careflow.store.port import Repository

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
HEART_FAILURE = (SNOMED, "84114007")
COPD = (SNOMED, "13645005")
ORG = "team-binnenstad"
HOOD = "binnenstad"


ROLES = ("gp", "pharmacist", "home-nurse", "physiotherapist", "dietitian", "care-coach", "case-manager",
         "hf-educator", "diabetes-educator", "psychologist", "podiatrist")


def add_team(repo: Repository, per_role: int = 2) -> dict[str, list[str]]:
    """``per_role`` care givers per discipline in one neighbourhood team, their PractitionerRoles coded
    with careflow's role code system as the demo region codes them; role -> PractitionerRole ids."""
    out: dict[str, list[str]] = {}
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent({"resourceType": "Organization", "id": ORG, "name": "Buurtteam Binnenstad"})
        for role in ROLES:
            for i in range(per_role):
                key = f"{role}-{i}"
                uow.create_if_absent({"resourceType": "Practitioner", "id": f"prac-{key}", "active": True,
                                      "name": [{"family": f"Peeters{i}", "given": [role]}]})
                uow.create_if_absent({
                    "resourceType": "PractitionerRole", "id": f"role-{key}", "active": True,
                    "practitioner": {"reference": f"Practitioner/prac-{key}"},
                    "organization": {"reference": f"Organization/{ORG}"},
                    "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
                    "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": role}]}],
                })
                out.setdefault(role, []).append(f"role-{key}")
    return out


def add_patient(repo: Repository, pid: str, *, conditions: list[tuple[str, str]], onset: date,
                gp_role: str | None = None, group: str = "C", birth: str = "1948-04-02") -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": pid, "birthDate": birth, "gender": "female",
        "meta": {"tag": [{"system": POPULATION_GROUP, "code": group}]},
        "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
    }
    if gp_role:
        patient["generalPractitioner"] = [{"reference": f"PractitionerRole/{gp_role}"}]
    else:
        patient["managingOrganization"] = {"reference": f"Organization/{ORG}"}
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent(patient)
        for n, (system, code) in enumerate(conditions):
            add_condition(uow, pid, f"{pid}-cond-{n}", system, code, onset)


def add_condition(uow: Any, pid: str, cid: str, system: str, code: str, onset: date) -> None:
    uow.create_if_absent({
        "resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": onset.isoformat(),
    })


def add_weight(repo: Repository, pid: str, when: datetime, kg: float) -> str:
    """A body weight measured at home, written as any client would (server-assigned id)."""
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.create({
            "resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{pid}"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
            "effectiveDateTime": when.astimezone(timezone.utc).isoformat(),
            "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        })
    return stored.id


def edit_task(repo: Repository, task_id: str, **changes: Any) -> None:
    """A person changing a Task through the store (If-Match on the version read); a new status is
    reached the way a person would, through the legal intermediate ones (requested -> accepted ->
    in-progress -> completed), since the store enforces the Task state machine."""
    current = repo.read("Task", task_id)
    target = changes.get("status")
    for step in _route(str((current.resource or {}).get("status")), target)[:-1] if target else ():
        with repo.unit_of_work(SYSTEM) as uow:
            current, _ = uow.update({**(current.resource or {}), "status": step}, if_match=current.version)
    body = {**(current.resource or {}), **changes}
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(body, if_match=current.version)


def _route(old: str, new: str) -> list[str]:
    """The shortest legal status route from ``old`` to ``new`` (ends with ``new``; [new] if none)."""
    from careflow.triggers.task_states import allowed_next

    paths, seen = [[old]], {old}
    while paths:
        path = paths.pop(0)
        if path[-1] == new:
            return path[1:] or [new]
        for nxt in sorted(allowed_next(path[-1]) - seen):
            seen.add(nxt)
            paths.append([*path, nxt])
    return [new]


def all_of(repo: Repository, rtype: str) -> list[dict[str, Any]]:
    from careflow.engine.reading import search_all

    return [s.resource for s in search_all(repo, rtype, []) if s.resource]
