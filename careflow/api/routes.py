"""HTTP routes under ``/fhir``: translate requests to :class:`FhirRequest`, results to responses.

Store work runs in a bounded thread pool (the repository is synchronous); body reading and
content negotiation stay on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request

from careflow.api.capability import capability_statement
from careflow.api.errors import Forbidden, InvalidRequest
from careflow.api.headers import parse_prefer, parse_version_tag, resource_headers
from careflow.api.interactions import (
    Context,
    FhirRequest,
    FhirResult,
    audit_refusal,
    authorize,
    check_id,
    check_type,
    execute,
    parse_version,
)
from careflow.api.negotiation import check_accept, read_json, read_search_form
from careflow.api.responses import FhirResponse
from careflow.api.security import principal_of
from careflow.api.transactions import process_bundle
from careflow.store.port import Repository

_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/fhir+json": {"schema": {"type": "object"}}},
    }
}


@dataclass
class ApiState:
    """What the routes need, stored on ``app.state.careflow`` by :func:`careflow.api.app.create_app`."""

    repository: Repository
    now: Callable[[], datetime]
    max_body_bytes: int
    store_threads: int = 8
    operations: dict[tuple[str, str], Callable[..., FhirResult]] = field(default_factory=dict)
    operation_docs: list[tuple[str, str, str, str]] = field(default_factory=list)
    _limiter: anyio.CapacityLimiter | None = None

    def limiter(self) -> anyio.CapacityLimiter:
        """Store calls run in at most ``store_threads`` threads, admitted first come first served: more
        threads than cores only trade the GIL back and forth and stretch the latency tail."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.store_threads)
        return self._limiter


async def in_store_thread(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args, limiter=_state(request).limiter())


def _state(request: Request) -> ApiState:
    return request.app.state.careflow  # type: ignore[no-any-return]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _context(request: Request) -> Context:
    st = _state(request)
    return Context(base=_base(request), now=st.now, operations=st.operations)


def _params(request: Request) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in request.query_params.multi_items() if k not in ("_format", "_pretty"))


def _to_response(ctx: Context, result: FhirResult) -> FhirResponse:
    headers: dict[str, str] = {}
    if result.stored is not None:
        headers = resource_headers(ctx.base, result.stored, location=result.location)
    if result.status in (204, 304):
        return FhirResponse(None, status_code=result.status, headers=headers)
    return FhirResponse(result.body, status_code=result.status, headers=headers)


async def _run(request: Request, req: FhirRequest) -> FhirResponse:
    check_accept(request)
    ctx = _context(request)
    repo = _state(request).repository
    principal = principal_of(request)
    try:
        authorize(principal, req)  # 403 before a thread or the store is touched (execute checks again)
    except Forbidden as exc:
        audit_refusal(repo, principal, req, exc)  # no unit of work: straight to the audit log
        raise

    def work() -> FhirResult:
        with repo.unit_of_work(principal) as uow:
            return execute(uow, req, ctx)

    return _to_response(ctx, await in_store_thread(request, work))


def _prefer(request: Request) -> Any:
    return parse_prefer(request.headers.get("prefer"))


def _if_match(request: Request) -> int | None:
    return parse_version_tag(request.headers.get("if-match"), "If-Match")


router = APIRouter(prefix="/fhir")


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> FhirResponse:
    check_accept(request)
    st = _state(request)
    return FhirResponse(capability_statement(_base(request), st.operation_docs, now=st.now()))


@router.post("", summary="transaction or batch Bundle", openapi_extra=_JSON_BODY)
async def transaction(request: Request) -> FhirResponse:
    check_accept(request)
    st = _state(request)
    body = await read_json(request, st.max_body_bytes)
    ctx = _context(request)
    prefer = parse_prefer(request.headers.get("prefer"))
    if prefer.return_ == "representation" and "return=" not in (request.headers.get("prefer") or ""):
        prefer = type(prefer)("minimal", prefer.handling, prefer.respond_async)
    out = await in_store_thread(request, process_bundle, st.repository, body, ctx, prefer, principal_of(request))
    return FhirResponse(out)


@router.get("/_history", summary="system history")
async def system_history(request: Request) -> FhirResponse:
    return await _run(request, FhirRequest("GET", history=True, params=_params(request)))


@router.get("/{rtype}/_history", summary="type history")
async def type_history(rtype: str, request: Request) -> FhirResponse:
    return await _run(request, FhirRequest("GET", check_type(rtype), history=True, params=_params(request)))


@router.post("/{rtype}/_search", summary="search (form body)")
async def search_post(rtype: str, request: Request) -> FhirResponse:
    check_type(rtype)
    form = await read_search_form(request, _state(request).max_body_bytes)
    params = (*_params(request), *((k, v) for k, v in form if k not in ("_format", "_pretty")))
    return await _run(request, FhirRequest("GET", rtype, search=True, params=params, prefer=_prefer(request)))


@router.get("/{rtype}", summary="search")
async def search_get(rtype: str, request: Request) -> FhirResponse:
    return await _run(request, FhirRequest("GET", check_type(rtype), params=_params(request), prefer=_prefer(request)))


@router.post("/{rtype}", summary="create", openapi_extra=_JSON_BODY)
async def create(rtype: str, request: Request) -> FhirResponse:
    check_type(rtype)
    body = await read_json(request, _state(request).max_body_bytes)
    req = FhirRequest("POST", rtype, resource=body, prefer=_prefer(request),
                      if_none_exist=request.headers.get("if-none-exist"))
    return await _run(request, req)


@router.put("/{rtype}", summary="conditional update", openapi_extra=_JSON_BODY)
async def conditional_update(rtype: str, request: Request) -> FhirResponse:
    check_type(rtype)
    body = await read_json(request, _state(request).max_body_bytes)
    req = FhirRequest("PUT", rtype, params=_params(request), resource=body, prefer=_prefer(request),
                      if_match=_if_match(request))
    return await _run(request, req)


@router.delete("/{rtype}", summary="conditional delete")
async def conditional_delete(rtype: str, request: Request) -> FhirResponse:
    return await _run(request, FhirRequest("DELETE", check_type(rtype), params=_params(request), prefer=_prefer(request)))


@router.get("/{rtype}/{rid}", summary="read (or type-level operation)")
async def read(rtype: str, rid: str, request: Request) -> FhirResponse:
    check_type(rtype)
    if rid.startswith("$"):
        return await _run(request, FhirRequest("GET", rtype, operation=rid, params=_params(request)))
    inm = request.headers.get("if-none-match")
    return await _run(request, FhirRequest("GET", rtype, check_id(rid), if_none_match=parse_version_tag(inm, "If-None-Match")))


@router.put("/{rtype}/{rid}", summary="update (creates when absent)", openapi_extra=_JSON_BODY)
async def update(rtype: str, rid: str, request: Request) -> FhirResponse:
    check_type(rtype)
    check_id(rid)
    body = await read_json(request, _state(request).max_body_bytes)
    inm = request.headers.get("if-none-match")
    if inm is not None and inm.strip() != "*":
        raise InvalidRequest("on PUT, If-None-Match may only be * (create if absent)", expression="If-None-Match")
    req = FhirRequest("PUT", rtype, rid, resource=body, prefer=_prefer(request), if_match=_if_match(request),
                      create_only=inm is not None)
    return await _run(request, req)


@router.delete("/{rtype}/{rid}", summary="delete")
async def delete(rtype: str, rid: str, request: Request) -> FhirResponse:
    check_type(rtype)
    req = FhirRequest("DELETE", rtype, check_id(rid), prefer=_prefer(request), if_match=_if_match(request))
    return await _run(request, req)


@router.get("/{rtype}/{rid}/_history", summary="instance history")
async def instance_history(rtype: str, rid: str, request: Request) -> FhirResponse:
    check_type(rtype)
    return await _run(request, FhirRequest("GET", rtype, check_id(rid), history=True, params=_params(request)))


@router.get("/{rtype}/{rid}/_history/{vid}", summary="vread")
async def vread(rtype: str, rid: str, vid: str, request: Request) -> FhirResponse:
    check_type(rtype)
    return await _run(request, FhirRequest("GET", rtype, check_id(rid), parse_version(vid)))


async def _operation(rtype: str, rid: str | None, op: str, request: Request, method: str) -> FhirResponse:
    check_type(rtype)
    if rid is not None:
        check_id(rid)
    body = None
    if method == "POST":
        raw_len = request.headers.get("content-length")
        if raw_len not in (None, "0") or request.headers.get("transfer-encoding"):
            body = await read_json(request, _state(request).max_body_bytes)
    req = FhirRequest(method, rtype, rid, operation=op, params=_params(request), resource=body, prefer=_prefer(request))
    return await _run(request, req)


@router.get("/{rtype}/{rid}/{op}", summary="instance operation ($apply, $everything)")
async def operation_get(rtype: str, rid: str, op: str, request: Request) -> FhirResponse:
    if not op.startswith("$"):
        from careflow.api.errors import UnknownRoute

        raise UnknownRoute(f"no FHIR interaction at {request.url.path}")
    return await _operation(rtype, rid, op, request, "GET")


@router.post("/{rtype}/{rid}/{op}", summary="instance operation ($apply, $everything)", openapi_extra=_JSON_BODY)
async def operation_post(rtype: str, rid: str, op: str, request: Request) -> FhirResponse:
    if not op.startswith("$"):
        from careflow.api.errors import UnknownRoute

        raise UnknownRoute(f"no FHIR interaction at {request.url.path}")
    return await _operation(rtype, rid, op, request, "POST")
