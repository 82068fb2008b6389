"""Signing in to the pages the way the API does: the same bearer token, kept in a cookie.

The sign-in page stores the caller's access token in an HttpOnly, SameSite=Strict cookie; this
middleware hands it to the API's own :class:`careflow.api.security.AuthMiddleware` as the
``Authorization`` header, so a page sees exactly what the API would let that person see, through
the same token checks. A page request without a valid token is sent to the sign-in page instead of
getting the API's 401 OperationOutcome; a state-changing request from another site is refused
(SameSite plus an Origin check).
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import quote

PREFIX = "/app"
COOKIE = "careflow_session"
PUBLIC = (f"{PREFIX}/login", f"{PREFIX}/static/")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


def is_public(path: str) -> bool:
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no session
                return None
            if name in jar:
                return jar[name].value
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name), None)


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class PageSession:
    """Pages under ``/app``: cookie -> Authorization header; no or refused token -> the sign-in page."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")) or is_public(path):
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "POST":
            origin = _header(scope, b"origin")
            host = _header(scope, b"host")
            if origin and host and origin.split("://", 1)[-1] != host:
                await _redirect(send, f"{PREFIX}/login?error=origin")
                return
        token = _cookie(scope, COOKIE)
        here = path + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
        if not token:
            await _redirect(send, f"{PREFIX}/login?next={quote(here)}")
            return
        headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
        scope = {**scope, "headers": headers}
        refused = False

        async def guarded(message: Any) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 401:
                refused = True
                await _redirect(send, f"{PREFIX}/login?next={quote(here)}&error=expired")
                return
            if refused:
                return  # the API's 401 body is not for a browser
            await send(message)

        await self.app(scope, receive, guarded)
