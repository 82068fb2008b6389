"""The team-financing page: a care coach sees their own team, the region every team, a nurse nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from web_world import PID, careteam_member

from careflow.access.principal import SYSTEM
from careflow.api.login import claims_for
from careflow.naming import CARE_ROLE_SYSTEM

REGION = "region-zl"


def _client(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"])
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def _other_team_and_region(world: dict[str, Any]) -> str:
    """A second team with one enrolled, consented patient, both teams part of the region, and a
    care coach of the region's own Organization."""
    repo = world["repo"]
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent({"resourceType": "Organization", "id": REGION, "name": "Zorgzaam Leuven"})
        team = dict(uow.read("Organization", "team-binnenstad").resource or {})
        team["partOf"] = {"reference": f"Organization/{REGION}"}
        uow.update(team)
        uow.create_if_absent({"resourceType": "Organization", "id": "team-other", "name": "Buurtteam Anders",
                              "partOf": {"reference": f"Organization/{REGION}"}})
        uow.create_if_absent({"resourceType": "PractitionerRole", "id": "role-region-coach", "active": True,
                              "organization": {"reference": f"Organization/{REGION}"},
                              "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": "care-coach"}]}]})
        uow.create_if_absent({"resourceType": "Patient", "id": "pat-other",
                              "managingOrganization": {"reference": "Organization/team-other"}})
        uow.create_if_absent({"resourceType": "CarePlan", "id": "cp-other", "status": "active", "intent": "plan",
                              "subject": {"reference": "Patient/pat-other"},
                              "period": {"start": "2026-01-01", "end": "2026-12-31"}})
        uow.create_if_absent({"resourceType": "Consent", "id": "consent-other", "status": "active",
                              "patient": {"reference": "Patient/pat-other"}, "dateTime": "2025-12-01",
                              "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                              "provision": {"type": "permit"}})
    return "PractitionerRole/role-region-coach"


def test_the_coach_sees_their_team_only(world: dict[str, Any]) -> None:
    _other_team_and_region(world)
    coach = _client(world, careteam_member(world["repo"], PID, "care-coach"))
    page = coach.get("/app/financing?year=2026&lang=en")
    assert page.status_code == 200 and "<h1>Team financing 2026</h1>" in page.text
    # enrolled on 1 June 2026, the server's day is 3 June: 3 days, EUR 0.82
    assert "<td>Buurtteam Binnenstad</td><td class=\"num\">1</td><td class=\"num\">3</td><td class=\"num\">€0.82</td>" in page.text
    assert "Buurtteam Anders" not in page.text and "Your team only." in page.text
    assert "<td>&lt;5</td>" in page.text  # the breakdown's one-patient cells are suppressed
    csv = coach.get("/app/financing.csv?year=2026")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["team,enrolled_patients,patient_days,amount_eur",
                                     "Buurtteam Binnenstad,1,3,0.82", "total,1,3,0.82"]
    dutch = coach.get("/app/financing?year=2026&lang=nl")
    assert "<h1>Teamfinanciering 2026</h1>" in dutch.text and "€\u00a00,82" in dutch.text


def test_the_region_sees_every_team(world: dict[str, Any]) -> None:
    region = _client(world, _other_team_and_region(world))
    csv = region.get("/app/financing.csv?year=2026").text.splitlines()
    # lines in the order of the teams' ids; the other team's patient: 1 January to 3 June = 31 + 28 + 31 + 30 + 31 + 3 = 154 days, EUR 42.19
    assert csv[1:] == ["Buurtteam Binnenstad,1,3,0.82", "Buurtteam Anders,1,154,42.19", "total,2,157,43.01"]


def test_a_nurse_and_a_gp_are_refused(world: dict[str, Any]) -> None:
    for discipline in ("home-nurse", "gp"):
        client = _client(world, careteam_member(world["repo"], PID, discipline))
        page = client.get("/app/financing?year=2026&lang=en")
        assert page.status_code == 403 and "for the team coach and the region" in page.text
        assert client.get("/app/financing.csv?year=2026").status_code == 403


def test_a_bad_year_is_an_error_page(world: dict[str, Any]) -> None:
    coach = _client(world, careteam_member(world["repo"], PID, "care-coach"))
    assert coach.get("/app/financing?year=twenty").status_code == 400
    assert coach.get("/app/financing?year=2026&as_of=soon").status_code == 400
