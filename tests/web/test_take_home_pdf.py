"""The take-home care plan as a PDF: the same plain words as the printable page, tagged for a screen
reader (PDF/UA-1: language, title, a structure tree of headings, lists and tables, real text), no
internal ids, the national number masked; someone who may not see the patient gets an HTML page."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_world import PID, careteam_member, owner_of_open

from careflow.api.login import claims_for

pypdf = pytest.importorskip("pypdf", reason="pypdf reads the PDFs back (test extra: pip install -e '.[test]')")


def _signed_in(world: dict[str, Any], who: str) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    assert client.post("/app/login", data={"token": token, "next": "/app/"}, follow_redirects=False).status_code == 303
    return client


def _pdf_or_skip(client: TestClient, url: str) -> bytes:
    r = client.get(url)
    if r.status_code == 503 and "text/html" in r.headers["content-type"]:
        pytest.skip("this machine lacks Pango, which WeasyPrint needs (./dev test installs it)")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/pdf" and r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"] == 'attachment; filename="zorgplan.pdf"'  # no id in the file name
    assert r.content.startswith(b"%PDF-")
    return r.content


def _tags(node: Any, out: list[str]) -> list[str]:
    node = node.get_object()
    if "/S" in node:
        out.append(str(node["/S"]).lstrip("/"))
    kids = node.get("/K")
    for kid in kids if isinstance(kids, list) else [kids] if kids is not None else []:
        kid = kid.get_object() if hasattr(kid, "get_object") else kid
        if isinstance(kid, dict):
            _tags(kid, out)
    return out


def _give_phones(world: dict[str, Any]) -> str:
    """Phone numbers on the patient's GP and home nurse, as a region's directory would have them."""
    from careflow.access.principal import SYSTEM
    from careflow.naming import SSIN

    current = world["repo"].read("Patient", PID)
    with world["repo"].unit_of_work(SYSTEM) as uow:
        uow.update({**(current.resource or {}), "identifier": [{"system": SSIN, "value": "48040212345"}],
                    "name": [{"family": "Claes", "given": ["Maria"]}]}, if_match=current.version)
        for discipline, phone in (("gp", "016 20 30 40"), ("home-nurse", "0470 12 34 56")):
            ref = careteam_member(world["repo"], PID, discipline)
            role = uow.read("PractitionerRole", ref.split("/", 1)[1])
            uow.update({**(role.resource or {}), "telecom": [{"system": "phone", "value": phone}]}, if_match=role.version)
    return careteam_member(world["repo"], PID, "gp")


def test_the_take_home_pdf_is_tagged_plain_dutch_without_ids(world: dict[str, Any]) -> None:
    gp = _give_phones(world)
    for who in (gp, f"Patient/{PID}"):  # the team prints it; the patient downloads it
        client = _signed_in(world, who)
        pdf = _pdf_or_skip(client, f"/app/patients/{PID}/take-home.pdf")
        reader = pypdf.PdfReader(io.BytesIO(pdf))
        text = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
        assert text.startswith("Mijn zorgplan Maria Claes"), text[:200]  # real text, in reading order
        for heading in ("Wat ik wil bereiken", "Wat ik zelf doe", "Wie mij helpt", "Wat komt er", "Alarmsignalen",
                        "Woorden uitgelegd"):
            assert heading in text, (who, heading)
        page_text = client.get(f"/app/patients/{PID}/take-home").text
        for goal_or_sign in ("Bloeddruk", "Snelle gewichtstoename"):  # a goal and an alarm sign of the heart-failure plan
            assert goal_or_sign in text and goal_or_sign in page_text, text[:300]
        assert "016 20 30 40" in text and "0470 12 34 56" in text  # who helps me, with phone numbers
        assert "Wie bellen" in text and "112" in text and "mmHg: de eenheid van de bloeddruk" in text
        assert "48040212345" not in text and "•••••••••45" in text  # the national number masked
        assert PID not in text and "PractitionerRole" not in text and "role-" not in text  # no internal ids
        assert not [w for w in text.split() if len(w) == 36 and w.count("-") == 4]  # nor resource uuids
        assert "Afdrukken" not in text  # the page's buttons stay out of the document

        root = reader.trailer["/Root"]
        assert root["/Lang"] == "nl" and bool(root["/MarkInfo"]["/Marked"])
        assert reader.metadata is not None and reader.metadata.title == "Mijn zorgplan · Maria Claes"
        assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])  # viewers show the title, not the file name
        xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
        assert 'pdfuaid:part="1"' in xmp and "Mijn zorgplan · Maria Claes</rdf:li>" in xmp  # claims PDF/UA-1
        tags = _tags(root["/StructTreeRoot"], [])
        assert tags.count("H1") == 1 and tags.count("H2") >= 5, tags
        for tag in ("Document", "Sect", "L", "LI", "LBody", "Table", "TH", "TD"):
            assert tag in tags, (tag, sorted(set(tags)))
        assert all(not page.images for page in reader.pages)  # text, not pictures of text


def test_the_pdf_follows_the_language_and_refuses_like_the_page(world: dict[str, Any]) -> None:
    gp = _give_phones(world)
    english = _pdf_or_skip(_signed_in(world, gp), f"/app/patients/{PID}/take-home.pdf?lang=en")
    reader = pypdf.PdfReader(io.BytesIO(english))
    assert reader.trailer["/Root"]["/Lang"] == "en" and "What I want to reach" in reader.pages[0].extract_text()

    others = [r for r in world["roles"]["gp"] if f"PractitionerRole/{r}" != owner_of_open(world["repo"], "gp")]
    outsider = _signed_in(world, f"PractitionerRole/{others[0]}").get(f"/app/patients/{PID}/take-home.pdf")
    assert outsider.status_code in (403, 404) and outsider.headers["content-type"].startswith("text/html")
    assert "niet voor jou open" in outsider.text and b"%PDF" not in outsider.content
    anonymous = TestClient(world["app"]).get(f"/app/patients/{PID}/take-home.pdf", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/app/login?next=")


def test_a_server_without_pango_answers_with_a_page(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_weasyprint(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("weasyprint"):
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    r = _signed_in(world, _give_phones(world)).get(f"/app/patients/{PID}/take-home.pdf")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "Deze server kan geen pdf maken" in r.text and "libpango" not in r.text
