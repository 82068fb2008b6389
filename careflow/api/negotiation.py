"""Content negotiation and body reading: what we accept and what we answer with.

We speak JSON only: ``application/fhir+json`` (and plain ``application/json``) in and out;
``_format=json`` is honoured, XML / Turtle are refused with 406. Bodies are read with a size cap
checked against Content-Length *and* while streaming (a lying or absent Content-Length cannot
get past it), then parsed with orjson.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from careflow.api.errors import InvalidJson, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from careflow.fhir import exact_json

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024

JSON_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_FORMAT_JSON = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir", "text/json"})
_ACCEPT_JSON = JSON_MEDIA_TYPES | {"*/*", "application/*", "text/json"}


def media_type(header: str | None) -> str:
    """``application/fhir+json; charset=utf-8`` -> ``application/fhir+json``."""
    return (header or "").split(";", 1)[0].strip().lower()


def check_accept(request: Request) -> None:
    """Raise 406 unless the client can take JSON; ``_format`` overrides Accept (FHIR http.html)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if media_type(fmt) not in _FORMAT_JSON:
            raise NotAcceptable(f"_format={fmt!r} is not supported: this server speaks JSON only", expression="_format")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    offered = {media_type(part) for part in accept.split(",")}
    if not offered & _ACCEPT_JSON:
        raise NotAcceptable(f"cannot answer with {accept!r}: this server speaks application/fhir+json only")


def check_json_content_type(request: Request) -> None:
    ctype = media_type(request.headers.get("content-type"))
    if ctype not in JSON_MEDIA_TYPES:
        shown = ctype or "no Content-Type"
        raise UnsupportedMediaType(f"{shown} is not supported: send application/fhir+json")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidJson("Content-Length is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# the work one body may ask for beside its size: a 6 MB Patient with 300,000 names took 15 s and
# 870 MB to validate; no resource or Bundle careflow serves needs more items in one list
MAX_ARRAY_ITEMS = 10_000
MAX_DEPTH = 64


def check_shape(doc: Any) -> None:
    """Refuse a body with a list longer than MAX_ARRAY_ITEMS (413: too large, whatever its byte
    size) or nested deeper than MAX_DEPTH (400), naming where."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJson(f"{path or 'the body'} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list):
            if len(node) > MAX_ARRAY_ITEMS:
                raise PayloadTooLarge(f"{path} has {len(node)} items: at most {MAX_ARRAY_ITEMS} are accepted")
            for index, value in enumerate(node):
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{path}[{index}]", depth + 1))


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidJson("the request has no body; a FHIR resource was expected")
    try:
        doc = exact_json.loads(raw)  # decimals as written (careflow.fhir.exact_json)
    except ValueError as exc:
        raise InvalidJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the parser recurses per level: some thousand levels exhaust the stack first
        raise InvalidJson(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    check_shape(doc)
    return doc


async def read_json(request: Request, limit: int) -> Any:
    """Content-Type check, capped read, JSON parse: the common start of every write."""
    check_json_content_type(request)
    return parse_json(await read_body(request, limit))


async def read_search_form(request: Request, limit: int) -> list[tuple[str, str]]:
    """Parameters of ``POST [type]/_search`` (form body); an empty body is allowed."""
    ctype = media_type(request.headers.get("content-type"))
    raw = await read_body(request, limit)
    if not raw.strip():
        return []
    if ctype != FORM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"POST _search takes {FORM_MEDIA_TYPE}, not {ctype or 'no Content-Type'}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("form body is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)
