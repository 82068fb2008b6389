"""Team financing read from the store's history (memory, SQLite, PostgreSQL): real enrolment, the
shared whole not counted, and a past statement reproduced after later changes."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine_world import COPD, HEART_FAILURE, ORG, add_patient, add_team

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment
from careflow.engine.financing import financing
from careflow.fhir.search_query import parse_search
from careflow.planning import ids
from careflow.region.consent import sharing_consent

START = date(2025, 3, 1)
TEAM = f"Organization/{ORG}"


def _world(repo: Any, heart_failure: Any, copd: Any) -> dict[str, Any]:
    roles = add_team(repo)
    gp = roles["gp"][0]
    add_patient(repo, "fin-a", conditions=[HEART_FAILURE, COPD], onset=START - timedelta(days=400), gp_role=gp, group="B")
    add_patient(repo, "fin-b", conditions=[HEART_FAILURE], onset=START - timedelta(days=400), gp_role=gp)
    add_patient(repo, "fin-none", conditions=[HEART_FAILURE], onset=START - timedelta(days=400), gp_role=gp)
    with repo.unit_of_work(SYSTEM) as uow:
        for pid in ("fin-a", "fin-b"):  # fin-none never consented to sharing
            uow.create_if_absent(sharing_consent(resource_id=f"consent-{pid}", patient_ref=f"Patient/{pid}",
                                                 gp_ref=f"PractitionerRole/{gp}", given=START - timedelta(days=30)))
    programs = {"heart-failure": heart_failure, "copd": copd}
    enrolment.enrol(repo, programs, ["fin-a", "fin-b", "fin-none"], START)
    return {"gp": gp, "programs": programs}


def _team(statement: Any) -> tuple[int, int, Decimal]:
    (line,) = statement.teams
    assert line.team == TEAM
    return line.patients, line.days, line.amount


def test_two_programmes_pay_once_and_the_shared_whole_does_not_count(repo: Any, heart_failure: Any, copd: Any) -> None:
    _world(repo, heart_failure, copd)
    parts = repo.search(parse_search("CarePlan", [("patient", "fin-a")])).matches
    assert len(parts) == 3  # the whole and two programme parts
    st25, directory = financing(repo, 2025)
    # 1 March to 31 December 2025: 306 days each, EUR 83.84 each (fin-none has no consent)
    assert {p.patient: (p.days, p.amount) for p in st25.patients} == {
        "fin-a": (306, Decimal("83.84")), "fin-b": (306, Decimal("83.84"))}
    assert _team(st25) == (2, 612, Decimal("167.68"))
    assert directory.team(TEAM) == "Buurtteam Binnenstad"
    # 2026: the parts end on 1 March 2026 (P1Y, both ends inclusive): 31 + 28 + 1 = 60 days; the open-ended
    # shared whole would have given the year up to today
    st26, _ = financing(repo, 2026)
    assert {p.patient: p.days for p in st26.patients} == {"fin-a": 60, "fin-b": 60}
    assert {(g.key, g.patients) for g in st25.groups} == {("B", 1), ("C", 1)}


def test_a_past_statement_is_reproduced_after_death_and_an_error_are_recorded(repo: Any, heart_failure: Any,
                                                                               copd: Any) -> None:
    _world(repo, heart_failure, copd)
    issued = max(s.last_updated for s in repo.history(count=100000)[1])
    before, _ = financing(repo, 2025, issued)
    assert _team(before) == (2, 612, Decimal("167.68"))
    with repo.unit_of_work(SYSTEM) as uow:
        patient = dict(uow.read("Patient", "fin-a").resource or {})
        patient["deceasedDateTime"] = "2025-06-30"  # recorded late: died on 30 June
        uow.update(patient)
        part = dict(uow.read("CarePlan", ids.careplan_id("fin-b", "heart-failure")).resource or {})
        part["status"] = "entered-in-error"
        uow.update(part)
    now, _ = financing(repo, 2025)
    # fin-a: 1 March to 30 June = 31 + 30 + 31 + 30 = 122 days, EUR 33.42; fin-b: never enrolled after all
    assert {p.patient: (p.days, p.amount) for p in now.patients} == {"fin-a": (122, Decimal("33.42"))}
    again, _ = financing(repo, 2025, issued)
    assert again == before  # the statement as issued, unchanged by what was recorded after it
