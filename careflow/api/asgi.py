"""Two HTTP-level behaviours every route shares, as ASGI middleware.

**HEAD wherever GET is served**: the same status and headers, no body.

FastAPI routes answer only the methods they name, so ``HEAD /fhir/Patient/1`` was an empty 405
that HTTP caches and link checkers take for a broken server. The request runs as the GET it stands
for (authenticated, audited, narrowed like any read) and the body is dropped on the way out, so
``Content-Length`` and ``ETag`` say what a GET would get.

**``_pretty=true``**: the JSON answer indented for a human, errors included. The bytes are
re-indented as they are, without parsing them into numbers, so a decimal keeps the digits it was
written with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
    """Compact JSON re-laid with two-space indentation, token text unchanged."""
    text = raw.decode("utf-8")
    out: list[str] = []
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if ch in "{[":
            k = i + 1
            while k < n and text[k] in " \t\r\n":
                k += 1
            if k < n and text[k] in "}]":
                out.append(ch + text[k])
                i = k + 1
                continue
            depth += 1
            out.append(ch + "\n" + "  " * depth)
        elif ch in "}]":
            depth -= 1
            out.append("\n" + "  " * depth + ch)
        elif ch == ",":
            out.append(",\n" + "  " * depth)
        elif ch == ":":
            out.append(": ")
        elif ch not in " \t\r\n":
            out.append(ch)
        i += 1
    return "".join(out).encode("utf-8")


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
                except (UnicodeDecodeError, IndexError):
                    pass
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, buffered)
