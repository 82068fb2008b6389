"""Bundle plumbing: building searchset / history / *-response Bundles and resolving urn:uuid references.

Pure dict functions (no web framework, no store engine) so the API, the engine and tests build
Bundles the same way.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from careflow.store.port import Stored

HTTP_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


def status_text(status: int) -> str:
    """Bundle.entry.response.status: the code, then the reason phrase (FHIR recommends both)."""
    reason = HTTP_REASONS.get(status)
    return f"{status} {reason}" if reason else str(status)


def instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_bundle(kind: str, *, now: datetime | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind}
    if now is not None:
        bundle["meta"] = {"lastUpdated": instant(now)}
    return bundle


def full_url(base: str, stored: Stored) -> str:
    return f"{base}/{stored.type}/{stored.id}"


def search_entry(base: str, stored: Stored, mode: str, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """A searchset entry. Without a transform the stored JSON bytes go out as they are
    (``orjson.Fragment``): a search page then costs no parse and no re-serialisation."""
    if transform is None and stored.raw is not None:
        body: Any = orjson.Fragment(stored.raw)
    else:
        resource = stored.resource or {}
        body = transform(resource) if transform else resource
    return {"fullUrl": full_url(base, stored), "resource": body, "search": {"mode": mode}}


def history_entry(base: str, stored: Stored) -> dict[str, Any]:
    """One version in a history Bundle: deletions carry no resource, only request and response."""
    entry: dict[str, Any] = {"fullUrl": full_url(base, stored)}
    if stored.deleted:
        request = {"method": "DELETE", "url": f"{stored.type}/{stored.id}"}
        response = {"status": "204 No Content" if stored.version > 1 else "200 OK"}
    elif stored.version == 1:
        entry["resource"] = stored.resource
        request = {"method": "POST", "url": stored.type}
        response = {"status": status_text(201)}
    else:
        entry["resource"] = stored.resource
        request = {"method": "PUT", "url": f"{stored.type}/{stored.id}"}
        response = {"status": status_text(200)}
    response["etag"] = f'W/"{stored.version}"'
    response["lastModified"] = instant(stored.last_updated)
    entry["request"] = request
    entry["response"] = response
    return entry


def links(self_url: str, next_url: str | None = None, previous_url: str | None = None,
          first_url: str | None = None) -> list[dict[str, str]]:
    out = [{"relation": "self", "url": self_url}]
    if first_url:
        out.append({"relation": "first", "url": first_url})
    if previous_url:
        out.append({"relation": "previous", "url": previous_url})
    if next_url:
        out.append({"relation": "next", "url": next_url})
    return out


def rewrite_references(value: Any, mapping: dict[str, str]) -> tuple[Any, set[str]]:
    """Copy of ``value`` with every ``reference`` naming a key of ``mapping`` replaced, at any depth
    (Reference elements nest in extensions, backbone elements and contained resources).

    Only ``reference`` properties are touched: an Identifier may legitimately carry a urn:uuid value.
    Returns the copy and the ``urn:uuid:`` / ``urn:oid:`` references ``mapping`` does not know.
    """
    unresolved: set[str] = set()

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "reference" and isinstance(x, str) and x.startswith("urn:"):
                    if x in mapping:
                        x = mapping[x]
                    elif x.startswith(("urn:uuid:", "urn:oid:")):
                        unresolved.add(x)
                    out[k] = x
                else:
                    out[k] = walk(x)
            return out
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value), unresolved


def references_in(value: Any) -> set[str]:
    """Every Reference.reference string in ``value`` (any depth)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            ref = v.get("reference")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found
