"""End to end in a real headless browser (Debian's chromium driven by Playwright): the GP signs in
per role, works a Task to completion entering a weight, and the home nurse then sees the urgent Task
the weight rule raised. Screenshots of each step are kept in ``test-artifacts/web/``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from web_world import PID, START

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(world: dict[str, Any]) -> Any:
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(world["app"], host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_gp_completes_with_a_weight_and_the_nurse_sees_the_urgent_task(world: dict[str, Any], server: str) -> None:
    from engine_world import add_weight
    from playwright.sync_api import sync_playwright

    from careflow.api.login import claims_for
    from careflow.engine import events
    from careflow.engine.reading import search_all

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    add_weight(world["repo"], PID, datetime.combine(START, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=8), 80.0)
    events.process_events(world["repo"], world["programs"], datetime.combine(START, datetime.min.time(), tzinfo=timezone.utc))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{server}/app/")
            assert page.url.startswith(f"{server}/app/login")  # sent to sign in
            page.screenshot(path=str(ARTIFACTS / "01-sign-in.png"))
            page.get_by_role("button", name="Huisarts").click()
            page.wait_for_url(f"{server}/app/")
            assert page.get_by_role("heading", level=1).inner_text() == "Mijn werklijst"
            page.screenshot(path=str(ARTIFACTS / "02-gp-worklist.png"), full_page=True)
            first = page.locator("li.task").first
            task_id = (first.get_attribute("id") or "").removeprefix("task-")
            for label in ("Aanvaarden", "Starten"):
                page.locator(f"#task-{task_id}").get_by_role("button", name=label).click()
                page.wait_for_load_state()
            row = page.locator(f"#task-{task_id}")
            row.get_by_label("Gewicht (kg)").fill("82,6")
            row.get_by_label("Notitie").fill("Enkels gezwollen")
            row.get_by_role("button", name="Afronden").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").inner_text() == "Bewaard."
            assert page.locator(f"#task-{task_id}").count() == 0  # done: off the list
            page.screenshot(path=str(ARTIFACTS / "03-gp-done.png"), full_page=True)

            # the engine handles the completion: the weight becomes an Observation, the rule fires
            moment = datetime.combine(START + timedelta(days=2), datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=10)
            for _ in range(3):
                events.process_events(world["repo"], world["programs"], moment)
            urgent = search_all(world["repo"], "Task", [("priority", "urgent"), ("status", "requested")])
            assert urgent, "the weight rule raised an urgent Task"
            nurse_ref = (urgent[0].resource or {})["owner"]["reference"]

            nurse = browser.new_page()
            nurse.goto(f"{server}/app/login?lang=en")
            token = world["issuer"].mint(claims_for(world["repo"], nurse_ref, None))
            nurse.get_by_label("Access token from your region's sign-in").fill(token)
            nurse.get_by_role("button", name="Sign in").last.click()
            nurse.wait_for_url(f"{server}/app/")
            item = nurse.locator(f"#task-{urgent[0].id}")
            assert item.count() == 1 and "urgent" in (item.get_attribute("class") or "")
            assert "Check weight gain" in item.inner_text()
            nurse.screenshot(path=str(ARTIFACTS / "04-nurse-urgent.png"), full_page=True)
        finally:
            browser.close()
