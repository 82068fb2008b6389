"""The FHIR RESTful interactions, executed inside one store unit of work.

A request (from HTTP or from a Bundle entry) is first turned into a :class:`FhirRequest`; the same
:func:`execute` then serves a plain HTTP call, a transaction entry and a batch entry, so the three
can never disagree about what a PUT or a conditional create means. No web framework here: the
routes translate HTTP to and from these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from careflow.access.principal import Principal
from careflow.api.errors import (
    Forbidden,
    InvalidId,
    InvalidRequest,
    MethodNotAllowed,
    UnknownOperation,
    UnknownResourceType,
    UnknownRoute,
)
from careflow.api.headers import Prefer
from careflow.errors import Gone, InvalidSearch
from careflow.errors import NotFound as NotFoundError
from careflow.fhir import bundles
from careflow.fhir import operation_outcome as oo
from careflow.fhir.search_params import searchable_types
from careflow.fhir.search_query import MAX_COUNT, MAX_OFFSET, SearchQuery, check_request_size, parse_search, whole_number
from careflow.fhir.validation import (
    ID_RE,
    is_known_resource_type,
    mandatory_elements,
    summary_elements,
    validate_resource,
)
from careflow.store.port import SearchResult, Stored, UnitOfWork

# The resource types this server serves: those with search parameters in the registry (every type
# in it can be read, written and searched, so the CapabilityStatement can claim all of them).
SERVED_TYPES: tuple[str, ...] = tuple(t for t in searchable_types() if is_known_resource_type(t))

_HISTORY_COUNT = 100
_SUMMARY_SUPPORTED = ("count", "false", "data", "true", "text")
_ELEMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\[x\])?$")


@dataclass(frozen=True)
class FhirRequest:
    """One FHIR interaction, whatever it came in as (HTTP request or Bundle entry)."""

    method: str
    type: str | None = None
    id: str | None = None
    version: int | None = None
    history: bool = False
    operation: str | None = None  # "$everything", "$apply", ... (without arguments)
    search: bool = False  # POST [type]/_search
    params: tuple[tuple[str, str], ...] = ()
    resource: Any = None
    if_match: int | None = None
    if_none_exist: str | None = None
    if_none_match: int | None = None
    create_only: bool = False  # PUT with If-None-Match: * : create if absent, else leave what is stored
    prefer: Prefer = field(default_factory=Prefer)
    assigned_id: str | None = None  # a create whose id the server chose beforehand (transaction POSTs)
    validated: bool = False  # the resource was already validated (a transaction validates every entry first)

    @property
    def conditional(self) -> bool:
        return self.id is None and bool(self.params) and self.method in ("PUT", "DELETE")


@dataclass
class FhirResult:
    """What an interaction produced: status, body and the stored version behind it (for headers)."""

    status: int
    body: dict[str, Any] | None = None
    stored: Stored | None = None
    location: bool = False


@dataclass(frozen=True)
class Context:
    """Per-request facts an interaction needs that do not come from the request itself."""

    base: str  # absolute FHIR base, e.g. http://127.0.0.1:8000/fhir
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    operations: dict[tuple[str, str], Callable[..., FhirResult]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ parsing


def check_type(rtype: str | None) -> str:
    if rtype not in SERVED_TYPES:
        raise UnknownResourceType(f"resource type {rtype!r} is not served here (see /fhir/metadata)")
    return rtype


def check_id(rid: str | None) -> str:
    if rid is None or not ID_RE.match(rid):
        raise InvalidId(f"{rid!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})")
    return rid


def parse_version(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise InvalidId(f"{text!r} is not a version id")
    return int(text)


def request_from_url(method: str, url: str, base: str, **extra: Any) -> FhirRequest:
    """``Patient/1/_history/2``, ``Patient?identifier=x``, or an absolute URL on this server."""
    method = method.upper()
    if method not in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"):
        raise InvalidRequest(f"unknown HTTP method {method!r}")
    text = url.strip()
    if "://" in text:
        if not text.startswith(base + "/") and text != base:
            raise InvalidRequest(f"{url!r} is not on this server ({base})")
        text = text[len(base):]
    parts = urlsplit(text)
    segments = [s for s in parts.path.strip("/").split("/") if s]
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    if method == "PATCH":
        raise MethodNotAllowed("PATCH is not supported")
    if method == "HEAD":
        method = "GET"
    if not segments:
        raise InvalidRequest("the request url names no resource type")
    if segments == ["_history"]:
        return FhirRequest(method, history=True, params=params, **extra)
    if segments[0] == "metadata":
        raise InvalidRequest("metadata cannot be requested inside a Bundle")
    rtype = check_type(segments[0])
    rest = segments[1:]
    if not rest:
        return FhirRequest(method, rtype, params=params, **extra)
    if rest == ["_history"]:
        return FhirRequest(method, rtype, history=True, params=params, **extra)
    if rest == ["_search"]:
        return FhirRequest(method, rtype, search=True, params=params, **extra)
    if rest[0].startswith("$") and len(rest) == 1:
        return FhirRequest(method, rtype, operation=rest[0], params=params, **extra)
    rid = check_id(rest[0])
    if len(rest) == 1:
        return FhirRequest(method, rtype, rid, params=params, **extra)
    if rest[1:] == ["_history"]:
        return FhirRequest(method, rtype, rid, history=True, params=params, **extra)
    if len(rest) == 3 and rest[1] == "_history":
        return FhirRequest(method, rtype, rid, parse_version(rest[2]), params=params, **extra)
    if len(rest) == 2 and rest[1].startswith("$"):
        return FhirRequest(method, rtype, rid, operation=rest[1], params=params, **extra)
    raise UnknownRoute(f"no FHIR interaction at {url!r}")


def criteria(rtype: str, params: tuple[tuple[str, str], ...] | list[tuple[str, str]], what: str) -> SearchQuery:
    """A strict query for conditional interactions: unknown parameters must not widen the match."""
    query = parse_search(rtype, list(params), strict=True)
    if not query.criteria:
        raise InvalidRequest(f"{what} needs at least one search criterion")
    return query


# ------------------------------------------------------------------------------------------ results


def write_result(req: FhirRequest, stored: Stored, created: bool, *, existed_status: int = 200) -> FhirResult:
    status = 201 if created else existed_status
    return FhirResult(status, _write_body(req.prefer, stored, "created" if created else "updated"), stored, location=True)


def _write_body(prefer: Prefer, stored: Stored, verb: str) -> dict[str, Any] | None:
    if prefer.return_ == "minimal":
        return None
    if prefer.return_ == "OperationOutcome":
        return oo.information(f"{stored.type}/{stored.id} {verb} (version {stored.version})")
    return stored.resource


def _summarise(resource: dict[str, Any], summary: str | None, elements: list[str] | None) -> dict[str, Any]:
    """Apply ``_summary`` / ``_elements``; a subset is tagged SUBSETTED as FHIR requires.

    ``_summary=true`` keeps the top-level isSummary elements (nested elements are kept whole),
    ``text`` keeps text plus mandatory elements, ``data`` drops text.
    """
    if summary in (None, "false", "count") and not elements:
        return resource
    rtype = resource.get("resourceType", "")
    base = {"resourceType", "id", "meta"}
    if elements:
        keep = base | set(elements) | mandatory_elements(rtype)
        out = {k: v for k, v in resource.items() if k in keep}
    elif summary == "true":
        keep = base | summary_elements(rtype)
        out = {k: v for k, v in resource.items() if k in keep}
    elif summary == "text":
        keep = base | {"text"} | mandatory_elements(rtype)
        out = {k: v for k, v in resource.items() if k in keep}
    else:
        out = {k: v for k, v in resource.items() if k != "text"}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]
    out["meta"] = meta
    return out


def _paging_url(base: str, rtype: str, query: SearchQuery, offset: int, extra: list[tuple[str, str]],
                cursor: str | None = None) -> str:
    qs = query.query_string()
    count = [] if "_count=" in qs else [("_count", str(query.count))]  # links always carry the page size
    place = [("_cursor", cursor)] if cursor else [("_offset", str(offset))] if offset else []
    tail = urlencode([*count, *extra, *place])
    joined = "&".join(p for p in (qs, tail) if p)
    return f"{base}/{rtype}" + (f"?{joined}" if joined else "")


def search_bundle(ctx: Context, query: SearchQuery, result: SearchResult) -> dict[str, Any]:
    summary = query.summary
    elements_text = dict(query.passthrough).get("_elements")
    elements = [e.strip() for e in elements_text.split(",") if e.strip()] if elements_text else None
    extra = [(k, v) for k, v in query.passthrough if k in ("_elements",)]
    bundle = bundles.new_bundle("searchset", now=ctx.now())
    if result.total is not None:
        bundle["total"] = result.total
    count, offset = query.count, query.offset
    if query.total_only:
        bundle["link"] = bundles.links(_paging_url(ctx.base, query.type, query, offset, extra))
        return bundle
    # next pages continue from a cursor (keyset paging, careflow.fhir.search_cursor), never from an
    # offset the database would have to skip; _offset is still read, and an offset page links back
    here = query.after.encode() if query.after is not None else None
    bundle["link"] = bundles.links(
        _paging_url(ctx.base, query.type, query, offset, extra, here),
        next_url=_paging_url(ctx.base, query.type, query, 0, extra, result.next_cursor)
        if result.next_cursor and count else None,
        previous_url=_paging_url(ctx.base, query.type, query, max(0, offset - count), extra) if offset else None,
    )
    shape = (lambda r: _summarise(r, summary, elements)) if (summary in ("data", "true", "text") or elements) else None
    entries = [bundles.search_entry(ctx.base, s, "match", shape) for s in result.matches]
    entries += [bundles.search_entry(ctx.base, s, "include", shape) for s in result.included]
    if query.ignored:
        entries.append({
            "resource": oo.outcome([oo.issue("warning", "not-supported", f"search parameter ignored: {name}")
                                    for name in query.ignored]),
            "search": {"mode": "outcome"},
        })
    if entries:
        bundle["entry"] = entries
    return bundle


def history_bundle(ctx: Context, url: str, total: int, page: list[Stored], count: int, offset: int,
                   params: list[tuple[str, str]]) -> dict[str, Any]:
    def link(off: int) -> str:
        pairs = [*params, ("_count", str(count))] + ([("_offset", str(off))] if off else [])
        return f"{url}?{urlencode(pairs)}"

    bundle = bundles.new_bundle("history", now=ctx.now())
    bundle["total"] = total
    bundle["link"] = bundles.links(
        link(offset),
        next_url=link(offset + count) if offset + count < total and count else None,
        previous_url=link(max(0, offset - count)) if offset else None,
    )
    if page:
        bundle["entry"] = [bundles.history_entry(ctx.base, s) for s in page]
    return bundle


# ------------------------------------------------------------------------------------------ scopes

# What each operation needs granted before it runs; what it reads beyond that is narrowed by the store
# and what it writes is checked by the operation itself (``$apply`` with ``persist``).
OPERATION_RIGHTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("Patient", "$everything"): (("Patient", "r"),),
    ("PlanDefinition", "$apply"): (("PlanDefinition", "r"), ("Patient", "r")),
    ("Patient", "$break-the-glass"): (("Patient", "r"),),
    ("Patient", "$expunge"): (("Patient", "d"),),
    ("Measure", "$evaluate-measure"): (("Measure", "r"), ("MeasureReport", "r")),
}


def rights(req: FhirRequest) -> list[tuple[str, str]]:
    """The (resource type, SMART v2 interaction letter) pairs ``req`` needs granted; ``*`` is the
    system level. SMART v2: c create, r read/vread/instance history, u update (update-as-create
    included), d delete, s search and type/system history. A conditional interaction searches
    first, so it needs ``s`` as well."""
    t = req.type or "*"
    m = req.method
    if req.operation:
        return list(OPERATION_RIGHTS.get((t, req.operation), ((t, "r"),)))
    if req.search or (req.id is None and m == "GET" and not req.history) or (req.history and req.id is None):
        return [(t, "s")]
    if m == "GET":
        return [(t, "r")]
    if m == "POST":
        return [(t, "c"), (t, "s")] if req.if_none_exist else [(t, "c")]
    if m == "PUT":
        return [(t, "u")] if req.id is not None else [(t, "u"), (t, "s")]
    if m == "DELETE":
        return [(t, "d")] if req.id is not None else [(t, "d"), (t, "s")]
    return [(t, "r")]


def require(principal: Principal, rtype: str, interaction: str) -> None:
    """Refuse (403) unless a granted scope allows ``interaction`` on ``rtype`` (``*``: on every type).

    A granular scope (``patient/Observation.rs?category=vital-signs``) counts as a grant here; the
    store narrows the rows to its filter."""
    if principal.scopes is None:
        return
    if rtype == "*":
        ok = any(s.type == "*" and interaction in s.interactions for s in principal.scopes)
    else:
        ok = principal.may(rtype, interaction)
    if not ok:
        what = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}[interaction]
        on = "every resource type" if rtype == "*" else rtype
        raise Forbidden(f"the granted scopes do not allow {what} on {on}")


def authorize(principal: Principal, req: FhirRequest) -> None:
    """Check ``req`` against ``principal``'s scopes before it touches the store (403 when not granted)."""
    for rtype, interaction in rights(req):
        require(principal, rtype, interaction)


# ------------------------------------------------------------------------------------------ execute


def interaction_code(req: FhirRequest) -> str:
    """The restful-interaction code of ``req`` (the AuditEvent subtype)."""
    m = req.method
    if req.operation:
        return "operation"
    if req.type is None:
        return "history-system" if req.history else "search-system"
    if req.search or (req.id is None and m == "GET" and not req.history):
        return "search-type"
    if req.history:
        return "history-instance" if req.id is not None else "history-type"
    if req.version is not None:
        return "vread"
    return {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}.get(m, "read")


def _audit_params(req: FhirRequest) -> tuple[tuple[str, str], ...] | None:
    """The query an interaction carries (kept redacted in the AuditEvent): search, history and
    conditional interactions."""
    if req.params or req.search or (req.id is None and req.method == "GET"):
        return req.params
    return None


def audit_refusal(repository: Any, principal: Principal, req: FhirRequest, exc: BaseException) -> None:
    """An interaction refused at the API edge, before any unit of work (its scopes do not cover it):
    recorded straight in the repository's audit log."""
    sink = getattr(repository, "audit", None)
    if sink is None:
        return
    from careflow.audit import context as audit_context
    from careflow.audit.record import AuditRecord

    rec = AuditRecord(interaction_code(req), principal, datetime.now(timezone.utc), audit_context.current(),
                      req.type, req.id, req.operation, _audit_params(req))
    rec.fail(exc)
    sink.submit([rec])


def execute(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    """Run one interaction in ``uow`` on behalf of ``uow.principal``: its scopes are checked first
    (every entry point, Bundle entries included, comes through here); store and request errors
    propagate as exceptions.  The interaction is one AuditEvent (``uow.audited``): whatever it reads
    and writes, and how it ended."""
    with uow.audited(interaction_code(req), rtype=req.type, rid=req.id, operation=req.operation,
                     params=_audit_params(req)):
        return _execute(uow, req, ctx)


def _execute(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    authorize(uow.principal, req)
    if req.type == "Subscription" and req.method in ("POST", "PUT") and not req.operation and req.resource is not None:
        from careflow.api.subscriptions import prepare_write

        req = prepare_write(uow, req)  # the Backport IG's rules, the owner stamped
    if req.type == "AuditEvent":
        return _audit_events(uow, req, ctx)
    if req.operation:
        return _operation(uow, req, ctx)
    if req.type is None:
        if req.history and req.method == "GET":
            return _history(uow, req, ctx)
        raise MethodNotAllowed(f"{req.method} is not supported at the system level")
    rtype = check_type(req.type)
    m = req.method
    if req.search:
        if m not in ("GET", "POST"):
            raise MethodNotAllowed(f"{m} is not allowed on _search")
        return search(uow, rtype, list(req.params), req.prefer, ctx)
    if req.history:
        if m != "GET":
            raise MethodNotAllowed(f"{m} is not allowed on _history")
        return _history(uow, req, ctx)
    if req.id is None:
        if m == "GET":
            return search(uow, rtype, list(req.params), req.prefer, ctx)
        if m == "POST":
            return create(uow, rtype, req)
        if m == "PUT":
            if not req.params:
                raise MethodNotAllowed("PUT needs an id (Type/id) or search criteria (Type?params)")
            return conditional_update(uow, rtype, req)
        if m == "DELETE":
            if not req.params:
                raise MethodNotAllowed("DELETE needs an id (Type/id) or search criteria (Type?params)")
            query = criteria(rtype, req.params, "conditional delete")
            deleted = uow.conditional_delete(rtype, query)
            return _deleted(req, deleted[0] if deleted else None, rtype)
        raise MethodNotAllowed(f"{m} is not allowed on {rtype}")
    rid = check_id(req.id)
    if req.version is not None:
        if m != "GET":
            raise MethodNotAllowed(f"{m} is not allowed on a version")
        stored = uow.vread(rtype, rid, req.version)
        if stored.deleted:
            raise Gone(rtype, rid, stored.version)
        return FhirResult(200, stored.resource, stored)
    if m == "GET":
        stored = uow.read(rtype, rid)
        if req.if_none_match is not None and req.if_none_match == stored.version:
            return FhirResult(304, None, stored)
        return FhirResult(200, stored.resource, stored)
    if m == "PUT":
        return update(uow, rtype, rid, req)
    if m == "DELETE":
        return _deleted(req, uow.delete(rtype, rid, if_match=req.if_match), rtype, rid)
    raise MethodNotAllowed(f"{m} is not allowed on {rtype}/{rid}")


def _audit_events(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    """AuditEvents come from the audit trail, read-only: search, read (and vread of version 1)."""
    from careflow.audit.query import parse_audit_search

    if req.method != "GET" or req.operation or req.history:
        raise MethodNotAllowed("the audit trail is read-only: AuditEvents are written by the server itself")
    if req.id is not None:
        check_id(req.id)
        if req.version not in (None, 1):
            raise NotFoundError("AuditEvent", req.id, req.version)
        total, page = uow.audit_search(parse_audit_search([("_id", req.id)]))
        if not page:
            raise NotFoundError("AuditEvent", req.id)
        return FhirResult(200, orjson.loads(page[0]))
    query = parse_audit_search(list(req.params))
    total, page = uow.audit_search(query)
    bundle = bundles.new_bundle("searchset", now=ctx.now())
    bundle["total"] = total
    kept = [(k, v) for k, v in req.params if k not in ("_count", "_offset", "_format", "_pretty")]

    def link(offset: int) -> str:
        pairs = [*kept, ("_count", str(query.count))] + ([("_offset", str(offset))] if offset else [])
        return f"{ctx.base}/AuditEvent?{urlencode(pairs)}"

    bundle["link"] = bundles.links(
        link(query.offset),
        next_url=link(query.offset + query.count) if query.count and query.offset + query.count < total else None,
        previous_url=link(max(0, query.offset - query.count)) if query.offset else None,
    )
    events = [orjson.loads(c) for c in page]
    if events:
        bundle["entry"] = [{"fullUrl": f"{ctx.base}/AuditEvent/{e['id']}", "resource": e, "search": {"mode": "match"}}
                           for e in events]
    return FhirResult(200, bundle)


def create(uow: UnitOfWork, rtype: str, req: FhirRequest) -> FhirResult:
    if not req.validated:
        validate_resource(req.resource, rtype)
    if req.assigned_id is not None:
        body = dict(req.resource)
        body["id"] = req.assigned_id
        stored, created = uow.create_if_absent(body)
        if not created:  # a uuid4 clash: practically impossible, but never overwrite silently
            raise InvalidRequest(f"generated id {body['id']} already exists; retry the transaction")
        return write_result(req, stored, True)
    query = criteria(rtype, parse_qsl(_strip_query(req.if_none_exist, rtype), keep_blank_values=True),
                     "If-None-Exist") if req.if_none_exist else None
    stored, created = uow.create(dict(req.resource), if_none_exist=query)
    return write_result(req, stored, created)


def _strip_query(text: str | None, rtype: str) -> str:
    """If-None-Exist may be ``identifier=x``, ``?identifier=x`` or ``Patient?identifier=x``."""
    t = (text or "").strip()
    if t.startswith(rtype + "?"):
        t = t[len(rtype) + 1:]
    return t.lstrip("?")


def update(uow: UnitOfWork, rtype: str, rid: str, req: FhirRequest) -> FhirResult:
    if not req.validated:
        validate_resource(req.resource, rtype)
    body_id = req.resource.get("id")
    if body_id is None:
        raise InvalidRequest(f"the body of PUT {rtype}/{rid} must carry id {rid!r}", expression=f"{rtype}.id")
    if body_id != rid:
        raise InvalidRequest(f"body id {body_id!r} does not match the URL id {rid!r}", expression=f"{rtype}.id")
    if req.create_only:
        # If-None-Match: * on a PUT: write only when no live resource has this id. careflow answers an
        # existing one with 200 and what is stored (as a matched conditional create does), so a
        # replayed plan Bundle changes nothing and a retried one still succeeds.
        if req.if_match is not None:
            raise InvalidRequest("If-Match and If-None-Match: * contradict each other", expression="If-None-Match")
        stored, created = uow.create_if_absent(dict(req.resource))
        return write_result(req, stored, created)
    stored, created = uow.update(dict(req.resource), if_match=req.if_match)
    return write_result(req, stored, created)


def conditional_update(uow: UnitOfWork, rtype: str, req: FhirRequest) -> FhirResult:
    if not req.validated:
        validate_resource(req.resource, rtype)
    query = criteria(rtype, req.params, "conditional update")
    stored, created = uow.conditional_update(dict(req.resource), query, if_match=req.if_match)
    return write_result(req, stored, created)


def _deleted(req: FhirRequest, stored: Stored | None, rtype: str, rid: str | None = None) -> FhirResult:
    if req.prefer.return_ == "OperationOutcome":
        what = f"{rtype}/{stored.id if stored else rid}" if (stored or rid) else rtype
        text = f"{what} deleted" if stored else f"{what}: nothing to delete"
        return FhirResult(200, oo.information(text), stored)
    return FhirResult(204, None, stored)


def search(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]], prefer: Prefer, ctx: Context) -> FhirResult:
    query = parse_search(rtype, params, strict=prefer.handling == "strict")
    if query.summary is not None and query.summary not in _SUMMARY_SUPPORTED:
        raise InvalidSearch("_summary", f"'{query.summary}' is not a _summary value (true, text, data, count, false)")
    elements = dict(query.passthrough).get("_elements")
    if elements is not None:
        bad = [e for e in elements.split(",") if e.strip() and not _ELEMENT_RE.match(e.strip())]
        if bad:
            raise InvalidSearch("_elements", f"not element names: {', '.join(bad)}")
    return FhirResult(200, search_bundle(ctx, query, uow.search(query)))


def _history_params(params: tuple[tuple[str, str], ...]) -> tuple[int, int, datetime | None, list[tuple[str, str]]]:
    count, offset, since = _HISTORY_COUNT, 0, None
    kept: list[tuple[str, str]] = []
    check_request_size(params)
    for name, value in params:
        if name == "_count":
            count = min(whole_number(name, value), MAX_COUNT)
        elif name == "_offset":
            offset = whole_number(name, value, MAX_OFFSET)
        elif name == "_since":
            try:
                since = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidSearch("_since", f"'{value}' is not a FHIR instant") from None
            since = _clamped_utc(since)
            kept.append((name, value))
        elif name in ("_format", "_pretty"):
            continue
        else:
            raise InvalidSearch(name, "history takes only _count, _offset and _since")
    return count, offset, since, kept


def _clamped_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; one at the very edge of the calendar (0001-01-01T00:00:00+14:00) has no UTC
    form, and is as early (or late) as anything stored can be."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        edge = datetime.min if moment.year == 1 else datetime.max
        return edge.replace(tzinfo=timezone.utc)


def _history(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    count, offset, since, kept = _history_params(req.params)
    path = "/".join(p for p in (req.type, req.id) if p)
    url = f"{ctx.base}/{path}/_history" if path else f"{ctx.base}/_history"
    if req.id is not None:
        uow.vread(req.type, req.id, 1)  # NotFound for a resource that never existed
    total, page = uow.history(req.type, req.id, since=since, count=count, offset=offset)
    return FhirResult(200, history_bundle(ctx, url, total, page, count, offset, kept))


def _operation(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
    key = (req.type or "", req.operation or "")
    handler = ctx.operations.get(key)
    if handler is None:
        raise UnknownOperation(f"operation {req.operation} is not defined on {req.type or 'the system'}")
    if req.method not in ("GET", "POST"):
        raise MethodNotAllowed(f"{req.operation} takes GET or POST")
    if req.id is None:  # every operation careflow serves is about one resource
        raise InvalidRequest(f"{req.operation} is an instance operation: {req.type}/[id]/{req.operation}")
    return handler(uow, req, ctx)
