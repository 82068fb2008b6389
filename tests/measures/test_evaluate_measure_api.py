"""``Measure/[id]/$evaluate-measure`` over the API: aggregates for the team coach and the region only,
drill-down narrowed to the patients the caller may see, bad input a 400 OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from careflow.access.principal import SYSTEM
from careflow.api.app import create_app
from careflow.api.login import claims_for
from careflow.auth.local import LocalIssuer
from careflow.auth.tokens import TokenVerifier
from careflow.fhir.r4_schema import r4_errors
from careflow.naming import CARE_ROLE_SYSTEM

from .world import TEAM, load

NOW = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)
MARCH = {"periodStart": "2026-03-01", "periodEnd": "2026-03-31"}
URL = "/fhir/Measure/dm-hba1c-6m/$evaluate-measure"


def _role(rid: str, org: str, code: str) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": rid, "active": True, "organization": {"reference": org},
            "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": code}]}]}


@pytest.fixture
def api(repo: Any, tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    load(repo)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Organization", "id": "region", "name": "Zorgzaam Leuven"})
        uow.update({"resourceType": "Organization", "id": "org-team-1", "name": "Buurtteam Een",
                    "partOf": {"reference": "Organization/region"}})
        uow.update({"resourceType": "Organization", "id": "org-team-2", "name": "Buurtteam Twee",
                    "partOf": {"reference": "Organization/region"}})
        uow.update(_role("role-gp-1", TEAM, "gp"))
        uow.update(_role("role-gp-2", "Organization/org-team-2", "gp"))
        uow.update(_role("role-coach-1", TEAM, "care-coach"))
        uow.update(_role("role-coach-2", "Organization/org-team-2", "care-coach"))
        uow.update(_role("role-region", "Organization/region", "care-coach"))
        uow.update(_role("role-nurse-1", TEAM, "home-nurse"))
    issuer = LocalIssuer(tmp_path / "keys.json")
    app = create_app(repo, [], now=lambda: NOW, auth=TokenVerifier([issuer.trusted()]))

    def headers(who: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issuer.mint(claims_for(repo, who, "user/*.rs" if who != "system" else None))}

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, headers


def _counts(report: dict[str, Any]) -> list[int]:
    return [p["count"] for p in report["group"][0]["population"]]


def test_population_for_the_region_and_the_coach_only(api: tuple[TestClient, Any]) -> None:
    client, headers = api
    region = client.get(URL, params=MARCH, headers=headers("PractitionerRole/role-region"))
    assert region.status_code == 200, region.text
    body = region.json()
    assert body["type"] == "summary" and body["status"] == "complete" and r4_errors(body) == []
    assert _counts(body) == [6, 6, 3, 2]  # as counted by hand in test_measures_store
    coach = client.get(URL, params=MARCH, headers=headers("PractitionerRole/role-coach-1")).json()
    assert _counts(coach) == [6, 6, 3, 2] and coach["reporter"] == {"reference": TEAM}
    other = client.get(URL, params=MARCH, headers=headers("PractitionerRole/role-coach-2")).json()
    assert _counts(other) == [0, 0, 0, 0] and "measureScore" not in other["group"][0]  # none of team 2's patients
    for who in ("PractitionerRole/role-nurse-1", "PractitionerRole/role-gp-1"):
        refused = client.get(URL, params=MARCH, headers=headers(who))
        assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"


def test_drill_down_follows_the_access_rules(api: tuple[TestClient, Any]) -> None:
    client, headers = api
    params = {**MARCH, "reportType": "subject-list"}
    gp = client.get(URL, params=params, headers=headers("PractitionerRole/role-gp-1")).json()  # the GMD holder: all six
    assert r4_errors(gp) == [] and _counts(gp) == [6, 6, 3, 2]
    numerator = next(c for c in gp["contained"] if c["id"] == "numerator")
    assert [e["item"]["reference"] for e in numerator["entry"]] == ["Patient/d1", "Patient/d2"]
    stranger = client.get(URL, params=params, headers=headers("PractitionerRole/role-gp-2")).json()
    assert _counts(stranger) == [0, 0, 0, 0]
    one = client.get(URL, params={**MARCH, "subject": "Patient/d1"}, headers=headers("PractitionerRole/role-gp-1"))
    assert one.status_code == 200 and one.json()["subject"] == {"reference": "Patient/d1"} and _counts(one.json()) == [1, 1, 0, 1]
    assert one.json()["type"] == "individual" and r4_errors(one.json()) == []
    tasks = client.get("/fhir/Measure/tasks-overdue-home-nurse/$evaluate-measure", params=params,
                       headers=headers("PractitionerRole/role-gp-1")).json()
    overdue = next(c for c in tasks["contained"] if c["id"] == "numerator")
    assert [e["item"]["reference"] for e in overdue["entry"]] == ["Task/t2", "Task/t3"] and r4_errors(tasks) == []
    hidden = client.get(URL, params={**MARCH, "subject": "Patient/d1"}, headers=headers("PractitionerRole/role-gp-2"))
    assert hidden.status_code == 404


@pytest.mark.parametrize("params, where", [
    ({"periodStart": "2026-03-01", "periodEnd": "2026-03-30"}, "periodEnd"),
    ({"periodStart": "2026-03-01"}, "periodStart"),
    ({**MARCH, "reportType": "everything"}, "reportType"),
    ({**MARCH, "color": "red"}, "color"),
    ({**MARCH, "subject": "Task/t1"}, "subject"),
    ({**MARCH, "subject": "Patient/d1", "reportType": "population"}, "subject"),
    ({"periodStart": "soon", "periodEnd": "later"}, "periodStart"),
])
def test_bad_parameters_are_a_400(api: tuple[TestClient, Any], params: dict[str, str], where: str) -> None:
    client, headers = api
    r = client.get(URL, params=params, headers=headers("system"))
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == [where]
    assert client.get("/fhir/Measure/no-such/$evaluate-measure", params=MARCH, headers=headers("system")).status_code == 404


def test_stored_reports_are_searchable_by_the_r4_parameters(api: tuple[TestClient, Any], repo: Any) -> None:
    from datetime import date

    from careflow.engine.measures import refresh
    from careflow.measures.loader import load_measures
    from careflow.measures.period import parse_period

    client, headers = api
    refresh(repo, load_measures(), parse_period("2026-03"), date(2026, 4, 2))
    system = headers("system")
    url = "https://careflow.dev/fhir/Measure/dm-hba1c-6m"
    found = client.get("/fhir/MeasureReport", params={"measure": url, "period": "2026-03", "status": "complete"},
                       headers=system).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["dm-hba1c-6m-2026-03"]
    assert client.get("/fhir/MeasureReport", params={"measure": url, "period": "2026-05"}, headers=system).json()["total"] == 0
    by_id = client.get("/fhir/MeasureReport", params={"identifier": "https://careflow.dev/fhir/sid/measure-report|dm-hba1c-6m-2026-03"},
                       headers=system).json()
    assert by_id["total"] == 1
    # Measures are directory data: any signed-in caller finds them by url and version
    gp = headers("PractitionerRole/role-gp-1")
    measures = client.get("/fhir/Measure", params={"url": url, "version": "2026.1", "status": "active"}, headers=gp).json()
    assert [e["resource"]["id"] for e in measures["entry"]] == ["dm-hba1c-6m"]
    # the stored summaries name no patient: the API serves them to the system only ($evaluate-measure serves people)
    assert client.get("/fhir/MeasureReport", params={"measure": url}, headers=gp).json()["total"] == 0
