"""The region's dashboard on a small region counted by hand (``dashboard_region``): what the region
and a team coach see, the <5 rule at 4 and 5, consent, who is refused, CSV = chart, a real browser."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest
from dashboard_region import COACH_A, GP_A, NURSE_A, REGION_COACH, TODAY, build, patient
from fastapi.testclient import TestClient
from web_world import ARTIFACTS, CHROMIUM

from careflow.access.principal import SYSTEM

MONTHS = ["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12",
          "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]


@pytest.fixture
def region(tmp_path: Path) -> Any:
    from careflow.api.app import create_app
    from careflow.auth.local import LocalIssuer
    from careflow.auth.tokens import TokenVerifier
    from careflow.programs.loader import load_directory
    from careflow.store.database import make_engine, upgrade
    from careflow.store.sql import SqlRepository

    url = f"sqlite:///{tmp_path / 'dash.db'}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    programs = load_directory(None)
    build(repo, programs)
    issuer = LocalIssuer(tmp_path / "issuer-keys.json")
    app = create_app(repo, programs, auth=TokenVerifier([issuer.trusted()]),
                     now=lambda: datetime.combine(TODAY, time(9), tzinfo=timezone.utc))
    yield {"app": app, "repo": repo, "issuer": issuer, "programs": programs}
    repo.close()


def _client(region: dict[str, Any], who: str) -> TestClient:
    from careflow.api.login import claims_for

    client = TestClient(region["app"])
    token = region["issuer"].mint(claims_for(region["repo"], who, None))
    assert client.post("/app/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client


def _csv(client: TestClient, panel: str) -> list[list[str]]:
    got = client.get(f"/app/dashboard/{panel}.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv"), got.text
    return list(csv.reader(io.StringIO(got.text)))


def _zeros(n: int) -> list[str]:
    return ["0"] * n


def test_the_region_sees_every_team_counted_by_hand(region: dict[str, Any]) -> None:
    client = _client(region, REGION_COACH)
    # Noord B has 4 consented patients (<5) and one without consent; C 5 consented and one without
    assert _csv(client, "pyramid") == [["row", "A", "B", "C", "D"], ["Noord", "5", "<5", "5", "0"],
                                       ["Zuid", "6", "0", "0", "0"]]
    enrolment = {r[0]: r[1:] for r in _csv(client, "enrolment")}
    assert enrolment["row"] == MONTHS
    assert enrolment["heart-failure"] == _zeros(8) + ["6", "6", "6", "6"]  # the draft and the unconsented left out
    assert enrolment["copd"] == _zeros(6) + ["5", "5", "5", "5", "0", "0"]
    assert enrolment["diabetes-type-2"] == _zeros(12)
    # the home nurse's: 5 escalated (not the one of a patient without consent, nor the completed one), 4 overdue;
    # the disciplines with no late work are left out
    assert _csv(client, "work") == [["row", "escalated", "overdue"], ["home-nurse", "5", "<5"]]
    assert _csv(client, "indicators") == [
        ["indicator", "team", "period", "score_percent"],
        ["hf-weight", "Buurtteam Noord", "2026-04", "50.0"], ["hf-weight", "Buurtteam Noord", "2026-05", "100.0"],
        ["hf-weight", "Buurtteam Zuid", "2026-04", ""],  # a denominator of 4: no score
        ["hf-weight", "Buurtteam Zuid", "2026-05", "40.0"],
        ["hf-weight", "region", "2026-04", "70.0"], ["hf-weight", "region", "2026-05", "81.8"]]
    page = client.get("/app/dashboard?lang=en")
    assert page.status_code == 200 and "The whole region." in page.text
    assert "<h3 id=\"indicator-1\">Weight recorded in the last 14 days</h3>" in page.text  # the Measure's title


def test_the_coach_sees_only_their_team(region: dict[str, Any]) -> None:
    client = _client(region, COACH_A)
    assert _csv(client, "pyramid") == [["row", "A", "B", "C", "D"], ["Noord", "5", "<5", "5", "0"]]
    assert {r[0]: r[1:] for r in _csv(client, "enrolment")}["heart-failure"] == _zeros(8) + ["5"] * 4
    assert [r[1] for r in _csv(client, "indicators")[1:]] == ["Buurtteam Noord"] * 2 + ["region"] * 2
    page = client.get("/app/dashboard?lang=en")
    assert "Your team only." in page.text and "Zuid" not in page.text
    assert 'href="/app/dashboard"' in page.text  # in the navigation


def test_suppression_at_four_and_five_and_consent_counts(region: dict[str, Any]) -> None:
    client = _client(region, REGION_COACH)
    assert _csv(client, "pyramid")[1] == ["Noord", "5", "<5", "5", "0"]
    with region["repo"].unit_of_work(SYSTEM) as uow:
        patient(uow, "nb4", "Noord", "team-a", "B")  # a fifth consented B patient: now shown
    assert _csv(client, "pyramid")[1] == ["Noord", "5", "5", "5", "0"]
    with region["repo"].unit_of_work(SYSTEM) as uow:  # one C patient withdraws consent: 4, suppressed
        consent = dict(uow.read("Consent", "consent-nc0").resource or {})
        uow.update({**consent, "status": "inactive"})
    assert _csv(client, "pyramid")[1] == ["Noord", "5", "5", "<5", "0"]
    assert {r[0]: r[1:] for r in _csv(client, "enrolment")}["copd"][6:10] == ["<5"] * 4


@pytest.mark.parametrize("who", [NURSE_A, GP_A])
def test_other_roles_are_refused(region: dict[str, Any], who: str) -> None:
    client = _client(region, who)
    page = client.get("/app/dashboard?lang=en")
    assert page.status_code == 403 and "for the team coach and the region" in page.text
    for panel in ("pyramid", "enrolment", "work", "indicators"):
        assert client.get(f"/app/dashboard/{panel}.csv").status_code == 403
    assert 'href="/app/dashboard"' not in client.get("/app/?lang=en").text


def test_an_unknown_chart_is_a_page_not_a_stack_trace(region: dict[str, Any]) -> None:
    assert _client(region, REGION_COACH).get("/app/dashboard/secrets.csv").status_code == 404


def _table(html: str, heading_id: str) -> list[list[str]]:
    """The figures table of the section whose heading has ``heading_id``, as text cells."""
    section = html.split(f'id="{heading_id}"', 1)[1].split("</section>", 1)[0]
    table = section.split("<table", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [[re.sub(r"<[^>]+>", "", c).replace("&lt;", "<").strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)]
            for r in rows]


def test_the_csv_holds_the_numbers_the_charts_show(region: dict[str, Any]) -> None:
    client = _client(region, REGION_COACH)
    html = client.get("/app/dashboard?lang=en").text
    pyramid = _table(html, "pyramid-h")
    assert [r[1:] for r in pyramid[1:]] == [r[1:] for r in _csv(client, "pyramid")[1:]]
    # each pyramid's bars say the same as its row (the text of the SVG, A to D)
    noord = html.split('id="pyramid-1"', 1)[1].split("</svg>", 1)[0]
    assert re.findall(r'class="value">([^<]*(?:&lt;5)?)</text>', noord) == ["A 5", "B &lt;5", "C 5", "D 0"]
    enrolment = _table(html, "enrolment-h")
    titles = {p.id: p.title.en for p in region["programs"].values()}
    assert {r[0]: r[1:] for r in enrolment[1:]} == {titles[r[0]]: r[1:] for r in _csv(client, "enrolment")[1:]}
    work = _table(html, "work-h")
    assert [r[1:] for r in work[1:]] == [r[1:] for r in _csv(client, "work")[1:]]
    indicators = _table(html, "indicators-h")
    assert indicators[1:] == [["Buurtteam Noord", "50.0%", "100.0%"], ["Buurtteam Zuid", "–", "40.0%"],
                              ["Region average", "70.0%", "81.8%"]]
    # the line chart draws a marker per known score: 2 + 1 + 2
    chart = html.split('id="indicator-chart-1"', 1)[1].split("</svg>", 1)[0]
    assert chart.count("<circle") + chart.count("<rect") + chart.count("<path") == 5


def test_the_page_speaks_dutch_and_french(region: dict[str, Any]) -> None:
    client = _client(region, REGION_COACH)
    assert "<h1>Dashboard</h1>" in client.get("/app/dashboard?lang=nl").text
    assert "Bevolkingspiramide per buurt" in client.get("/app/dashboard?lang=nl").text
    assert "Pyramide de la population par quartier" in client.get("/app/dashboard?lang=fr").text


def test_memory_and_sql_stores_agree(region: dict[str, Any]) -> None:
    """The memory twin's narrowing (consent, summaries) gives the same panels as the SQL store's."""
    from careflow.access.principal import Principal
    from careflow.store.memory import MemoryRepository
    from careflow.web.dashboard import dashboard
    from careflow.web.pages import role_codes

    memory = MemoryRepository()
    build(memory, region["programs"])
    for who in (Principal(kind="practitioner", id=REGION_COACH, acts_as=(REGION_COACH,), discipline="care-coach",
                          organizations=("Organization/region-zl",)),
                Principal(kind="practitioner", id=COACH_A, acts_as=(COACH_A,), discipline="care-coach",
                          organizations=("Organization/team-a",))):
        codes = role_codes(region["programs"])
        a = dashboard(memory, who, region["programs"], codes, TODAY, "en")
        b = dashboard(region["repo"], who, region["programs"], codes, TODAY, "en")
        assert a == b


def test_postgresql_gives_the_same_panels(region: dict[str, Any]) -> None:
    """The same region on PostgreSQL (when CAREFLOW_TEST_DATABASE_URL is set): the same panels."""
    import os

    from careflow.access.principal import Principal
    from careflow.store.database import make_engine, scratch_schema
    from careflow.store.sql import SqlRepository
    from careflow.web.dashboard import dashboard
    from careflow.web.pages import role_codes

    base = os.environ.get("CAREFLOW_TEST_DATABASE_URL")
    if not base:
        pytest.skip("CAREFLOW_TEST_DATABASE_URL is not set")
    with scratch_schema(base, "cf_dash") as url:
        pg = SqlRepository(make_engine(url))
        try:
            build(pg, region["programs"])
            codes = role_codes(region["programs"])
            for who in (Principal(kind="practitioner", id=REGION_COACH, acts_as=(REGION_COACH,), discipline="care-coach",
                                  organizations=("Organization/region-zl",)),
                        Principal(kind="practitioner", id=COACH_A, acts_as=(COACH_A,), discipline="care-coach",
                                  organizations=("Organization/team-a",))):
                assert dashboard(pg, who, region["programs"], codes, TODAY, "en") == \
                    dashboard(region["repo"], who, region["programs"], codes, TODAY, "en")
        finally:
            pg.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_in_a_real_browser(region: dict[str, Any], tmp_path: Path) -> None:
    import socket
    import threading
    import time as timer

    import uvicorn
    from playwright.sync_api import sync_playwright

    from careflow.api.login import claims_for
    from careflow.web.session import COOKIE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(region["app"], host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = timer.monotonic() + 30
    while not srv.started and timer.monotonic() < deadline:
        timer.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                context = browser.new_context(accept_downloads=True)
                token = region["issuer"].mint(claims_for(region["repo"], REGION_COACH, None))
                context.add_cookies([{"name": COOKIE, "value": token, "url": f"{base}/app/"}])
                page = context.new_page()
                page.goto(f"{base}/app/?lang=en")
                page.get_by_role("link", name="Dashboard").click()
                assert page.url.startswith(f"{base}/app/dashboard")
                # every chart is an image with a name, drawn at a size one can read
                for name in ("Population pyramid of Noord", "Enrolment per programme, per month",
                             "Escalations and overdue work per discipline", "Weight recorded in the last 14 days"):
                    chart = page.get_by_role("img", name=name)
                    box = chart.bounding_box()
                    assert box is not None and box["width"] > 250 and box["height"] > 50, (name, box)
                page.get_by_text("The figures as a table").first.click()
                assert page.get_by_role("cell", name="<5").first.is_visible()
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                with page.expect_download() as download:
                    page.locator("#pyramid a[download]").click()
                saved = tmp_path / "pyramid.csv"
                download.value.save_as(saved)
                assert saved.read_text().splitlines() == ["row,A,B,C,D", "Noord,5,<5,5,0", "Zuid,6,0,0,0"]
            finally:
                browser.close()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_the_indicators_panel_shows_what_the_measures_engine_stored(region: dict[str, Any]) -> None:
    """The two halves together: MeasureReports written by careflow.engine.measures (not hand-made
    ones) are what the region's indicator panel draws, score for score."""
    from careflow.engine.measures import refresh
    from careflow.measures.loader import load_measures
    from careflow.measures.period import parse_period
    from careflow.web.dashboard import _all

    repo = region["repo"]
    with repo.unit_of_work(SYSTEM) as uow:  # the hand-made reports of the other tests out of the way
        for old in list(_all(uow, "MeasureReport", [])):
            uow.delete("MeasureReport", old.id)
    refresh(repo, load_measures(), parse_period("2026-05"), TODAY)
    with repo.unit_of_work(SYSTEM) as uow:
        stored = {s.resource["measure"].rsplit("/", 1)[1]: s.resource for s in _all(uow, "MeasureReport", [])}
    assert stored, "the engine stored summaries"
    rows = _csv(_client(region, REGION_COACH), "indicators")[1:]
    shown = {(r[0], r[1]) for r in rows if r[2] == "2026-05"}
    scored = [m for m, r in stored.items() if r["group"][0].get("measureScore")]
    assert scored, "the hand-counted region scores some indicator"
    for m in scored:
        assert (m, "region") in shown, m
        region_row = next(r for r in rows if r[:3] == [m, "region", "2026-05"])
        assert region_row[3] == f"{100 * float(stored[m]['group'][0]['measureScore']['value']):.1f}"
