"""Transaction and batch Bundles (``POST /fhir``).

Transaction: all entries in ONE unit of work, all or nothing. Processing order follows FHIR R4
(http.html#trules): DELETE, then POST, then PUT, then GET; the response lists entries in the
request's order. ``urn:uuid`` fullUrls are resolved everywhere a ``reference`` names them: plain
creates get their id before anything is written (so entries may reference each other in any
direction); conditional creates/updates learn theirs when executed, so they run first, and any
reference they make to a later conditional entry is fixed up in the same unit of work.

Batch: every entry is its own unit of work; a failing entry gets its error's OperationOutcome
in ``entry.response.outcome`` and the others proceed. Batch entries may not depend on each
other (FHIR), so no urn:uuid resolution happens there.

Default response detail is ``Prefer: return=minimal`` (status, location, etag, lastModified):
bulk loads would otherwise get every resource echoed back. Ask for
``return=representation`` to have the resources in the response.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from careflow.access.principal import Principal
from careflow.api.error_mapping import outcome_for
from careflow.api.errors import InvalidRequest
from careflow.api.headers import Prefer, parse_version_tag
from careflow.api.interactions import (
    Context,
    FhirRequest,
    FhirResult,
    audit_refusal,
    authorize,
    check_type,
    execute,
    request_from_url,
    write_result,
)
from careflow.errors import CareflowError, InvalidFhirResource
from careflow.fhir import bundles
from careflow.fhir.validation import validate_resource
from careflow.store.port import Repository, UnitOfWork

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
MAX_ENTRIES = 10_000


@dataclass
class _Entry:
    index: int
    full_url: str | None
    request: FhirRequest


def _entry_request(i: int, entry: Any, base: str, prefer: Prefer) -> _Entry:
    where = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        raise InvalidRequest(f"{where} is not an object", expression=where)
    req = entry.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("method"), str) or not isinstance(req.get("url"), str):
        raise InvalidRequest(f"{where}.request needs a method and a url", expression=f"{where}.request")
    full_url = entry.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise InvalidRequest(f"{where}.fullUrl must be a string", expression=f"{where}.fullUrl")
    extra: dict[str, Any] = {"prefer": prefer}
    for key, attr in (("ifMatch", "if_match"), ("ifNoneMatch", "if_none_match")):
        if key in req:
            if not isinstance(req[key], str):
                raise InvalidRequest(f"{where}.request.{key} must be a string", expression=f"{where}.request.{key}")
            if key == "ifNoneMatch" and req[key].strip() == "*" and req["method"].upper() == "PUT":
                extra["create_only"] = True  # create-if-absent (see interactions.update)
                continue
            extra[attr] = parse_version_tag(req[key], key)
    if "ifNoneExist" in req:
        if not isinstance(req["ifNoneExist"], str):
            raise InvalidRequest(f"{where}.request.ifNoneExist must be a string", expression=f"{where}.request")
        extra["if_none_exist"] = req["ifNoneExist"]
    try:
        parsed = request_from_url(req["method"], req["url"], base, **extra)
    except CareflowError as exc:
        exc.args = (f"{where}: {exc}",)
        raise
    if parsed.method in ("POST", "PUT"):
        resource = entry.get("resource")
        if resource is None:
            raise InvalidRequest(f"{where} has no resource for {parsed.method}", expression=f"{where}.resource")
        parsed = replace(parsed, resource=resource)
    return _Entry(i, full_url, parsed)


def _entries(bundle: dict[str, Any], base: str, prefer: Prefer) -> list[_Entry]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise InvalidRequest("Bundle.entry must be an array", expression="Bundle.entry")
    if len(raw) > MAX_ENTRIES:
        raise InvalidRequest(f"at most {MAX_ENTRIES} entries per Bundle", expression="Bundle.entry")
    return [_entry_request(i, e, base, prefer) for i, e in enumerate(raw)]


def _response_entry(ctx: Context, result: FhirResult, prefer: Prefer) -> dict[str, Any]:
    response: dict[str, Any] = {"status": bundles.status_text(result.status)}
    stored = result.stored
    out: dict[str, Any] = {}
    if stored is not None:
        if result.location:
            response["location"] = f"{stored.type}/{stored.id}/_history/{stored.version}"
        response["etag"] = f'W/"{stored.version}"'
        response["lastModified"] = bundles.instant(stored.last_updated)
        if not stored.deleted:
            out["fullUrl"] = bundles.full_url(ctx.base, stored)
    if result.body is not None:
        if result.body.get("resourceType") == "OperationOutcome" and result.status >= 400:
            response["outcome"] = result.body
        elif result.stored is None or prefer.return_ != "minimal" or result.status == 200 and not result.location:
            out["resource"] = result.body
    out["response"] = response
    return out


# ------------------------------------------------------------------------------------------ transaction


def _resolve_query(params: tuple[tuple[str, str], ...], mapping: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k, mapping.get(v, v)) for k, v in params)


def _resolve_text(query: str | None, mapping: dict[str, str]) -> str | None:
    if not query:
        return query
    pairs = parse_qsl(query.lstrip("?").split("?", 1)[-1], keep_blank_values=True)
    return urlencode([(k, mapping.get(v, v)) for k, v in pairs])


def run_transaction(repository: Repository, bundle: dict[str, Any], ctx: Context, prefer: Prefer,
                    principal: Principal) -> dict[str, Any]:
    entries = _entries(bundle, ctx.base, prefer)
    for e in entries:  # scopes first: a refused entry must not cost a validation pass or a store call
        try:
            authorize(principal, e.request)
        except CareflowError as exc:
            _name_entry(exc, e.index)
            audit_refusal(repository, principal, e.request, exc)
            raise
    seen: set[str] = set()
    for e in entries:
        if e.full_url:
            if e.full_url in seen:
                raise InvalidRequest(f"fullUrl {e.full_url} appears twice", expression=f"Bundle.entry[{e.index}].fullUrl")
            seen.add(e.full_url)
    for e in entries:  # validate everything before touching the store
        if e.request.method in ("POST", "PUT") and not e.request.operation:
            try:
                validate_resource(e.request.resource, check_type(e.request.type))
            except InvalidFhirResource as exc:
                exc.problems = [(f"Bundle.entry[{e.index}].resource.{p.split('.', 1)[1]}" if "." in p else
                                 f"Bundle.entry[{e.index}].resource", m) for p, m in exc.problems]
                exc.args = (f"Bundle.entry[{e.index}]: {exc}",)
                raise
            e.request = replace(e.request, validated=True)

    # ids known before any write: plain POST (pre-assigned) and PUT Type/id
    mapping: dict[str, str] = {}
    plain_post_ids: dict[int, str] = {}
    for e in entries:
        r = e.request
        if (r.method == "POST" and r.type and r.id is None and not r.if_none_exist and not r.operation
                and not r.search and not r.history):
            new_id = str(uuid.uuid4())
            plain_post_ids[e.index] = new_id
            if e.full_url:
                mapping[e.full_url] = f"{r.type}/{new_id}"
        elif r.method == "PUT" and r.id and e.full_url:
            mapping[e.full_url] = f"{r.type}/{r.id}"

    results: dict[int, FhirResult] = {}
    ordered = sorted(entries, key=lambda e: (_ORDER.get(e.request.method, 9), e.index))
    fixups: list[_Entry] = []
    with repository.unit_of_work(principal) as uow:
        # pass 1: deletes and conditional writes (their ids are only known once executed)
        first = [e for e in ordered if e.request.method == "DELETE" or _conditional_write(e.request)]
        rest = [e for e in ordered if not (e.request.method == "DELETE" or _conditional_write(e.request))]
        for e in [*first, *rest]:
            try:
                results[e.index] = _run_entry(uow, e, ctx, mapping, plain_post_ids, fixups)
            except CareflowError as exc:
                _name_entry(exc, e.index)
                raise
        for e in fixups:  # conditional entries that referenced conditional entries executed after them
            res = results[e.index]
            assert res.stored is not None and res.stored.resource is not None
            body, unresolved = bundles.rewrite_references(res.stored.resource, mapping)
            if unresolved:
                raise InvalidRequest(f"Bundle.entry[{e.index}] references {sorted(unresolved)[0]}, "
                                     "which no entry of this Bundle defines",
                                     expression=f"Bundle.entry[{e.index}].resource")
            stored, _ = uow.update(body)
            results[e.index] = write_result(e.request, stored, res.status == 201)
        out = bundles.new_bundle("transaction-response", now=ctx.now())
        out["entry"] = [_response_entry(ctx, results[e.index], e.request.prefer) for e in entries]
    return out


def _name_entry(exc: CareflowError, index: int) -> None:
    prefix = f"Bundle.entry[{index}]"
    if exc.args and isinstance(exc.args[0], str) and not exc.args[0].startswith(prefix):
        exc.args = (f"{prefix}: {exc.args[0]}", *exc.args[1:])
    if getattr(exc, "expression", None) is None:
        try:
            exc.expression = prefix  # type: ignore[attr-defined]
        except AttributeError:
            pass


def _conditional_write(r: FhirRequest) -> bool:
    return (r.method == "POST" and bool(r.if_none_exist)) or (r.method == "PUT" and r.id is None)


def _run_entry(uow: UnitOfWork, e: _Entry, ctx: Context, mapping: dict[str, str], plain_post_ids: dict[int, str],
               fixups: list[_Entry]) -> FhirResult:
    r = e.request
    conditional_write = _conditional_write(r)
    r = replace(r, params=_resolve_query(r.params, mapping), if_none_exist=_resolve_text(r.if_none_exist, mapping))
    if r.resource is not None:
        body, unresolved = bundles.rewrite_references(r.resource, mapping)
        if unresolved and not conditional_write:
            raise InvalidRequest(f"reference {sorted(unresolved)[0]} names no entry of this Bundle",
                                 expression=f"Bundle.entry[{e.index}].resource")
        r = replace(r, resource=body)
    else:
        unresolved = set()
    if e.index in plain_post_ids:
        r = replace(r, assigned_id=plain_post_ids[e.index])
    result = execute(uow, r, ctx)
    if conditional_write and result.stored is not None:
        if e.full_url:
            mapping[e.full_url] = f"{result.stored.type}/{result.stored.id}"
        if unresolved and (result.status == 201 or r.method == "PUT"):  # written by this entry
            fixups.append(e)
    return result


# ------------------------------------------------------------------------------------------ batch


def run_batch(repository: Repository, bundle: dict[str, Any], ctx: Context, prefer: Prefer,
              principal: Principal) -> dict[str, Any]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise InvalidRequest("Bundle.entry must be an array", expression="Bundle.entry")
    if len(raw) > MAX_ENTRIES:
        raise InvalidRequest(f"at most {MAX_ENTRIES} entries per Bundle", expression="Bundle.entry")
    out = bundles.new_bundle("batch-response", now=ctx.now())
    entries = []
    for i, entry in enumerate(raw):
        try:
            e = _entry_request(i, entry, ctx.base, prefer)
            with repository.unit_of_work(principal) as uow:
                result = execute(uow, e.request, ctx)
            entries.append(_response_entry(ctx, result, e.request.prefer))
        except Exception as exc:  # noqa: BLE001 - each entry reports its own failure, whatever it is
            status, outcome = outcome_for(exc)
            entries.append({"response": {"status": bundles.status_text(status), "outcome": outcome}})
    out["entry"] = entries
    return out


def process_bundle(repository: Repository, bundle: Any, ctx: Context, prefer: Prefer,
                   principal: Principal) -> dict[str, Any]:
    """Entry point of ``POST /fhir``: a transaction or batch Bundle, nothing else, on behalf of
    ``principal`` (every entry runs in a unit of work opened for it, through ``execute``)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequest("POST to the base takes a Bundle of type transaction or batch")
    kind = bundle.get("type")
    if kind == "transaction":
        return run_transaction(repository, bundle, ctx, prefer, principal)
    if kind == "batch":
        return run_batch(repository, bundle, ctx, prefer, principal)
    raise InvalidRequest(f"Bundle.type must be transaction or batch, not {kind!r}", expression="Bundle.type")


__all__ = ["process_bundle", "run_batch", "run_transaction"]
