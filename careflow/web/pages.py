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
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from careflow.api.security import principal_of
from careflow.errors import CareflowError, IllegalTransition, VersionConflict
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.planning import ids
from careflow.web import attachments
from careflow.web.board import COACHES, board
from careflow.web.financing import financing_view, for_csv
from careflow.web.i18n import LANGUAGES, choose, translator
from careflow.web.patient import patient_page
from careflow.web.session import COOKIE, PREFIX
from careflow.web.take_home import take_home
from careflow.web.take_home_pdf import PdfUnavailable, pdf_of
from careflow.web.worklist import HAND_BACK_FROM, OWNER_ACTIONS, TRANSITION, worklist

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "careflow_lang"
LOINC_WEIGHT = {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}
DEMO_ROLES = ("gp", "home-nurse", "pharmacist", "physiotherapist", "dietitian", "care-coach", "case-manager",
              "region")
# the region signs in as a read-only system client of the region (careflow.population.shared_views):
# it has no PractitionerRole of its own, and it comes for the dashboard and the financing
REGION_SCOPES = "system/*.rs"

router = APIRouter(prefix=PREFIX, include_in_schema=False)
_env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _lang(request: Request) -> str:
    return choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def _shows_dashboard(request: Request) -> bool:
    """Is the dashboard in the signed-in person's navigation? (Those the shared views are for.)"""
    from careflow.population.shared_views import may_see_aggregates

    try:
        return may_see_aggregates(principal_of(request))
    except CareflowError:  # the sign-in page: nobody yet
        return False


def _kept_query(request: Request) -> str:
    """The page's query without ``lang``, so a language link keeps the filters, year or next page."""
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])


def _page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    lang = _lang(request)
    html = _env.get_template(template).render(_=translator(lang), lang=lang, languages=LANGUAGES, prefix=PREFIX,
                                              path=request.url.path, nav_dashboard=_shows_dashboard(request),
                                              kept_query=_kept_query(request), **values)
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True, max_age=365 * 86400)
    return response


def error_page(request: Request, status: int) -> HTMLResponse:
    """What a browser gets for an error under the pages that no page handled itself (an unknown
    path, a method a page does not take, a failure): an HTML page in the reader's language, where
    the API would answer with an OperationOutcome."""
    _ = translator(_lang(request))
    message = {404: _("This page does not exist."), 405: _("This page cannot be used that way.")}.get(
        status, _("Something went wrong; please try again later."))
    return _page(request, "error.html", status, message=message)


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
            claims = claims_for(_state(request).repository, "system" if role == "region" else role,
                                REGION_SCOPES if role == "region" else None)
        except CareflowError:
            return RedirectResponse(f"{PREFIX}/login?error=demo", status_code=303)
        token = issuer.mint(claims, minutes=8 * 60)
        if role == "region" and _safe_next(next) == f"{PREFIX}/":
            next = f"{PREFIX}/dashboard"  # the region's own page: it holds no Tasks
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
                  done: str | None = None, program: str | None = None, view: str | None = None,
                  task: str | None = None) -> HTMLResponse:
    principal = principal_of(request)
    state = _state(request)
    today = state.now().date()
    programs = getattr(request.app.state, "programs", {}) or {}
    program = program if program in programs else ""
    view = view if view in ("team", "proposals") else ""
    wl = worklist(state.repository, principal, programs, today, patient=patient or None, overdue_only=overdue == "1",
                  lang=_lang(request), program=program or None, team=view == "team", proposals=view == "proposals")
    titles = {pid: p.title.in_language(_lang(request)) for pid, p in sorted(programs.items())}
    # after a step the result is shown (and focused) in the Task's own row while it is still listed
    listed = {r.id for rows in (wl.overdue, wl.this_week, wl.later, wl.queue) for r in rows}
    return _page(request, "worklist.html", wl=wl, me=principal, today=today, patient=patient or "",
                 overdue=overdue == "1", done=done, program=program, programs=titles, team=bool(view), view=view,
                 done_task=task, shown_in_row=bool(done and task in listed),
                 upload_mb=attachments.MAX_BYTES // (1024 * 1024), upload_accept=attachments.ACCEPT)


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


def _take_home_plan(request: Request, patient_id: str) -> Any:
    """The patient's take-home plan as the signed-in person may see it, or the HTML error page to answer."""
    principal = principal_of(request)
    _ = translator(_lang(request))
    state = _state(request)
    programs = getattr(request.app.state, "programs", {}) or {}
    try:
        return take_home(state.repository, principal, patient_id, state.now().date(), _lang(request), programs,
                         role_codes(programs))
    except CareflowError as exc:
        status = int(getattr(exc, "http_status", 404) or 404)
        return _page(request, "error.html", status, message=_("This patient's record is not open to you."))


@router.get("/patients/{patient_id}/take-home")
def take_home_view(request: Request, patient_id: str) -> Response:
    """The take-home care plan, printable (for the patient, or the team printing it for them)."""
    plan = _take_home_plan(request, patient_id)
    if isinstance(plan, Response):
        return plan
    return _page(request, "take_home.html", t=plan, today=_state(request).now().date(), patient_id=patient_id)


@router.get("/patients/{patient_id}/take-home.pdf")
def take_home_pdf(request: Request, patient_id: str) -> Response:
    """The same plan as an accessible PDF (tagged, PDF/UA-1): the same access, an HTML page on refusal."""
    plan = _take_home_plan(request, patient_id)
    if isinstance(plan, Response):
        return plan
    lang = _lang(request)
    html = _env.get_template("take_home_pdf.html").render(_=translator(lang), lang=lang, t=plan,
                                                         today=_state(request).now().date())
    try:
        pdf = pdf_of(html)
    except PdfUnavailable:
        _ = translator(lang)
        return _page(request, "error.html", 503, message=_("This server cannot make PDFs; print the page instead."))
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="zorgplan.pdf"', "Cache-Control": "no-store"})


@router.post("/tasks/{task_id}/{action}")
def task_action(request: Request, task_id: str, action: str, version: int = Form(...), note: str = Form(""),
                weight: str = Form(""), reason: str = Form(""), owner: str = Form(""),
                document: UploadFile | None = File(None)) -> Response:
    principal = principal_of(request)
    _ = translator(_lang(request))
    if action not in (*TRANSITION, *OWNER_ACTIONS, "assign"):
        return _page(request, "error.html", 404, message=_("There is no such action."))
    upload: tuple[bytes, str, str] | None = None
    if action == "complete" and document is not None and document.filename:
        data = document.file.read(attachments.MAX_BYTES + 1)  # never more than one byte past the limit
        try:
            upload = (data, attachments.check(data), attachments.safe_name(document.filename))
        except attachments.AttachmentProblem as exc:
            return _page(request, "error.html", exc.status,
                         message=_(str(exc), size=attachments.MAX_BYTES // (1024 * 1024)))
    programs = getattr(request.app.state, "programs", {}) or {}
    queue_codes = [{"system": system, "code": code} for (system, code), role in role_codes(programs).items()
                   if owner == f"queue:{role}"]
    if action == "assign" and (principal.discipline not in COACHES
                               or not (owner.startswith("PractitionerRole/") or queue_codes)):
        return _page(request, "error.html", 403, message=_("The board is for care coaches and case managers."))
    state = _state(request)
    repo = state.repository
    now = state.now().astimezone(timezone.utc).isoformat(timespec="seconds")  # the server's clock (tests pin it)
    try:
        with repo.unit_of_work(principal) as uow:
            task = dict(uow.read("Task", task_id).resource or {})  # the If-Match below refuses a stale version
            me = next((a for a in principal.acts_as if a.startswith("PractitionerRole/")), None)
            held = str((task.get("owner") or {}).get("reference", ""))
            if action == "assign" and queue_codes:  # to a role queue: the patient's team, for that discipline
                patient_id = str((task.get("for") or {}).get("reference", "")).split("/")[-1]
                task["owner"] = {"reference": f"CareTeam/{ids.careteam_id(patient_id)}"}
                task["performerType"] = [{"coding": queue_codes}]
            elif action == "assign":
                task["owner"] = {"reference": owner}  # the status stays: assigning is not a transition
            elif action == "claim":  # from the queue: mine now, the status stays
                if not held.startswith("CareTeam/") or me is None:
                    return _page(request, "error.html", 409, message=_("Only a task in the team's queue can be claimed."))
                task["owner"] = {"reference": me}
            elif action == "hand-back":  # back to the team's queue, for someone else of the discipline
                if held != me or task.get("status") not in HAND_BACK_FROM:
                    return _page(request, "error.html", 409,
                                 message=_("Only a task you hold and have not finished can be handed back."))
                patient_id = str((task.get("for") or {}).get("reference", "")).split("/")[-1]
                task["owner"] = {"reference": f"CareTeam/{ids.careteam_id(patient_id)}"}
                if task.get("status") == "in-progress":
                    task["status"] = "on-hold"
                if reason.strip():  # the member's own words; the owner change itself is in the history
                    task["note"] = [*(task.get("note") or []), {"time": now, "text": reason.strip()}]
            else:
                task["status"] = TRANSITION[action]
            task["lastModified"] = now
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
                if upload is not None:  # the document and the Task naming it: one unit of work
                    data, kind, filename = upload
                    doc, _created = uow.create(attachments.document_reference(task, data, kind, filename, me, now))
                    outputs.append(attachments.output(doc.id, filename))
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
    if action == "assign":
        return RedirectResponse(f"{PREFIX}/board?done=assign", status_code=303)
    return RedirectResponse(f"{PREFIX}/?done={quote(action)}&task={quote(task_id)}", status_code=303)


@router.get("/documents/{document_id}")
def document_download(request: Request, document_id: str) -> Response:
    """A document attached to a Task, for whoever may read it and the Task it belongs to (both read as
    the signed-in person through the port); anything else is the same "not found" page."""
    _ = translator(_lang(request))
    missing = _page(request, "error.html", 404, message=_("There is no such document, or it is not yours to see."))
    try:
        with _state(request).repository.unit_of_work(principal_of(request)) as uow:
            doc = uow.read("DocumentReference", document_id).resource or {}
            tasks = [str(r.get("reference", "")) for r in (doc.get("context") or {}).get("related") or ()
                     if str(r.get("reference", "")).startswith("Task/")]
            if not tasks or attachments.TASK_OUTPUT not in [c for cc in doc.get("category") or () for c in cc.get("coding") or ()]:
                return missing
            for ref in tasks:
                uow.read("Task", ref.split("/", 1)[1])
    except CareflowError:
        return missing
    found = attachments.payload(doc)
    if found is None:
        return missing
    data, kind, filename = found
    return Response(data, media_type=kind, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})


def _financing(request: Request, year: str | None, as_of: str | None) -> Any:
    """The financing view for the signed-in person, or an error page (refused, or a bad year/date)."""
    from datetime import date

    from careflow.engine.financing import end_of_day
    from careflow.population.shared_views import NotForYou

    principal = principal_of(request)
    _ = translator(_lang(request))
    now = _state(request).now()
    try:
        moment = end_of_day(date.fromisoformat(as_of)) if as_of else None
        chosen = int(year) if year else (moment or now).year
        if not 1900 <= chosen <= 9999:
            raise ValueError(year)
    except ValueError:
        return _page(request, "error.html", 400, message=_("Give a year such as 2026 and a date such as 2027-01-31."))
    try:
        return financing_view(_state(request).repository, principal, chosen, moment, now.date(), _lang(request))
    except NotForYou:
        return _page(request, "error.html", 403, message=_("The team financing is for the team coach and the region."))


@router.get("/financing")
def financing_page(request: Request, year: str | None = None, as_of: str | None = None) -> Response:
    """The yearly team payment per team, group and practice (care coaches: their team; the region: all)."""
    view = _financing(request, year, as_of)
    if isinstance(view, Response):
        return view
    _ = translator(_lang(request))
    return _page(request, "financing.html", f=view, as_of=as_of or "",
                 group_name=lambda k: k or _("unknown"))


@router.get("/financing.csv")
def financing_download(request: Request, year: str | None = None, as_of: str | None = None,
                       by: str | None = None) -> Response:
    """The same lines as CSV (team lines, or the breakdown by group or practice, small cells suppressed)."""
    view = _financing(request, year, as_of)
    if isinstance(view, Response):
        return view
    kind = by if by in ("group", "practice") else None
    name = f"team-financing-{view.year}{'-' + kind if kind else ''}.csv"
    return Response(for_csv(view, kind), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ---------------------------------------------------------------- the region's dashboard (careflow.web.dashboard)


def _dashboard(request: Request, only: str | None = None) -> Any:
    from careflow.population.shared_views import NotForYou
    from careflow.web.dashboard import dashboard

    _ = translator(_lang(request))
    state = _state(request)
    programs = getattr(request.app.state, "programs", {}) or {}
    try:
        return dashboard(state.repository, principal_of(request), programs, role_codes(programs),
                         state.now().date(), _lang(request), only)
    except NotForYou:
        return _page(request, "error.html", 403, message=_("The dashboard is for the team coach and the region."))


@router.get("/dashboard")
def dashboard_page(request: Request) -> Response:
    """The region's shared dashboard: the pyramid, enrolment, open work and the quality indicators."""
    from careflow.web import charts

    found = _dashboard(request)
    if isinstance(found, Response):
        return found
    return _page(request, "dashboard.html", d=found, charts=charts)


@router.get("/dashboard/{panel}.csv")
def dashboard_download(request: Request, panel: str) -> Response:
    """One panel's numbers as CSV: exactly the cells its chart and table show."""
    from careflow.web.dashboard import PANELS, indicators_csv, table_csv

    if panel not in PANELS:
        _ = translator(_lang(request))
        return _page(request, "error.html", 404, message=_("There is no such chart."))
    found = _dashboard(request, panel)
    if isinstance(found, Response):
        return found
    text = indicators_csv(found.indicators) if panel == "indicators" else table_csv(getattr(found, panel))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="dashboard-{panel}.csv"'})


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


async def _posted_form(request: Request) -> Any:
    """The viewer's posted form, or the page that answers a too-large or unreadable one."""
    form = await _form_or_error(request)
    if form is None:
        return _too_large(request)
    if form is False:
        return _page(request, "error.html", 400, message=translator(_lang(request))("The form could not be read."))
    return form


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
    form = await _posted_form(request)
    if isinstance(form, HTMLResponse):
        return form
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
    form = await _posted_form(request)
    if isinstance(form, HTMLResponse):
        return form
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
