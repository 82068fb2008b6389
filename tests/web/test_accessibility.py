"""Accessibility in a real browser: axe-core finds no violation on any page, and the whole
claim-and-complete flow works from the keyboard alone.

axe-core comes from the PyPI package axe-playwright-python (its bundled ``axe.min.js``), installed
with the test extra; every page of ``/app`` is scanned in Dutch with the WCAG 2.x A and AA rules
and the best practices. A new page is one line in ``PAGES``; a GET page of the app that is in no
line fails ``test_every_page_is_scanned``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from datetime import time as clock_time
from typing import Any

import pytest
from web_world import ARTIFACTS, CHROMIUM, PID, START, careteam_member, owner_of_open, run_until

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev test installs it)")

RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
         "resultTypes": ["violations"]}


@dataclass(frozen=True)
class Page:
    route: str  # the route as the app declares it (what test_every_page_is_scanned matches)
    url: str  # a concrete address of it in the test neighbourhood
    who: str | None  # a discipline of the patient's care team, the patient ("patient"), or nobody signed in


# one line per page (a page of the pathway viewer is scanned once its route exists)
PAGES = [
    Page("/app/login", "/app/login", None),
    Page("/app/login", "/app/login?error=token", None),
    Page("/app/", "/app/", "gp"),
    Page("/app/", "/app/?done=accept&overdue=1", "home-nurse"),
    Page("/app/", "/app/?view=team&program=heart-failure", "home-nurse"),  # the care-team view, filtered
    Page("/app/", "/app/?view=proposals", "gp"),  # the proposals view (case finding and inclusion)
    Page("/app/board", "/app/board", "care-coach"),
    Page("/app/financing", "/app/financing?year=2026", "care-coach"),
    Page("/app/board", "/app/board", "gp"),  # not for a GP: the error page
    Page("/app/dashboard", "/app/dashboard", "care-coach"),
    Page("/app/patients/{patient_id}", f"/app/patients/{PID}", "gp"),
    Page("/app/patients/{patient_id}", "/app/patients/nobody", "gp"),  # an unknown patient: the error page
    Page("/app/patients/{patient_id}/take-home", f"/app/patients/{PID}/take-home", "patient"),
    Page("/app/programs", "/app/programs", "gp"),
    Page("/app/programs/validate", "/app/programs/validate", "gp"),
    Page("/app/programs/compare", "/app/programs/compare", "gp"),
    Page("/app/programs/{program_id}", "/app/programs/heart-failure", "gp"),
    Page("/app/programs/{program_id}/source", "/app/programs/heart-failure/source", "gp"),
]
NOT_PAGES = (".pdf", ".yaml", ".csv", "/static")  # documents and files the app serves, not HTML pages


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, included routers opened (newer FastAPI keeps an included router as one entry)."""
    out: list[Any] = []
    for route in routes:
        out.extend(route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route])
    return out


def _pages(app: Any) -> set[str]:
    """The GET routes of the app under /app that answer with a page."""
    paths = {str(getattr(r, "path", "")) for r in _routes(list(app.routes)) if "GET" in (getattr(r, "methods", None) or ())}
    return {p for p in paths if p.startswith("/app") and not p.endswith(NOT_PAGES) and "/static" not in p}


def _busy_neighbourhood(world: dict[str, Any]) -> None:
    """Ten weeks of unworked plan (escalations for the board), and a started Task (the completion form)."""
    from careflow.access.principal import SYSTEM

    run_until(world, 75)
    _dashboard_data(world)
    world["clock"][0] = datetime.combine(START + timedelta(days=75), clock_time(9), tzinfo=timezone.utc)
    nurse = careteam_member(world["repo"], PID, "home-nurse")
    from careflow.engine.reading import search_all

    open_tasks = [s for s in search_all(world["repo"], "Task", [("status", "requested"), ("owner", nurse)])]
    if open_tasks:
        task = open_tasks[0]
        for status in ("accepted", "in-progress"):
            with world["repo"].unit_of_work(SYSTEM) as uow:
                current = uow.read("Task", task.id)
                uow.update({**(current.resource or {}), "status": status}, if_match=current.version)


def _dashboard_data(world: dict[str, Any]) -> None:
    """The neighbourhood as a Location (the dashboard's pyramid) and two months of an indicator."""
    from dashboard_region import report

    from careflow.access.principal import SYSTEM

    with world["repo"].unit_of_work(SYSTEM) as uow:
        uow.create_if_absent({"resourceType": "Location", "id": "loc-binnenstad", "name": "binnenstad",
                              "managingOrganization": {"reference": "Organization/team-binnenstad"}})
        for rid, month, counts in (("mr-a", "2026-06", (12, 9)), ("mr-b", "2026-07", (12, 10))):
            uow.create_if_absent(report(rid, month, counts, {"Organization/team-binnenstad": counts}))


def _signed_in_context(browser: Any, server: str, world: dict[str, Any], who: str | None) -> Any:
    from careflow.api.login import claims_for
    from careflow.web.session import COOKIE

    context = browser.new_context()
    if who is not None:
        ref = f"Patient/{PID}" if who == "patient" else careteam_member(world["repo"], PID, who)
        token = world["issuer"].mint(claims_for(world["repo"], ref, None))
        context.add_cookies([{"name": COOKIE, "value": token, "url": f"{server}/app/"}])
    return context


def test_every_page_is_scanned(world: dict[str, Any]) -> None:
    missing = _pages(world["app"]) - {p.route for p in PAGES}
    assert not missing, f"pages axe does not scan yet (add a line to PAGES): {sorted(missing)}"


@needs_chromium
def test_axe_finds_no_violation_on_any_page(world: dict[str, Any], server: str) -> None:
    axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright",
                                         reason="axe-core comes with the test extra (pip install -e '.[test]')")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _busy_neighbourhood(world)
    routes = _pages(world["app"])
    axe = axe_playwright.Axe()
    found: dict[str, str] = {}
    scanned = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            for page_spec in PAGES:
                if page_spec.route not in routes:
                    continue  # a page of a part not built yet
                context = _signed_in_context(browser, server, world, page_spec.who)
                page = context.new_page()
                page.goto(f"{server}{page_spec.url}")
                assert page.url.startswith(f"{server}/app"), page.url
                assert page_spec.who is None or "/app/login" not in page.url, f"not signed in on {page_spec.url}"
                slug = "".join(c if c.isalnum() else "-" for c in page_spec.url.removeprefix("/app/")).strip("-") or "worklist"
                page.screenshot(path=str(ARTIFACTS / f"a11y-{scanned + 1:02d}-{slug}.png"), full_page=True)
                results = axe.run(page, options=RULES)
                scanned += 1
                if results.violations_count:
                    found[f"{page_spec.url} as {page_spec.who}"] = results.generate_report()
                context.close()
        finally:
            browser.close()
    assert scanned >= 9
    assert not found, "\n\n".join(f"== {k}\n{v}" for k, v in found.items())


def _focused(page: Any) -> dict[str, str]:
    """What has the keyboard focus: its tag, text or label, and the Task row it sits in."""
    return dict(page.evaluate("""() => {
        const el = document.activeElement;
        const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
        return {tag: el.tagName.toLowerCase(), text: (el.textContent || "").trim(), label: label.trim(),
                name: el.getAttribute("name") || "", role: el.getAttribute("role") || "",
                row: (el.closest("li.task") || {}).id || ""};
    }"""))


def _tab_to(page: Any, wanted: Any, limit: int = 80) -> dict[str, str]:
    """Press Tab until the focused element is the wanted one (a keyboard user's way through the page)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = _focused(page)
        if wanted(now):
            return now
    raise AssertionError(f"Tab never reached it; last focused: {_focused(page)}")


def _queued_gp_task(world: dict[str, Any]) -> str:
    """One of the GP's open Tasks handed back to the team's queue, for the patient's GP to claim."""
    from careflow.access.principal import SYSTEM
    from careflow.engine.reading import search_all
    from careflow.planning import ids

    owner = owner_of_open(world["repo"], "gp")
    task = next(s for s in search_all(world["repo"], "Task", [("status", "requested"), ("owner", owner)]))
    with world["repo"].unit_of_work(SYSTEM) as uow:
        current = uow.read("Task", task.id)
        uow.update({**(current.resource or {}), "owner": {"reference": f"CareTeam/{ids.careteam_id(PID)}"}},
                   if_match=current.version)
    return str(task.id)


@needs_chromium
def test_claim_start_and_complete_with_the_keyboard_alone(world: dict[str, Any], server: str) -> None:
    import importlib

    from playwright.sync_api import sync_playwright

    from careflow.api.login import claims_for

    axe_playwright: Any = None  # the keyboard test needs no axe-core; the scan test says when it is missing
    try:
        axe_playwright = importlib.import_module("axe_playwright_python.sync_playwright")
    except ImportError:
        pass
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    task_id = _queued_gp_task(world)
    gp = careteam_member(world["repo"], PID, "gp")
    token = world["issuer"].mint(claims_for(world["repo"], gp, None))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{server}/app/")  # sent to sign in
            first = _tab_to(page, lambda f: True)
            assert first["tag"] == "a" and first["text"] == "Naar de inhoud"  # the skip link comes first
            _tab_to(page, lambda f: f["tag"] == "textarea")
            page.keyboard.type(token)
            _tab_to(page, lambda f: f["tag"] == "button" and f["text"] == "Aanmelden", limit=2)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url == f"{server}/app/" and page.get_by_role("heading", level=1).inner_text() == "Mijn werklijst"

            # claim from the queue: Tab to the Task's accept button
            _tab_to(page, lambda f: f["row"] == f"task-{task_id}" and f["text"] == "Aanvaarden")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url.endswith(f"/app/?done=accept&task={task_id}")
            status = _focused(page)  # the result is focused (read out) in the Task's row, now in my list
            assert (status["role"], status["text"], status["row"]) == ("status", "Bewaard.", f"task-{task_id}")
            task = world["repo"].read("Task", task_id).resource
            assert task["status"] == "accepted" and task["owner"] == {"reference": gp}
            if axe_playwright is not None:  # the page with the message in a row passes the scan too
                results = axe_playwright.Axe().run(page, options=RULES)
                assert not results.violations_count, results.generate_report()
                assert _focused(page)["role"] == "status"  # the scan leaves the focus where it was

            # start: the next Tab from the message is the next step
            assert _tab_to(page, lambda f: True)["text"] == "Starten"
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert world["repo"].read("Task", task_id).resource["status"] == "in-progress"
            assert _focused(page)["row"] == f"task-{task_id}" and _focused(page)["role"] == "status"

            # complete with a note
            note = _tab_to(page, lambda f: f["tag"] == "input", limit=3)
            assert note["label"] == "Notitie" and note["row"] == f"task-{task_id}"
            page.keyboard.type("Medicatie klaargezet, weegschrift nagekeken")
            done = _tab_to(page, lambda f: f["text"] == "Afronden", limit=3)
            assert done["row"] == f"task-{task_id}"
            page.screenshot(path=str(ARTIFACTS / "keyboard-completing.png"), full_page=True)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            task = world["repo"].read("Task", task_id).resource
            assert task["status"] == "completed"
            assert [n["text"] for n in task["note"]] == ["Medicatie klaargezet, weegschrift nagekeken"]
            status = _focused(page)  # the Task left the open list: the result is focused at the top
            assert (status["role"], status["text"], status["row"]) == ("status", "Bewaard.", "")
            page.screenshot(path=str(ARTIFACTS / "keyboard-completed.png"), full_page=True)
        finally:
            browser.close()
