"""FHIR REST headers: ETag / If-Match versions, Prefer, Last-Modified, Location.

Parsing is strict: a malformed If-Match is a 400, never silently ignored, because ignoring it
would turn an optimistic-locking update into a blind overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Literal

from careflow.api.errors import InvalidRequest
from careflow.store.port import Stored

_ETAG_RE = re.compile(r'^\s*(?:W/)?"?([0-9]{1,18})"?\s*$')

ReturnPref = Literal["minimal", "representation", "OperationOutcome"]
HandlingPref = Literal["strict", "lenient"]


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_version_tag(value: str | None, header: str = "If-Match") -> int | None:
    """``W/"3"`` (or ``"3"`` / ``3``) -> 3; None when absent; 400 when malformed."""
    if value is None:
        return None
    m = _ETAG_RE.match(value)
    if not m:
        raise InvalidRequest(f'{header} must be a version tag like W/"3", got {value!r}', expression=header)
    return int(m.group(1))


def http_date(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def instant(moment: datetime) -> str:
    """FHIR instant in UTC with millisecond precision."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def version_location(base: str, stored: Stored) -> str:
    return f"{base}/{stored.type}/{stored.id}/_history/{stored.version}"


def resource_headers(base: str, stored: Stored, *, location: bool = False) -> dict[str, str]:
    """ETag and Last-Modified for a stored version, plus Location (versioned) for writes."""
    out = {"ETag": etag(stored.version), "Last-Modified": http_date(stored.last_updated)}
    if location:
        out["Location"] = version_location(base, stored)
    return out


@dataclass(frozen=True)
class Prefer:
    return_: ReturnPref = "representation"
    handling: HandlingPref = "lenient"
    respond_async: bool = False


def parse_prefer(value: str | None, *, default_handling: HandlingPref = "lenient") -> Prefer:
    """RFC 7240 Prefer as FHIR uses it; unknown preferences are ignored (as the RFC says)."""
    ret: ReturnPref = "representation"
    handling: HandlingPref = default_handling
    respond_async = False
    for part in (value or "").split(","):
        for token in part.split(";"):
            key, _, val = token.strip().partition("=")
            key, val = key.strip().lower(), val.strip().strip('"')
            if key == "return" and val in ("minimal", "representation", "OperationOutcome"):
                ret = val  # type: ignore[assignment]
            elif key == "handling" and val in ("strict", "lenient"):
                handling = val  # type: ignore[assignment]
            elif key == "respond-async":
                respond_async = True
    return Prefer(ret, handling, respond_async)
