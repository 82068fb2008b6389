"""The one mapping from exceptions to (HTTP status, OperationOutcome).

Used by the FastAPI exception handlers *and* by batch processing (each failed batch entry carries
the same outcome a single request would have got), so a failure reads the same everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from careflow.api.errors import ApiError, Forbidden, Unauthenticated
from careflow.api.responses import FhirResponse
from careflow.errors import (
    CareflowError,
    InvalidFhirResource,
    NotEligible,
    PatientDataError,
    StoreError,
    UnknownProgram,
)
from careflow.fhir import operation_outcome as oo

log = logging.getLogger("careflow.api")

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid", "bad request"),
    401: ("security", "authentication required"),
    403: ("security", "forbidden"),
    404: ("not-found", "no FHIR interaction at this URL"),
    405: ("not-supported", "method not allowed at this URL"),
    406: ("not-supported", "not acceptable"),
    413: ("too-long", "request body too large"),
    415: ("not-supported", "unsupported media type"),
}


def outcome_for(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """HTTP status and OperationOutcome for any exception; unknown ones become a bare 500."""
    if isinstance(exc, InvalidFhirResource):
        issues = [oo.issue("error", "invalid", msg, [path] if path else None) for path, msg in exc.problems]
        if not issues:
            issues = [oo.issue("error", "invalid", str(exc))]
        return 400, oo.outcome([oo.issue("error", "invalid", str(exc)), *issues])
    if isinstance(exc, (StoreError, ApiError)):
        expr = getattr(exc, "expression", None)
        return exc.http_status, oo.error(exc.code, str(exc), [expr] if expr else None)  # type: ignore[arg-type]
    if isinstance(exc, NotEligible):
        return 422, oo.error("business-rule", str(exc) or "the patient does not qualify for this programme")
    if isinstance(exc, UnknownProgram):
        return 404, oo.error("not-found", str(exc))
    if isinstance(exc, PatientDataError):
        return 422, oo.error("processing", str(exc))
    if isinstance(exc, CareflowError):
        return 400, oo.error("processing", str(exc))
    if isinstance(exc, RequestValidationError):
        errs = exc.errors()
        where = [".".join(str(p) for p in e.get("loc", ())) for e in errs[:5]]
        return 400, oo.error("invalid", "; ".join(str(e.get("msg", "invalid")) for e in errs[:5]), where)
    if isinstance(exc, StarletteHTTPException):
        code, text = _HTTP_CODES.get(exc.status_code, ("processing", "request failed"))
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else text
        status = exc.status_code if 400 <= exc.status_code < 600 else 400
        return status, oo.error(code, detail)  # type: ignore[arg-type]
    return 500, oo.error("exception", "internal server error; the request was not applied")


def challenge(exc: BaseException, realm: str = "careflow") -> dict[str, str]:
    """The RFC 6750 ``WWW-Authenticate`` header of a refused request: 401 (``invalid_token``, or no
    error code when no token was sent) or 403 (``insufficient_scope``)."""
    error = exc.error if isinstance(exc, Unauthenticated) else "insufficient_scope"
    value = f'Bearer realm="{realm}"'
    if error:
        # a header value is latin-1 and the text may quote ids from the token: printable ASCII only
        description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in str(exc))[:200]
        value += f', error="{error}", error_description="{description}"'
    return {"WWW-Authenticate": value}


def error_response(exc: BaseException) -> FhirResponse:
    status, body = outcome_for(exc)
    headers = None
    if isinstance(exc, StarletteHTTPException) and exc.headers:
        headers = dict(exc.headers)
    elif isinstance(exc, (Unauthenticated, Forbidden)):
        headers = challenge(exc)
    return FhirResponse(body, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods the API's own OpenAPI document names for this request's path (Starlette's
    ``Allow`` named only the first route's, so a PATCH to ``Patient/1`` was told only GET)."""
    doc = request.app.openapi()
    segments = request.url.path.rstrip("/").split("/")
    best, methods = -1, set()
    for template, item in doc.get("paths", {}).items():
        parts = template.split("/")
        if len(parts) != len(segments):
            continue
        if not all(p == s or (p.startswith("{") and p.endswith("}")) for p, s in zip(parts, segments)):
            continue
        literal = sum(p == s for p, s in zip(parts, segments))  # Patient/_search is _search, not an id
        found = {m.upper() for m in item if m in ("get", "put", "post", "delete", "patch")}
        if literal > best:
            best, methods = literal, found
        elif literal == best:
            methods |= found
    if "GET" in methods:
        methods.add("HEAD")  # careflow.api.asgi answers HEAD wherever GET is served
    return sorted(methods)


async def _handle(request: Request, exc: Exception) -> FhirResponse:
    status = outcome_for(exc)[0]
    if status >= 500:
        # what failed and where, never the exception's text or traceback: a database error's
        # message carries the statement's values (names, national numbers)
        segments = request.url.path.strip("/").split("/")
        rtype = segments[1] if len(segments) > 1 and segments[1][:1].isupper() else "-"
        log.error("unhandled %s on %s of %s (request %s)", type(exc).__name__, request.method, rtype,
                  request.headers.get("x-request-id", "-"))
    pages = getattr(request.app.state, "page_errors", None)  # (prefix, page maker) when the web pages are served
    if pages is not None and (request.url.path + "/").startswith(pages[0] + "/") \
            and not request.url.path.startswith(pages[0] + "/static/"):
        return pages[1](request, status)  # type: ignore[no-any-return]
    response = error_response(exc)
    if status == 405:
        allowed = allowed_methods(request)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception, ours or the framework's, through :func:`outcome_for`."""
    app.add_exception_handler(CareflowError, _handle)
    app.add_exception_handler(RequestValidationError, _handle)
    app.add_exception_handler(StarletteHTTPException, _handle)
    app.add_exception_handler(Exception, _handle)
