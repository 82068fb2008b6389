"""Two HTTP-level behaviours every route shares, as ASGI middleware.

**HEAD wherever GET is served**: the same status and headers, no body.

FastAPI routes answer only the methods they name, so ``HEAD /fhir/Patient/1`` was an empty 405
that HTTP caches and link checkers take for a broken server. The request runs as the GET it stands
for (authenticated, audited, narrowed like any read) and the body is dropped on the way out, so
``Content-Length`` and ``ETag`` say what a GET would get.

**``_pretty=true``**: the JSON answer indented for a human, errors included. The bytes are
read with ``careflow.fhir.exact_json``, so a decimal keeps the digits it was written with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careflow.fhir import exact_json


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # swallow the parts; the last one ends the response
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        get: dict[str, Any] = {**scope, "method": "GET"}
        await self.app(get, receive, headers_only)


def indented(raw: bytes) -> bytes:
    """JSON re-laid with two-space indentation, each decimal with its own digits."""
    return exact_json.dumps(exact_json.loads(raw), option=orjson.OPT_INDENT_2)


class PrettyJson:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or b"_pretty" not in scope.get("query_string", b""):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        if query.get("_pretty") != "true":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(parts)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            json = any(k.lower() == b"content-type" and b"json" in v for k, v in headers)
            if json and body:
                try:
                    body = indented(body)
                except ValueError:
                    pass  # not JSON after all: sent as it is
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, buffered)
