"""Who is calling, at the HTTP edge: a bearer token becomes a :class:`Principal` before any route runs.

One ASGI middleware guards the whole application, so a route added later is refused to anonymous
callers without anyone remembering to add a dependency; only :data:`PUBLIC_PATHS` (the
CapabilityStatement and the SMART discovery documents) are open. The principal is kept in the
request scope; routes (and the web pages) read it with :func:`principal_of` and open
``repository.unit_of_work(principal)`` with it.

Token verification and the store look-up of a PractitionerRole are synchronous; the middleware runs
them in a worker thread so the event loop never waits on them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

import anyio.to_thread
from starlette.requests import Request

from careflow.access.principal import Principal
from careflow.api.error_mapping import challenge, outcome_for
from careflow.api.errors import ApiError, Unauthenticated
from careflow.api.responses import FhirResponse

# Paths anyone may GET: what a client needs to find out how to authenticate, and nothing else.
PUBLIC_PATHS: frozenset[str] = frozenset({
    "/fhir/metadata",
    "/.well-known/smart-configuration",
    "/fhir/.well-known/smart-configuration",
    "/.well-known/jwks.json",  # the keys that verify Subscription notification signatures
})

# The API's own description (no data; what schemathesis and a developer read). Open too: keeping
# the route list secret protects nothing, and the interactive pages only render that document.
DOCUMENTATION_PATHS: frozenset[str] = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

_STATE_KEY = "principal"


class Authenticator(Protocol):
    """Turns the ``Authorization`` header of a request into a principal, or raises
    :class:`Unauthenticated` (401). Called in a worker thread: it may read the store."""

    def authenticate(self, authorization: str | None) -> Principal: ...

    # optional: ``cached(authorization) -> Principal | None``, a non-blocking answer for a token seen
    # recently, which spares the thread hop on the hot path.


class TrustEveryone:
    """Every caller is ``principal``. For a server nobody else can reach (loopback, tests, the
    load client) started with an explicit insecure flag; never the default."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def authenticate(self, authorization: str | None) -> Principal:
        return self.principal


class RefuseEveryone:
    """What an app gets when nobody said who may call it: nobody."""

    def authenticate(self, authorization: str | None) -> Principal:
        raise Unauthenticated("this server trusts no token issuer; see the server's settings", error=None
                              if authorization is None else "invalid_token")


def principal_of(request: Request) -> Principal:
    """The verified caller of ``request`` (set by :class:`AuthMiddleware`); 401 if there is none,
    which only happens on a public path, where no route should need one."""
    principal = request.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(principal, Principal):
        raise Unauthenticated("this request carries no authenticated caller", error=None)
    return principal


def refusal(exc: BaseException) -> FhirResponse:
    """The 401/403 response: an OperationOutcome plus the challenge header."""
    status, body = outcome_for(exc)
    return FhirResponse(body, status_code=status, headers=challenge(exc) if status in (401, 403) else None)


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class AuthMiddleware:
    """Authenticate every HTTP request except :data:`PUBLIC_PATHS`; refuse with 401 before routing.

    A plain ASGI middleware (no per-request task or body buffering, unlike ``BaseHTTPMiddleware``):
    it costs one token check per request and nothing else."""

    def __init__(self, app: ASGIApp, authenticator: Callable[[], Authenticator],
                 public: frozenset[str] = PUBLIC_PATHS, extra_public: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.public = public
        self.extra_public = extra_public

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.public or (self.extra_public is not None and self.extra_public(path)):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        auth = self.authenticator()
        try:
            cached = getattr(auth, "cached", None)
            principal = cached(header) if cached is not None else None
            if principal is None:
                principal = await anyio.to_thread.run_sync(auth.authenticate, header)
        except ApiError as exc:  # 401, or 503 when the identity provider's keys cannot be fetched
            await refusal(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = principal
        await self.app(scope, receive, send)
