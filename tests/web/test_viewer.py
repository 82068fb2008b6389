"""The pathway viewer over HTTP: every programme as swim lanes in each language, a pasted or uploaded
file validated with its problems at their lines, two versions compared, and no input that breaks it."""

from __future__ import annotations

import io
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from careflow.api.login import claims_for
from careflow.programs.compare import Change, FieldChange, compare
from careflow.programs.loader import load_directory, parse_program
from careflow.programs.timeline import pathway
from careflow.web.i18n import LANGUAGES
from careflow.web.viewer import LIMIT, check

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

# the versions these tests write with ruamel.yaml leave some words unquoted (a portability warning, not an error)
pytestmark = pytest.mark.filterwarnings("ignore::careflow.programs.loader.YamlPortabilityWarning")
PROGRAMS = load_directory(None)
HF_FILE = Path(__file__).resolve().parents[2] / "care_programs" / "heart-failure.yaml"
HF = HF_FILE.read_text(encoding="utf-8")
ROUTES = ["/app/programs", "/app/programs/heart-failure", "/app/programs/heart-failure/source",
          "/app/programs/heart-failure/source.yaml", "/app/programs/validate", "/app/programs/compare"]


@pytest.fixture
def viewer(tmp_path: Path) -> dict[str, Any]:
    """Every programme in use, a neighbourhood team to sign in as; the viewer reads no patient data."""
    from engine_world import add_team

    from careflow.api.app import create_app
    from careflow.auth.local import LocalIssuer
    from careflow.auth.tokens import TokenVerifier
    from careflow.store.memory import MemoryRepository

    repo = MemoryRepository()
    add_team(repo, per_role=1)
    issuer = LocalIssuer(tmp_path / "issuer-keys.json")
    app = create_app(repo, PROGRAMS, auth=TokenVerifier([issuer.trusted()]))
    return {"app": app, "repo": repo, "issuer": issuer}


def _signed_in(world: dict[str, Any], who: str = "dietitian") -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    token = world["issuer"].mint(claims_for(world["repo"], who, None))
    r = client.post("/app/login", data={"token": token, "next": "/app/programs"}, follow_redirects=False)
    assert r.status_code == 303
    return client


class _Page(HTMLParser):
    """The ids, the rows with a problem, the headings and the SVG's accessible name of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.problem_rows: list[int] = []
        self.svg: dict[str, str] = {}
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "html":
            self.lang = str(a.get("lang"))
        if tag == "svg":
            self.svg = {k: str(v) for k, v in a.items()}
        if tag == "tr" and a.get("class") == "has-problem":
            self.problem_rows.append(int(str(a["id"]).rsplit("-", 1)[1]))


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _row(html: str, prefix: str, line: int) -> str:
    start = html.index(f'id="{prefix}-line-{line}"')
    return html[start:html.index("</tr>", start)]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def _yaml_text(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="rt").dump(data, out)
    return out.getvalue()


# ---------------------------------------------------------------- who may use it


def test_every_viewer_page_sends_a_stranger_to_sign_in(viewer: dict[str, Any]) -> None:
    client = TestClient(viewer["app"])
    for path in ROUTES:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/app/login?next="), path
    for path in ("/app/programs/validate", "/app/programs/compare"):
        r = client.post(path, data={"program_text": HF}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/app/login"), path


def test_any_team_member_may_view(viewer: dict[str, Any]) -> None:
    for who in ("pharmacist", "care-coach"):
        assert _signed_in(viewer, who).get("/app/programs/copd").status_code == 200
    worklist = _signed_in(viewer).get("/app/")
    assert worklist.status_code == 200 and 'href="/app/programs"' in worklist.text  # the nav link of base.html
    assert 'href="/app/programs"' not in TestClient(viewer["app"]).get("/app/login").text  # not before signing in


# ---------------------------------------------------------------- the lanes


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_programme_is_drawn_in_every_language(viewer: dict[str, Any], lang: str) -> None:
    client = _signed_in(viewer)
    listing = client.get(f"/app/programs?lang={lang}")
    assert listing.status_code == 200
    for program in PROGRAMS.values():
        assert f'href="/app/programs/{program.id}"' in listing.text
        r = client.get(f"/app/programs/{program.id}?lang={lang}")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        page = _parsed(r.text)
        assert page.lang == lang
        assert len(page.ids) == len(set(page.ids)), "ids must be unique"
        title = program.title.in_language(lang)  # French pages show the programme's French
        assert f"<h1>{title}" in r.text.replace("&#39;", "'")
        if lang == "fr":
            assert program.title.fr and f"<h1>{program.title.fr}" in r.text.replace("&#39;", "'")
        # the drawing has a text alternative: an accessible name, and tables with every activity and rule
        assert page.svg["role"] == "img" and page.svg["aria-labelledby"] == "lanes-title lanes-desc"
        assert {"lanes-title", "lanes-desc"} <= set(page.ids)
        assert {f"activity-{a.id}" for a in program.activities} <= set(page.ids)
        assert {f"trigger-{t.id}" for t in program.triggers} <= set(page.ids)
        lanes = pathway(program).lanes
        drawn = [lane for lane in lanes if lane.marks]
        assert {f"lane-{lane.role_id}" for lane in drawn} <= set(page.ids)
        bars = sum(len(m.occurrences) or 1 for lane in drawn for m in lane.marks)  # a season is one dotted line
        # each bar and each flag carries a <title> (besides the page's; the drawing's has an id)
        assert r.text.count("<title>") - 1 - sum(1 for _ in re.finditer('<g class="flag">', r.text)) == bars
        assert f'href="/app/programs/{program.id}/source.yaml"' in r.text
    words = {"nl": "Wie doet wat, wanneer", "en": "Who does what, when", "fr": "Couloirs de"}
    assert words[lang] in r.text


def test_the_lanes_place_recurrences_and_triggers_in_days() -> None:
    mini = parse_program(_mini())
    pw = pathway(mini)
    nurse = next(lane for lane in pw.lanes if lane.role_id == "home-nurse")
    (check_mark, visit) = nurse.marks
    assert check_mark.activity.id == "weight-check" and len(check_mark.occurrences) == 12  # monthly, inside one year
    assert check_mark.occurrences[1] == pytest.approx(30.44)
    assert visit.activity.id == "home-visit" and visit.opens == pytest.approx(14)  # after weight-check, + P14D
    late, done, low = pw.triggers
    assert (late.kind, late.at, late.acts_on) == ("overdue", pytest.approx(0 + 7 + 3), ("care-coach",))
    assert (done.kind, done.at, done.watches) == ("completed", pytest.approx(14), "home-visit")
    assert (low.kind, low.at, low.acts_on) == ("observation", None, ("gp",))


def test_the_raw_file_is_the_file_in_use(viewer: dict[str, Any]) -> None:
    client = _signed_in(viewer)
    raw = client.get("/app/programs/heart-failure/source.yaml")
    assert raw.status_code == 200 and raw.text == HF and raw.headers["content-type"].startswith("text/plain")
    numbered = client.get("/app/programs/heart-failure/source")
    assert numbered.status_code == 200 and f'id="src-line-{len(HF.splitlines())}"' in numbered.text
    for path in ("/app/programs/nope", "/app/programs/nope/source", "/app/programs/nope/source.yaml"):
        r = client.get(path)
        assert r.status_code == 404 and "text/html" in r.headers["content-type"] and "nope" in r.text


# ---------------------------------------------------------------- validation at the lines


def test_an_invalid_file_shows_every_problem_at_its_line(viewer: dict[str, Any]) -> None:
    bad = HF.replace("every: P1M", "every: P1X", 1)
    duration_line = _line_of(bad, "every: P1X")
    role_line = _line_of(bad, "role: pharmacist")
    bad = bad.replace("role: pharmacist", "role: pharmacists", 1)
    r = _signed_in(viewer).post("/app/programs/validate", data={"program_text": bad})
    assert r.status_code == 422 and "is geen geldig programma" in r.text
    page = _parsed(r.text)
    assert page.problem_rows == sorted([duration_line, role_line])
    assert "&#39;P1X&#39; is not an ISO 8601 duration" in _row(r.text, "checked", duration_line)
    assert "did you mean &#39;pharmacist&#39;?" in _row(r.text, "checked", role_line)
    assert f'href="#checked-line-{role_line}"' in r.text  # the list links to the line
    assert "<textarea" in r.text and "every: P1X" in r.text  # the text is kept to fix it


def test_a_syntax_error_is_shown_at_its_line(viewer: dict[str, Any]) -> None:
    text = "id: x\nversion: 1.0.0\nroles: {gp: [unclosed\nactivities: []\n"
    r = _signed_in(viewer).post("/app/programs/validate?lang=en", data={"program_text": text})
    assert r.status_code == 422
    (line,) = _parsed(r.text).problem_rows
    assert line == 4 and "not valid YAML" in _row(r.text, "checked", 4)


def test_an_upload_is_validated(viewer: dict[str, Any]) -> None:
    client = _signed_in(viewer)
    r = client.post("/app/programs/validate?lang=en", files={"program_file": ("hf.yaml", b"\xef\xbb\xbf" + HF.encode(), "text/yaml")})
    assert r.status_code == 200 and "hf.yaml is a valid programme" in r.text
    hf = PROGRAMS["heart-failure"]
    assert f"{len(hf.roles)} roles, {len(hf.goals)} goals, {len(hf.activities)} activities, {len(hf.triggers)} follow-up rules" in r.text


def test_a_valid_file_with_a_yaml_portability_warning(viewer: dict[str, Any]) -> None:
    text = HF.replace("nl: Huisarts", "nl: yes", 1)  # text in YAML 1.2, a boolean in YAML 1.1
    r = _signed_in(viewer).post("/app/programs/validate?lang=en", data={"program_text": text})
    assert r.status_code == 200 and "is a valid programme" in r.text
    assert 'class="has-warning"' in _row(r.text, "checked", _line_of(text, "nl: yes"))


# ---------------------------------------------------------------- no input breaks it


@pytest.mark.parametrize("body", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),  # binary
    "id: café".encode("latin-1"),  # not UTF-8
    b"", b"   \n", b"- just\n- a list\n", b"plain scalar", b":::\n- - -\n{[", b"id: !!python/object:os.system x",
    b"[" * 5000, b"version: " + b"9" * 5000, b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n".encode() for p, k in zip("abcdefgh", "bcdefghi")),
    b"- a\n" * (LIMIT // 4 - 1),
])
def test_garbage_gets_a_page_never_a_500(viewer: dict[str, Any], body: bytes) -> None:
    client = TestClient(viewer["app"], raise_server_exceptions=False)
    client.cookies = _signed_in(viewer).cookies
    for r in (client.post("/app/programs/validate", files={"program_file": ("x.yaml", body, "application/octet-stream")}),
              client.post("/app/programs/validate", data={"program_text": body.decode("latin-1")}),
              client.post("/app/programs/compare", data={"base": "copd"}, files={"new_file": ("x.yaml", body, "text/yaml")})):
        assert r.status_code in (400, 422), (r.status_code, r.text[:300])
        assert "text/html" in r.headers["content-type"] and "Traceback" not in r.text


def test_a_huge_upload_is_refused_unread(viewer: dict[str, Any]) -> None:
    client = _signed_in(viewer)
    huge = b"a: b\n" * (LIMIT // 5 * 5)
    r = client.post("/app/programs/validate", files={"program_file": ("big.yaml", huge, "text/yaml")})
    assert r.status_code == 413 and "text/html" in r.headers["content-type"] and str(LIMIT // 1024) in r.text
    one_over = client.post("/app/programs/validate", files={"program_file": ("big.yaml", b"#" * (LIMIT + 1), "text/yaml")})
    assert one_over.status_code == 422 and "larger than" in one_over.text


def test_a_broken_form_is_a_400_page(viewer: dict[str, Any]) -> None:
    client = _signed_in(viewer)
    r = client.post("/app/programs/validate", content=b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    empty = client.post("/app/programs/validate", content=b"{}", headers={"Content-Type": "application/json"})
    assert empty.status_code == 400 and "text/html" in empty.headers["content-type"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`,?\n\t 0123456789")), max_size=200))
def test_any_text_is_checked_without_an_exception(text: str) -> None:
    checked = check(text, "fuzz")
    assert (checked.program is None) == bool(checked.problems)
    assert all(1 <= line <= len(checked.lines) for line in checked.problem_lines)


# ---------------------------------------------------------------- two versions


def _revised() -> tuple[str, tuple[str, str, str]]:
    """heart-failure 1.3.0: one activity gone, one goal new, one timing and one threshold changed, a role new;
    with the ids of the dropped activity, the retimed one and the changed trigger."""
    data = YAML(typ="rt").load(HF)
    data["version"] = "1.3.0"
    acts = data["activities"]
    used = {d for a in acts for d in a.get("after", [])} | {s for t in data["triggers"] for s in t["then"].get("start", [])}
    for t in data["triggers"]:
        used |= {t["when"].get("completed"), t["when"].get("rejected"), (t["when"].get("overdue") or {}).get("activity")}
    dropped = next(a for a in acts if a["id"] not in used and a["role"] != "dietitian")
    acts.remove(dropped)
    monthly = next(a for a in acts if (a.get("timing") or {}).get("every") == "P1M")
    monthly["timing"]["every"] = "P2W"
    rule = next(t for t in data["triggers"] if "above" in ((t["when"].get("observation") or {})))
    rule["when"]["observation"]["above"]["value"] = 99
    data["goals"].append({"id": "walks-daily", "title": {"nl": "Dagelijks wandelen", "en": "Walk every day"},
                          "category": "behavioral"})
    data["roles"]["podiatrist"] = {"title": {"nl": "Podoloog", "en": "Podiatrist"},
                                   "codes": [{"system": "snomed", "code": "159034004", "display": "Podiatrist"}]}
    return _yaml_text(data), (str(dropped["id"]), str(monthly["id"]), str(rule["id"]))


def test_the_comparison_names_exactly_what_changed() -> None:
    new_text, (dropped, monthly, rule) = _revised()
    old, new = PROGRAMS["heart-failure"], parse_program(new_text)
    changes = compare(old, new)
    assert changes[0] == Change("changed", "programme", "heart-failure", (FieldChange("version", "1.2.0", "1.3.0"),))
    assert set(changes[1:]) == {
        Change("added", "role", "podiatrist"), Change("added", "goal", "walks-daily"),
        Change("removed", "activity", dropped),
        Change("changed", "activity", monthly, (FieldChange("timing.every", "P1M", "P2W"),)),
        Change("changed", "trigger", rule, (FieldChange("when.observation.above.value", str(
            old.model_dump(mode="json")["triggers"][[t.id for t in old.triggers].index(rule)]["when"]["observation"]["above"]["value"]), "99.0"),)),
    }
    back = compare(new, old)  # the other way round, additions and removals swap
    assert {(c.kind, c.section, c.id) for c in back if c.kind != "changed"} == {
        ("removed", "role", "podiatrist"), ("removed", "goal", "walks-daily"), ("added", "activity", dropped)}


def test_the_same_programme_spelled_otherwise_has_no_changes() -> None:
    data = YAML(typ="rt").load(HF)
    data["triggers"].reverse()
    reordered = parse_program(_yaml_text(data))
    (change,) = compare(PROGRAMS["heart-failure"], reordered)  # only the order of the triggers, which matters
    assert [f.path for f in change.fields] == ["order of triggers"]
    respelled = HF.replace("system: loinc", "system: http://loinc.org")
    assert respelled != HF and compare(PROGRAMS["heart-failure"], parse_program(respelled)) == []


def test_the_compare_page_in_use_against_a_pasted_version(viewer: dict[str, Any]) -> None:
    new_text, (dropped, monthly, _rule) = _revised()
    client = _signed_in(viewer)
    form = client.get("/app/programs/compare?base=heart-failure")
    assert form.status_code == 200 and '<option value="heart-failure" selected>' in form.text
    r = client.post("/app/programs/compare?lang=en", data={"base": "heart-failure", "new_text": new_text})
    assert r.status_code == 200 and "From heart-failure 1.2.0 to heart-failure 1.3.0" in r.text
    assert "2 added, 1 removed, 3 changed." in r.text
    ids = set(_parsed(r.text).ids)
    assert {"added-role-podiatrist", "added-goal-walks-daily", f"removed-activity-{dropped}", f"changed-activity-{monthly}",
            "changed-programme-heart-failure"} <= ids
    assert "<del>" in r.text and "<ins>" in r.text  # the two files side by side
    assert len(_parsed(r.text).ids) == len(ids)


def test_the_compare_page_with_two_uploads_and_an_invalid_one(viewer: dict[str, Any]) -> None:
    client = _signed_in(viewer)
    new_text, _ = _revised()
    r = client.post("/app/programs/compare?lang=en", files={"old_file": ("a.yaml", HF.encode(), "text/yaml"),
                                                            "new_file": ("b.yaml", new_text.encode(), "text/yaml")})
    assert r.status_code == 200 and "2 added, 1 removed, 3 changed." in r.text
    same = client.post("/app/programs/compare?lang=en", data={"old_text": HF, "new_text": HF})
    assert same.status_code == 200 and "The two versions mean the same programme." in same.text
    bad = new_text.replace("version: 1.3.0", "version: one", 1)
    broken = client.post("/app/programs/compare?lang=en", data={"base": "heart-failure", "new_text": bad})
    assert broken.status_code == 422 and "Only valid programmes can be compared" in broken.text
    assert _parsed(broken.text).problem_rows == [_line_of(bad, "version: one")]
    missing = client.post("/app/programs/compare", data={"base": "heart-failure"})
    assert missing.status_code == 400 and "text/html" in missing.headers["content-type"]


def _mini() -> str:
    return """
id: mini
version: 1.0.0
url: https://example.org/mini
status: draft
title: {nl: Mini, en: Mini}
eligibility:
  conditions: [{system: icpc-2, code: K77}]
roles:
  home-nurse:
    title: {nl: Thuisverpleegkundige, en: Home nurse}
    codes: [{system: cd-hcparty, code: persnurse}]
  care-coach:
    title: {nl: Zorgcoach, en: Care coach}
    codes: [{system: cd-hcparty, code: persnurse}]
  gp:
    title: {nl: Huisarts, en: GP}
    codes: [{system: cd-hcparty, code: persphysician}]
activities:
  - id: weight-check
    title: {nl: Gewicht, en: Weight check}
    description: {nl: Weeg, en: Weigh}
    role: home-nurse
    code: {system: loinc, code: 29463-7}
    timing: {every: P1M, due_within: P7D}
  - id: home-visit
    title: {nl: Bezoek, en: Visit}
    description: {nl: Bezoek, en: Visit}
    role: home-nurse
    code: {system: loinc, code: 29463-7}
    after: [weight-check]
    timing: {start: P14D}
triggers:
  - id: late
    when: {overdue: {activity: weight-check, by: P3D}}
    then: {escalate_to: care-coach}
  - id: visited
    when: {completed: home-visit}
    then: {flag_plan: true}
  - id: heavy
    when: {observation: {code: {system: loinc, code: 29463-7}, above: {value: 100, unit: kg}}}
    then: {create_task: {role: gp, title: {nl: Bel, en: Call}}}
"""
