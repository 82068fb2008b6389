"""The web pages beside the FHIR API: sign-in and the care-team member's worklist.

Server-rendered (Jinja2 templates, the wording from the gettext catalogues of ``careflow.web.i18n``);
every page is a full page on direct load or the back button, and every action is a plain HTML form,
so the pages work without JavaScript. Each request runs as the signed-in person's principal through
the same repository port as the API (access narrowing, the Task state machine and the audit trail
all apply); errors are HTML pages, never OperationOutcomes.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from careflow.api.security import principal_of
from careflow.errors import CareflowError, IllegalTransition, VersionConflict
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.web.board import COACHES, board
from careflow.web.i18n import LANGUAGES, choose, translator
from careflow.web.patient import patient_page
from careflow.web.session import COOKIE, PREFIX
from careflow.web.take_home import take_home
from careflow.web.worklist import TRANSITION, worklist

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "careflow_lang"
LOINC_WEIGHT = {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}
DEMO_ROLES = ("gp", "home-nurse", "pharmacist", "physiotherapist", "dietitian", "care-coach", "case-manager")

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _lang(request: Request) -> str:
    return choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def _page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    lang = _lang(request)
    html = _env.get_template(template).render(_=translator(lang), lang=lang, languages=LANGUAGES, prefix=PREFIX,
                                              path=request.url.path, **values)
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True, max_age=365 * 86400)
    return response


def _state(request: Request) -> Any:
    return request.app.state.careflow


def _demo_issuer(request: Request) -> Any:
    """The local issuer, when the server trusts it (the demo): sign-in per role without a token."""
    from careflow.auth.local import LOCAL_ISSUER, LocalIssuer

    verifier = getattr(request.app.state, "token_verifier", None)
    issuers = getattr(verifier, "issuers", {}) or {}
    if LOCAL_ISSUER not in issuers:
        return None
    return getattr(request.app.state, "local_issuer", None) or LocalIssuer()


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith(PREFIX) and not value.startswith("//") else f"{PREFIX}/"


@router.get("/login")
def login_page(request: Request, next: str | None = None, error: str | None = None) -> HTMLResponse:
    demo = DEMO_ROLES if _demo_issuer(request) is not None else ()
    return _page(request, "login.html", next=_safe_next(next), error=error, demo_roles=demo)


@router.post("/login")
def login(request: Request, token: str = Form(""), role: str = Form(""), next: str = Form("")) -> Response:
    token = token.strip()
    if role:
        issuer = _demo_issuer(request)
        if issuer is None or role not in DEMO_ROLES:
            return RedirectResponse(f"{PREFIX}/login?error=demo", status_code=303)
        from careflow.api.login import claims_for

        try:
            claims = claims_for(_state(request).repository, role, None)
        except CareflowError:
            return RedirectResponse(f"{PREFIX}/login?error=demo", status_code=303)
        token = issuer.mint(claims, minutes=8 * 60)
    verifier = getattr(request.app.state, "token_verifier", None)
    try:
        if verifier is None or not token:
            raise CareflowError("no token")
        verifier.verify(token)
    except CareflowError:
        return RedirectResponse(f"{PREFIX}/login?error=token&next={quote(_safe_next(next))}", status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=8 * 3600, path=PREFIX)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/")
def worklist_page(request: Request, patient: str | None = None, overdue: str | None = None,
                  done: str | None = None) -> HTMLResponse:
    principal = principal_of(request)
    state = _state(request)
    today = state.now().date()
    programs = getattr(request.app.state, "programs", {}) or {}
    wl = worklist(state.repository, principal, programs, today, patient=patient or None, overdue_only=overdue == "1",
                  lang=_lang(request))
    return _page(request, "worklist.html", wl=wl, me=principal, today=today, patient=patient or "",
                 overdue=overdue == "1", done=done)


def role_codes(programs: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(system, code) -> careflow role id, from the programmes' role codings and careflow's own."""
    out: dict[tuple[str, str], str] = {}
    for program in programs.values():
        for role_id, role in program.roles.items():
            for c in role.codes:
                out.setdefault((c.system, c.code), role_id)
            out.setdefault((CARE_ROLE_SYSTEM, role_id), role_id)
    return out


@router.get("/board")
def board_page(request: Request) -> HTMLResponse:
    principal = principal_of(request)
    _ = translator(_lang(request))
    if principal.discipline not in COACHES:
        return _page(request, "error.html", 403, message=_("The board is for care coaches and case managers."))
    state = _state(request)
    programs = getattr(request.app.state, "programs", {}) or {}
    b = board(state.repository, principal, role_codes(programs), state.now().date(), _lang(request))
    return _page(request, "board.html", b=b, me=principal, done=request.query_params.get("done"))


@router.get("/patients/{patient_id}")
def patient_view(request: Request, patient_id: str) -> HTMLResponse:
    principal = principal_of(request)
    _ = translator(_lang(request))
    state = _state(request)
    try:
        programs = getattr(request.app.state, "programs", {}) or {}
        page = patient_page(state.repository, principal, patient_id, state.now().date(), _lang(request),
                            role_codes(programs))
    except CareflowError as exc:
        status = int(getattr(exc, "http_status", 404) or 404)
        return _page(request, "error.html", status, message=_("This patient's record is not open to you."))
    return _page(request, "patient.html", p=page, me=principal)


@router.get("/patients/{patient_id}/take-home")
def take_home_view(request: Request, patient_id: str) -> HTMLResponse:
    """The take-home care plan, printable (for the patient, or the team printing it for them)."""
    principal = principal_of(request)
    _ = translator(_lang(request))
    state = _state(request)
    programs = getattr(request.app.state, "programs", {}) or {}
    try:
        plan = take_home(state.repository, principal, patient_id, state.now().date(), _lang(request), programs,
                         role_codes(programs))
    except CareflowError as exc:
        status = int(getattr(exc, "http_status", 404) or 404)
        return _page(request, "error.html", status, message=_("This patient's record is not open to you."))
    return _page(request, "take_home.html", t=plan, today=state.now().date())


@router.post("/tasks/{task_id}/{action}")
def task_action(request: Request, task_id: str, action: str, version: int = Form(...), note: str = Form(""),
                weight: str = Form(""), reason: str = Form(""), owner: str = Form("")) -> Response:
    principal = principal_of(request)
    _ = translator(_lang(request))
    if action not in (*TRANSITION, "assign"):
        return _page(request, "error.html", 404, message=_("There is no such action."))
    if action == "assign" and (principal.discipline not in COACHES or not owner.startswith("PractitionerRole/")):
        return _page(request, "error.html", 403, message=_("The board is for care coaches and case managers."))
    state = _state(request)
    repo = state.repository
    now = state.now().astimezone(timezone.utc).isoformat(timespec="seconds")  # the server's clock (tests pin it)
    try:
        with repo.unit_of_work(principal) as uow:
            task = dict(uow.read("Task", task_id).resource or {})  # the If-Match below refuses a stale version
            if action == "assign":
                task["owner"] = {"reference": owner}  # the status stays: assigning is not a transition
            else:
                task["status"] = TRANSITION[action]
            task["lastModified"] = now
            me = next((a for a in principal.acts_as if a.startswith("PractitionerRole/")), None)
            if action == "accept" and me and str((task.get("owner") or {}).get("reference", "")).startswith("CareTeam/"):
                task["owner"] = {"reference": me}  # accepting from the queue claims it
            if action == "start":
                task["executionPeriod"] = {"start": now}
            if action == "complete":
                task["executionPeriod"] = {**(task.get("executionPeriod") or {}), "end": now}
                outputs = list(task.get("output") or [])
                if weight.strip():
                    value = float(weight.replace(",", "."))
                    outputs.append({"type": {"coding": [LOINC_WEIGHT], "text": "Body weight"},
                                    "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org",
                                                      "code": "kg"}})
                if outputs:
                    task["output"] = outputs
            if note.strip():
                task["note"] = [*(task.get("note") or []), {"time": now, "text": note.strip()}]
            if action == "reject":
                task["statusReason"] = {"text": reason.strip() or _("Declined")}
            uow.update(task, if_match=version)
    except ValueError:
        return _page(request, "error.html", 400, message=_("The weight must be a number, such as 82.5."))
    except VersionConflict as exc:
        return _page(request, "error.html", 409, message=_("Someone else changed this task meanwhile."),
                     detail=exc.holder)
    except IllegalTransition as exc:
        return _page(request, "error.html", 409, message=_("This step is not possible for the task now."),
                     detail=", ".join(sorted(getattr(exc, "allowed", ()) or ())))
    except CareflowError as exc:
        status = int(getattr(exc, "http_status", 400) or 400)
        return _page(request, "error.html", status, message=_("The task could not be changed."), detail=str(exc))
    back = f"{PREFIX}/board" if action == "assign" else f"{PREFIX}/"
    return RedirectResponse(f"{back}?done={quote(action)}", status_code=303)


# ---------------------------------------------------------------- the pathway viewer (careflow.web.viewer)
# Programmes are directory data: every signed-in caller may view, validate and compare them (no patient data).


def _viewer_page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    from careflow.web.viewer import LIMIT

    return _page(request, template, status, limit_kb=LIMIT // 1024, **values)


def _programs(request: Request) -> dict[str, Any]:
    return getattr(request.app.state, "programs", {}) or {}


def _program_source(request: Request, program: Any) -> str | None:
    from careflow.programs.loader import default_program_dir
    from careflow.web.viewer import source_of

    folder = getattr(request.app.state, "programs_dir", None) or default_program_dir()
    return source_of(program, folder)


async def _capped_form(request: Request) -> Any:
    """The posted form, read only up to the viewer's limit (two files and the pasted texts), so a
    huge upload is refused before it is parsed; None when it is too large."""
    from starlette.requests import Request as Raw

    from careflow.web.viewer import LIMIT

    cap = 4 * LIMIT + 64 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return None
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    return await Raw(request.scope, replay).form(max_files=2, max_fields=8, max_part_size=2 * LIMIT)


async def _posted_text(form: Any, name: str, label: str) -> tuple[str, str, Any]:
    """(text, file name, problem) of one programme posted as a file (``name_file``) or pasted (``name_text``)."""
    from careflow.web.viewer import decode

    upload = form.get(f"{name}_file")
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", None):
        data = await upload.read()
        if data:
            filename = str(upload.filename)[-120:]
            text, problem = decode(data, filename)
            return text or "", filename, problem
    pasted = form.get(f"{name}_text")
    if isinstance(pasted, str) and pasted.strip():
        text, problem = decode(pasted.encode("utf-8", "surrogatepass"), label)
        return text or "", label, problem
    return "", label, None


def _too_large(request: Request) -> HTMLResponse:
    from careflow.web.viewer import LIMIT

    _ = translator(_lang(request))
    return _page(request, "error.html", 413, message=_("The file is too large: the viewer reads at most {size} KB.",
                                                       size=LIMIT // 1024))


async def _form_or_error(request: Request) -> Any:
    """The form, None when too large, False when it cannot be read (Starlette says so with an
    HTTPException, which under /fhir would become an OperationOutcome: here it is a page)."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    try:
        return await _capped_form(request)
    except (MultiPartException, HTTPException):
        return False


@router.get("/programs")
def programs_page(request: Request) -> HTMLResponse:
    principal_of(request)
    listed = sorted(_programs(request).values(), key=lambda p: p.id)
    return _page(request, "programs.html", programs=listed)


@router.get("/programs/validate")
def validate_form(request: Request) -> HTMLResponse:
    principal_of(request)
    return _viewer_page(request, "validate.html", checked=None, text="")


@router.post("/programs/validate")
async def validate_page(request: Request) -> HTMLResponse:
    from careflow.web.viewer import Checked, check

    principal_of(request)
    _ = translator(_lang(request))
    form = await _form_or_error(request)
    if form is None:
        return _too_large(request)
    if form is False:
        return _page(request, "error.html", 400, message=_("The form could not be read."))
    text, filename, problem = await _posted_text(form, "program", _("pasted text"))
    if problem is not None:
        checked = Checked(filename, "", [problem], [], None)
    elif not text.strip():
        return _viewer_page(request, "validate.html", 400, checked=None, text="", empty=True)
    else:
        checked = check(text, filename)
    return _viewer_page(request, "validate.html", 200 if checked.program else 422, checked=checked, text=text)


@router.get("/programs/compare")
def compare_form(request: Request, base: str | None = None) -> HTMLResponse:
    principal_of(request)
    listed = sorted(_programs(request))
    return _viewer_page(request, "compare.html", programs=listed, base=base if base in listed else "", result=None)


@router.post("/programs/compare")
async def compare_page(request: Request) -> HTMLResponse:
    from careflow.web.viewer import Checked, check, comparison

    principal_of(request)
    _ = translator(_lang(request))
    form = await _form_or_error(request)
    if form is None:
        return _too_large(request)
    if form is False:
        return _page(request, "error.html", 400, message=_("The form could not be read."))
    programs = _programs(request)
    base = form.get("base")
    base = base if isinstance(base, str) and base in programs else ""

    async def version(name: str, label: str) -> Checked | None:
        text, filename, problem = await _posted_text(form, name, label)
        if problem is not None:
            return Checked(filename, "", [problem], [], None)
        return check(text, filename) if text.strip() else None

    old: Checked | None
    if base:
        in_use = programs[base]
        source = _program_source(request, in_use)
        old = check(source, f"{base}.yaml") if source is not None else Checked(f"{base}.yaml", "", [], [], in_use)
    else:
        old = await version("old", _("first version"))
    new = await version("new", _("second version"))
    if old is None or new is None:
        return _viewer_page(request, "compare.html", 400, programs=sorted(programs), base=base, result=None, missing=True)
    result = comparison(old, new)
    return _viewer_page(request, "compare.html", 200 if result else 422, programs=sorted(programs), base=base, result=result,
                 old=old, new=new)


@router.get("/programs/{program_id}")
def program_page(request: Request, program_id: str) -> HTMLResponse:
    from careflow.web.viewer import drawing

    principal_of(request)
    _ = translator(_lang(request))
    program = _programs(request).get(program_id)
    if program is None:
        return _page(request, "error.html", 404, message=_("There is no programme {id} in use.", id=program_id))
    return _page(request, "program.html", program=program, d=drawing(program, _lang(request), _))


@router.get("/programs/{program_id}/source")
def program_source_page(request: Request, program_id: str) -> HTMLResponse:
    from careflow.web.viewer import Checked

    principal_of(request)
    _ = translator(_lang(request))
    program = _programs(request).get(program_id)
    source = _program_source(request, program) if program is not None else None
    if program is None or source is None:
        return _page(request, "error.html", 404, message=_("There is no programme {id} in use.", id=program_id))
    return _page(request, "source.html", program=program, checked=Checked(f"{program_id}.yaml", source, [], [], program))


@router.get("/programs/{program_id}/source.yaml")
def program_source_raw(request: Request, program_id: str) -> Response:
    principal_of(request)
    _ = translator(_lang(request))
    program = _programs(request).get(program_id)
    source = _program_source(request, program) if program is not None else None
    if program is None or source is None:
        return _page(request, "error.html", 404, message=_("There is no programme {id} in use.", id=program_id))
    return Response(source, media_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="{program_id}.yaml"'})
