"""The FastAPI application factory: a FHIR R4 server over any careflow ``Repository``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from careflow.api.asgi import HeadAsGet, PrettyJson
from careflow.api.audit_context import RequestContextMiddleware
from careflow.api.bearer import bearer_authenticator, discovery_router
from careflow.api.capability import _software_version
from careflow.api.error_mapping import install_error_handlers
from careflow.api.negotiation import DEFAULT_MAX_BODY_BYTES
from careflow.api.openapi import openapi_document
from careflow.api.operations import register_operations
from careflow.api.responses import FhirResponse
from careflow.api.routes import ApiState, router
from careflow.api.security import DOCUMENTATION_PATHS, PUBLIC_PATHS, Authenticator, AuthMiddleware, RefuseEveryone
from careflow.api.subscriptions import jwks_router
from careflow.auth.tokens import TokenVerifier
from careflow.store.port import Repository
from careflow.web.pages import HERE as WEB_DIR
from careflow.web.pages import error_page as page_error
from careflow.web.pages import router as pages_router
from careflow.web.session import PREFIX as PAGES
from careflow.web.session import PageSession
from careflow.web.session import is_public as is_page_public


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(
    repository: Repository,
    programs: Iterable[Any] | dict[str, Any] | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    store_threads: int = 8,
    auth: Authenticator | TokenVerifier | None = None,
) -> FastAPI:
    """Build the app. ``programs``: loaded care programmes (for ``PlanDefinition/$apply``);
    ``now``: the clock (tests pin it); ``max_body_bytes``: request size cap (413 above it);
    ``store_threads``: how many requests may work in the (synchronous) store at once;
    ``auth``: who may call: a :class:`TokenVerifier` (bearer JWTs of trusted issuers; the usual
    case), any :class:`Authenticator`, or None, which refuses every call but the public discovery
    documents (secure by default: an app nobody configured serves nobody). The principal of each
    request is what its unit of work is opened for (``careflow.api.security.principal_of``)."""
    app = FastAPI(
        title="careflow FHIR R4 API",
        description="FHIR R4 REST API of careflow (JSON only). CapabilityStatement at /fhir/metadata.",
        default_response_class=FhirResponse,
    )
    progs = list(programs.values()) if isinstance(programs, dict) else list(programs or [])
    state = ApiState(repository=repository, now=now or _utc_now, max_body_bytes=max_body_bytes,
                     store_threads=store_threads)
    register_operations(state, progs)
    app.state.careflow = state
    install_error_handlers(app)
    app.include_router(discovery_router)
    app.include_router(jwks_router)
    app.include_router(router)
    if isinstance(auth, TokenVerifier):
        app.state.token_verifier = auth
        auth = bearer_authenticator(repository, auth)
    app.state.authenticator = auth if auth is not None else RefuseEveryone()
    # the web pages beside the API (careflow.web): their own router and static files, public sign-in
    app.include_router(pages_router)
    app.state.page_errors = (PAGES, page_error)  # a browser under /app gets HTML errors, not OperationOutcomes
    app.mount(f"{PAGES}/static", StaticFiles(directory=str(WEB_DIR / "static")), name="web-static")
    app.state.programs = {p.id: p for p in progs}
    app.add_middleware(AuthMiddleware, authenticator=lambda: app.state.authenticator,
                       public=PUBLIC_PATHS | DOCUMENTATION_PATHS, extra_public=is_page_public)
    app.add_middleware(PageSession)  # outside the token check: the page cookie becomes its bearer token
    app.add_middleware(RequestContextMiddleware)  # the audit trail's client address and request id
    app.add_middleware(PrettyJson)  # _pretty=true: the answer indented, digits unchanged
    app.add_middleware(HeadAsGet)  # outermost: a HEAD is the GET it stands for, without the body

    def openapi() -> dict[str, Any]:
        """The FHIR description of the API (careflow.api.openapi), not the routes' generic one."""
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(state.operation_docs, version=_software_version())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
