"""A small region for the dashboard tests, with every answer counted by hand.

Two teams of the region ``region-zl``: team A works in the neighbourhood Noord, team B in Zuid.
Every patient of a team has a CareTeam with the team's coach; those marked ``consent=False`` gave no
sharing Consent, so no shared view may count them.

Pyramid (patients who consented; in brackets those who did not):
    Noord: A 5, B 4 (+1), C 5 (+1), D 0          Zuid: A 6
Enrolment (today 3 June 2026; the last 12 months are 2025-07 .. 2026-06):
    heart-failure: Noord A (5) and Zuid A (1 of them) from 2026-03-01 to 2027-02-28: 6 a month from
      2026-03, team A's coach 5; one Noord C patient without consent active too (not counted), one
      Zuid patient's plan a draft (not counted).
    copd: the 5 Noord C from 2026-01-01 to 2026-04-30: 5 a month for 2026-01 .. 2026-04.
Work (home nurse's open Tasks): escalated 5 (team A) + 1 of a patient without consent + 1 completed;
    overdue 4 (team A).
Indicators (``hf-weight``): 2026-04 region 0.7 of 10, team A 0.5 of 6, team B 1.0 of 4 (suppressed);
    2026-05 region 9 of 11 (81.8 %), team A 1.0 of 6, team B 0.4 of 5; a pending report and an
    individual report are not shown.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from careflow.access.principal import SYSTEM
from careflow.naming import CARE_ROLE_SYSTEM, EXT_NEIGHBOURHOOD, POPULATION_GROUP, TASK_BUSINESS_STATUS
from careflow.region.consent import sharing_consent

REGION = "region-zl"
TODAY = date(2026, 6, 3)
MEASURE = "https://careflow.dev/fhir/Measure/hf-weight"
POP = "http://terminology.hl7.org/CodeSystem/measure-population"
STRAT = "https://careflow.dev/fhir/CodeSystem/stratifier"

COACH_A, COACH_B, REGION_COACH = "PractitionerRole/coach-a", "PractitionerRole/coach-b", "PractitionerRole/coach-region"
NURSE_A, GP_A = "PractitionerRole/nurse-a", "PractitionerRole/gp-a"


def _role(rid: str, org: str, discipline: str) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": rid, "active": True,
            "organization": {"reference": f"Organization/{org}"},
            "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": discipline}]}]}


def patient(uow: Any, pid: str, hood: str, team: str, group: str, *, consent: bool = True) -> None:
    uow.create_if_absent({"resourceType": "Patient", "id": pid, "birthDate": "1950-01-01",
                          "meta": {"tag": [{"system": POPULATION_GROUP, "code": group}]},
                          "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": hood}],
                          "managingOrganization": {"reference": f"Organization/{team}"},
                          "generalPractitioner": [{"reference": GP_A}]})
    coach = COACH_A if team == "team-a" else COACH_B
    uow.create_if_absent({"resourceType": "CareTeam", "id": f"ct-{pid}", "status": "active",
                          "subject": {"reference": f"Patient/{pid}"},
                          "participant": [{"member": {"reference": coach}}, {"member": {"reference": NURSE_A}}]})
    if consent:
        uow.create_if_absent(sharing_consent(resource_id=f"consent-{pid}", patient_ref=f"Patient/{pid}",
                                             gp_ref=GP_A, given=date(2025, 12, 1)))


def plan(uow: Any, pid: str, program: Any, start: str, end: str, status: str = "active") -> None:
    uow.create_if_absent({"resourceType": "CarePlan", "id": f"cp-{pid}-{program.id}", "status": status,
                          "intent": "plan", "subject": {"reference": f"Patient/{pid}"},
                          "instantiatesCanonical": [program.canonical], "period": {"start": start, "end": end}})


def task(uow: Any, tid: str, pid: str, performer: dict[str, Any], business: str, status: str = "requested") -> None:
    uow.create_if_absent({"resourceType": "Task", "id": tid, "status": status, "intent": "order",
                          "for": {"reference": f"Patient/{pid}"}, "performerType": [performer],
                          "businessStatus": {"coding": [{"system": TASK_BUSINESS_STATUS, "code": business}]}})


def _part(denominator: int, numerator: int) -> dict[str, Any]:
    out: dict[str, Any] = {"population": [
        {"code": {"coding": [{"system": POP, "code": code}]}, "count": n}
        for code, n in (("initial-population", denominator), ("denominator", denominator),
                        ("denominator-exclusion", 0), ("numerator", numerator))]}
    if denominator:
        out["measureScore"] = {"value": round(numerator / denominator, 4)}
    return out


def report(rid: str, month: str, region: tuple[int, int], teams: dict[str, tuple[int, int]],
           status: str = "complete") -> dict[str, Any]:
    start = date.fromisoformat(f"{month}-01")
    end = (start.replace(day=28).toordinal() + 4)
    last = date.fromordinal(end).replace(day=1).toordinal() - 1
    strata = [{"value": {"text": team}, **_part(*counts)} for team, counts in teams.items()]
    return {"resourceType": "MeasureReport", "id": rid, "status": status, "type": "summary", "measure": MEASURE,
            "date": "2026-06-02", "period": {"start": start.isoformat(), "end": date.fromordinal(last).isoformat()},
            "group": [{**_part(*region), "stratifier": [
                {"code": [{"coding": [{"system": STRAT, "code": "team"}]}], "stratum": strata}]}]}


def build(repo: Any, programs: dict[str, Any]) -> None:
    from careflow.planning.planner import role_concept

    hf, copd = programs["heart-failure"], programs["copd"]
    nurse = role_concept(hf, "home-nurse")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent({"resourceType": "Organization", "id": REGION, "name": "Zorgzaam Leuven"})
        for team, name in (("team-a", "Buurtteam Noord"), ("team-b", "Buurtteam Zuid")):
            uow.create_if_absent({"resourceType": "Organization", "id": team, "name": name,
                                  "partOf": {"reference": f"Organization/{REGION}"}})
        for loc, name, team in (("loc-noord", "Noord", "team-a"), ("loc-zuid", "Zuid", "team-b")):
            uow.create_if_absent({"resourceType": "Location", "id": loc, "name": name, "status": "active",
                                  "managingOrganization": {"reference": f"Organization/{team}"}})
        # a district inside Noord: not a neighbourhood of its own
        uow.create_if_absent({"resourceType": "Location", "id": "loc-noord-wijk", "name": "Noord-Wijk",
                              "managingOrganization": {"reference": "Organization/team-a"},
                              "partOf": {"reference": "Location/loc-noord"}})
        for rid, org, discipline in (("coach-a", "team-a", "care-coach"), ("coach-b", "team-b", "care-coach"),
                                     ("coach-region", REGION, "care-coach"), ("nurse-a", "team-a", "home-nurse"),
                                     ("gp-a", "team-a", "gp")):
            uow.create_if_absent(_role(rid, org, discipline))
        for i in range(5):
            patient(uow, f"na{i}", "Noord", "team-a", "A")
            plan(uow, f"na{i}", hf, "2026-03-01", "2027-02-28")
            task(uow, f"esc-{i}", f"na{i}", nurse, "escalated")
        for i in range(4):
            patient(uow, f"nb{i}", "Noord", "team-a", "B")
            task(uow, f"over-{i}", f"nb{i}", nurse, "overdue")
        patient(uow, "nb-x", "Noord", "team-a", "B", consent=False)
        for i in range(5):
            patient(uow, f"nc{i}", "Noord", "team-a", "C")
            plan(uow, f"nc{i}", copd, "2026-01-01", "2026-04-30")
        patient(uow, "nc-x", "Noord", "team-a", "C", consent=False)
        plan(uow, "nc-x", hf, "2026-03-01", "2027-02-28")
        task(uow, "esc-x", "nc-x", nurse, "escalated")
        task(uow, "esc-done", "na0", nurse, "escalated", status="completed")
        for i in range(6):
            patient(uow, f"za{i}", "Zuid", "team-b", "A")
        plan(uow, "za0", hf, "2026-03-01", "2027-02-28")
        plan(uow, "za1", hf, "2026-05-01", "2027-04-30", status="draft")
        uow.create_if_absent({"resourceType": "Measure", "id": "hf-weight", "url": MEASURE, "status": "active",
                              "title": "Weight recorded in the last 14 days"})
        uow.create_if_absent(report("mr-04", "2026-04", (10, 7), {"Organization/team-a": (6, 3), "Organization/team-b": (4, 4)}))
        uow.create_if_absent(report("mr-05", "2026-05", (11, 9), {"Organization/team-a": (6, 6), "Organization/team-b": (5, 2)}))
        uow.create_if_absent(report("mr-06", "2026-06", (11, 1), {"Organization/team-a": (6, 1)}, status="pending"))
        individual = report("mr-ind", "2026-03", (1, 1), {})
        uow.create_if_absent({**individual, "type": "individual", "subject": {"reference": "Patient/na0"}})
