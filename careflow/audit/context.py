"""The request an interaction came from: set by the API for each HTTP request, read by the store
when it records an audit event (a context variable, so it follows the request into the store thread)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-._:]{1,64}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    client_address: str | None = None
    request_id: str | None = None


REQUEST: ContextVar[RequestContext | None] = ContextVar("careflow_audit_request", default=None)


def current() -> RequestContext | None:
    return REQUEST.get()


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a plain token, else a fresh one."""
    if header and _REQUEST_ID.match(header):
        return header
    return str(uuid.uuid4())
