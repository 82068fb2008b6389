"""The request facts the audit trail records: the client's network address and a request id.

An outermost ASGI middleware sets them for the whole request (``careflow.audit.context.REQUEST``, a
context variable, which follows the request into the store threads), and answers with the request id
in ``X-Request-ID`` so a client's logs and the audit trail can be matched.  The id is the client's
own ``X-Request-ID`` when it sent a plain one, else a fresh uuid.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from careflow.audit.context import REQUEST, RequestContext, request_id_from

HEADER = b"x-request-id"


class RequestContextMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER), None)
        rid = request_id_from(sent)
        token = REQUEST.set(RequestContext(client[0] if client else None, rid))

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                if not any(k.lower() == HEADER for k, _ in headers):
                    headers.append((HEADER, rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST.reset(token)
