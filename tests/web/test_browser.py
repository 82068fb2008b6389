"""End to end in a real headless browser (Debian's chromium driven by Playwright).

Two and a half months into a heart-failure plan nobody worked, the care coach signs in, finds an
escalated Task on the board and assigns it to the home nurse; the nurse signs in, accepts, starts
and completes it entering a weight and attaching a report (a file that is no PDF is refused
first, saying why); the weight rule raises an urgent Task, which she sees on her
list, opens the patient page and prints the take-home plan (the browser's print and the PDF, both
read back as text). The GP signs in per role (the demo's sign-in) and sees their own list.
Screenshots of each step and the two PDFs are kept in ``test-artifacts/web/``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from datetime import time as clock_time
from typing import Any

import pytest
from web_world import ARTIFACTS, CHROMIUM, PID, START, careteam_member, run_until

from careflow.web.attachments import attached

# a small real PDF: one page saying "Verslag" (what a scanned report would be)
REPORT_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
              b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./dev test installs it)")


def _pdf_text(pdf: bytes) -> str:
    import io

    from pypdf import PdfReader

    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def _sign_in_with_token(page: Any, server: str, world: dict[str, Any], who: str) -> None:
    from careflow.api.login import claims_for

    page.goto(f"{server}/app/login?lang=en")
    page.get_by_label("Access token from your region's sign-in").fill(world["issuer"].mint(claims_for(world["repo"], who, None)))
    page.get_by_role("button", name="Sign in").last.click()
    page.wait_for_url(f"{server}/app/")
    page.goto(f"{server}/app/?lang=nl")


def test_coach_assigns_an_escalation_and_the_nurse_completes_it_with_a_weight(world: dict[str, Any], server: str) -> None:
    from engine_world import add_weight
    from playwright.sync_api import sync_playwright

    from careflow.engine import events
    from careflow.engine.reading import search_all

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run_until(world, 75)
    day = START + timedelta(days=75)
    world["clock"][0] = datetime.combine(day, clock_time(9), tzinfo=timezone.utc)
    add_weight(world["repo"], PID, datetime.combine(day - timedelta(days=2), clock_time(8), tzinfo=timezone.utc), 80.0)
    events.process_events(world["repo"], world["programs"], world["clock"][0])
    coach_ref = careteam_member(world["repo"], PID, "care-coach")
    nurse_ref = careteam_member(world["repo"], PID, "home-nurse")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            gp = browser.new_page()
            gp.goto(f"{server}/app/")
            assert gp.url.startswith(f"{server}/app/login")  # sent to sign in first
            gp.screenshot(path=str(ARTIFACTS / "01-sign-in.png"))
            gp.get_by_role("button", name="Huisarts").click()  # the demo's per-role sign-in
            gp.wait_for_url(f"{server}/app/")
            assert gp.get_by_role("heading", level=1).inner_text() == "Mijn werklijst"

            coach = browser.new_page()
            _sign_in_with_token(coach, server, world, coach_ref)
            coach.get_by_role("link", name="Bord van de zorgcoach").click()
            coach.wait_for_url(f"{server}/app/board")
            coach.screenshot(path=str(ARTIFACTS / "02-coach-board.png"), full_page=True)
            section = coach.locator("section", has=coach.get_by_role("heading", name="Geëscaleerd"))
            escalated = section.locator("li.task").first
            task_id = (escalated.get_attribute("id") or "").removeprefix("task-")
            escalated.get_by_label("Toewijzen aan").select_option(nurse_ref)
            escalated.get_by_role("button", name="Toewijzen").click()
            coach.wait_for_url(f"{server}/app/board?done=assign")
            assert world["repo"].read("Task", task_id).resource["owner"] == {"reference": nurse_ref}

            nurse = browser.new_page()
            _sign_in_with_token(nurse, server, world, nurse_ref)
            for label in ("Aanvaarden", "Starten"):
                nurse.locator(f"#task-{task_id}").get_by_role("button", name=label).click()
                nurse.wait_for_load_state()
            row = nurse.locator(f"#task-{task_id}")
            row.get_by_label("Gewicht (kg)").fill("82,6")
            row.get_by_label("Notitie").fill("Enkels gezwollen")
            upload = row.get_by_label("Document (PDF, PNG of JPEG, hoogstens 4 MB)")
            upload.set_input_files(files=[{"name": "foto-enkels.txt.pdf", "mimeType": "application/pdf",
                                           "buffer": b"not a pdf at all"}])
            row.get_by_role("button", name="Afronden").click()  # a file that is no PDF: a clear refusal
            nurse.wait_for_load_state()
            assert "Alleen PDF-, PNG- of JPEG-bestanden kunnen worden toegevoegd." in nurse.content()
            assert world["repo"].read("Task", task_id).resource["status"] == "in-progress"
            nurse.screenshot(path=str(ARTIFACTS / "03-nurse-wrong-file.png"), full_page=True)
            nurse.goto(f"{server}/app/")
            row = nurse.locator(f"#task-{task_id}")
            row.get_by_label("Gewicht (kg)").fill("82,6")
            row.get_by_label("Notitie").fill("Enkels gezwollen")
            row.get_by_label("Document (PDF, PNG of JPEG, hoogstens 4 MB)").set_input_files(
                files=[{"name": "verslag.pdf", "mimeType": "application/pdf", "buffer": REPORT_PDF}])
            nurse.screenshot(path=str(ARTIFACTS / "03-nurse-completing.png"), full_page=True)
            row.get_by_role("button", name="Afronden").click()
            nurse.wait_for_load_state()
            assert nurse.get_by_role("status").inner_text() == "Bewaard."
            done_task = world["repo"].read("Task", task_id).resource
            assert done_task["status"] == "completed"
            [(document_id, _name)] = attached(done_task)

            # the engine handles the completion: the weight becomes an Observation, the weight rule fires
            for _ in range(3):
                events.process_events(world["repo"], world["programs"], world["clock"][0])
            urgent = [s for s in search_all(world["repo"], "Task", [("priority", "urgent"), ("status", "requested")])
                      if "Observation/" in str(((s.resource or {}).get("focus") or {}).get("reference"))]
            assert len(urgent) == 1, "the weight rule raised one urgent Task"
            assert (urgent[0].resource or {})["owner"]["reference"] == nurse_ref
            nurse.reload()
            item = nurse.locator(f"#task-{urgent[0].id}")
            assert item.count() == 1 and "urgent" in (item.get_attribute("class") or "")
            assert "Gewichtstoename nakijken" in item.inner_text()  # the programme's Dutch title
            nurse.screenshot(path=str(ARTIFACTS / "04-nurse-urgent.png"), full_page=True)
            item.get_by_role("link", name="patiëntpagina").click()
            nurse.wait_for_url(f"{server}/app/patients/{PID}")
            html = nurse.content()
            assert "laatste: 82.6" in html, html[html.find("<h2>Doelen"):html.find("<h2>Doelen") + 1500]  # her weight, on the trend
            link = nurse.get_by_role("link", name="document: verslag.pdf")  # the completed Task's document
            assert link.get_attribute("href") == f"/app/documents/{document_id}"
            fetched = nurse.request.get(f"{server}/app/documents/{document_id}")  # with the nurse's session cookie
            assert fetched.ok and fetched.body() == REPORT_PDF and fetched.headers["content-type"] == "application/pdf"
            nurse.screenshot(path=str(ARTIFACTS / "05-patient-page.png"), full_page=True)

            # print the take-home plan: the browser's print of the page, and the PDF the page links to
            nurse.get_by_role("link", name="zorgplan meegeven").click()
            nurse.wait_for_url(f"{server}/app/patients/{PID}/take-home")
            nurse.screenshot(path=str(ARTIFACTS / "06-take-home.png"), full_page=True)
            printed = _pdf_text(nurse.pdf(path=str(ARTIFACTS / "06-take-home-printed.pdf")))
            href = nurse.get_by_role("link", name="Downloaden als pdf").get_attribute("href") or ""
            answer = nurse.request.get(f"{server}{href}")  # with the nurse's session cookie
            assert answer.ok and answer.headers["content-type"] == "application/pdf", answer.text()[:300]
            (ARTIFACTS / "07-take-home.pdf").write_bytes(answer.body())
            for text in (printed, _pdf_text(answer.body())):
                assert "Mijn zorgplan" in text and "Wie mij helpt" in text and "Alarmsignalen" in text
                assert "Snelle gewichtstoename" in text and "In nood: 112." in text
                assert PID not in text and "Afdrukken" not in text  # no internal ids; the print hides the buttons
        finally:
            browser.close()
