"""Subscriptions at the API: writes checked and stamped, ``$status``, ``$events``, the signing keys.

* A Subscription a client writes is read as the Backport IG says (careflow.fhir.backport.parse): a
  topic careflow publishes, rest-hook, a payload content; anything else is a 400 that says what to
  change. The server stamps who wrote it (the owner extension, never taken from the body) and starts
  a new one as ``requested``: the handshake decides ``active``. Only its owner (or the system) may
  change or delete it (careflow.access.rules), and only a caller who may read the topic's resource
  type may subscribe to it.
* ``Subscription/[id]/$status`` (query-status) and ``Subscription/[id]/$events`` (query-event;
  ``eventsSinceNumber``, ``eventsUntilNumber``, ``content``) answer the owner only; ``$events`` reads
  each focus in the caller's own unit of work, so it returns exactly what delivery would send now.
* ``/.well-known/jwks.json``: the public keys that verify notification signatures.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request

from careflow.api.errors import Forbidden, InvalidRequest
from careflow.api.interactions import Context, FhirRequest, FhirResult
from careflow.api.responses import FhirResponse
from careflow.engine import endpoints
from careflow.errors import Gone, NotFound
from careflow.fhir import backport
from careflow.fhir.search_values import instant_text
from careflow.fhir.validation import validate_resource
from careflow.store.port import UnitOfWork
from careflow.store.subscriptions import ledger_for

STATUS_DEFINITION = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"
EVENTS_DEFINITION = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"
JWKS_PATH = "/.well-known/jwks.json"
MAX_EVENTS = 1000


def prepare_write(uow: UnitOfWork, req: FhirRequest) -> FhirRequest:
    """The request with its Subscription checked and stamped with its owner (POST and PUT)."""
    body = req.resource
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        return req  # validation at the edge says what is wrong
    if not req.validated:
        validate_resource(body, "Subscription")  # the R4 shape first, so the IG's rules read typed values
    principal = uow.principal
    try:
        spec = backport.parse(body)
    except backport.SubscriptionProblem as exc:
        raise InvalidRequest(str(exc), expression="Subscription") from None
    refused = endpoints.literal_problem(spec.endpoint)
    if refused:
        raise InvalidRequest(refused, expression="Subscription.channel.endpoint")
    if not principal.may(spec.rtype, "r"):
        raise Forbidden(f"the token's scopes do not allow reading {spec.rtype}: no Subscription to its changes")
    stamped = backport.with_owner(body, principal.id)
    if _is_new(uow, req):
        stamped["status"] = "requested"  # the handshake makes it active
        stamped.pop("error", None)
    return dataclasses.replace(req, resource=stamped, validated=True)


def _is_new(uow: UnitOfWork, req: FhirRequest) -> bool:
    if req.method == "POST" or req.id is None:
        return True
    try:
        uow.read("Subscription", req.id)
    except (NotFound, Gone):
        return True
    return False


def _own(uow: UnitOfWork, req: FhirRequest) -> dict[str, Any]:
    assert req.id is not None
    stored = uow.read("Subscription", req.id)
    resource = stored.resource or {}
    if not uow.principal.is_system and backport.owner_of(resource) != uow.principal.id:
        raise NotFound("Subscription", req.id)  # someone else's: answered as absent
    return resource


def _number(params: dict[str, str], name: str) -> int | None:
    if name not in params:
        return None
    text = params[name]
    if not text.isdigit() or len(text) > 18:
        raise InvalidRequest(f"{name} must be a whole event number", expression=name)
    return int(text)


def _params(req: FhirRequest) -> dict[str, str]:
    out = dict(req.params)
    body: Any = req.resource
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                for key in ("valueString", "valueCode", "valueInteger", "valueUnsignedInt"):
                    if key in p:
                        out[p["name"]] = str(p[key])
    return out


def register(state: Any) -> None:
    repo = state.repository

    def status(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
        resource = _own(uow, req)
        spec = backport.parse(resource)
        kept = ledger_for(repo).get(str(req.id))
        since = kept.events if kept is not None else 0
        error = resource.get("error") if isinstance(resource.get("error"), str) else None
        error = error or (kept.error if kept is not None else None)  # why delivery is failing now, if it is
        params = backport.status_parameters(ctx.base, str(req.id), spec.topic, str(resource.get("status")),
                                            "query-status", since, [], spec.content, error)
        bundle = {"resourceType": "Bundle", "type": "searchset", "timestamp": instant_text(ctx.now()), "total": 1,
                  "entry": [{"fullUrl": f"urn:uuid:{params['id']}", "resource": params,
                             "search": {"mode": "match"}}]}
        return FhirResult(200, bundle)

    def events(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
        from careflow.engine.subscriptions import visible_event

        resource = _own(uow, req)
        spec = backport.parse(resource)
        params = _params(req)
        unknown = set(params) - {"eventsSinceNumber", "eventsUntilNumber", "content"}
        if unknown:
            raise InvalidRequest(f"$events takes eventsSinceNumber, eventsUntilNumber and content, not {sorted(unknown)[0]}")
        since = _number(params, "eventsSinceNumber") or 1
        until = _number(params, "eventsUntilNumber")
        content = params.get("content", spec.content)
        if content not in backport.CONTENTS:
            raise InvalidRequest(f"content must be one of {', '.join(backport.CONTENTS)}", expression="content")
        ledger = ledger_for(repo)
        kept = ledger.get(str(req.id))
        shown: list[backport.Event] = []
        if kept is not None:
            for row in ledger.events(str(req.id), since, until, limit=MAX_EVENTS):
                if row.state == "withheld":
                    continue  # delivery decided the subscriber could not see it
                event = visible_event(uow, row, content)
                if event is not None:
                    shown.append(event)
        bundle = backport.notification_bundle(ctx.base, str(req.id), spec.topic, str(resource.get("status")),
                                              "query-event", kept.events if kept else 0, shown, content, ctx.now())
        return FhirResult(200, bundle)

    state.operations[("Subscription", "$status")] = status
    state.operations[("Subscription", "$events")] = events
    state.operation_docs.append(("Subscription", "$status", STATUS_DEFINITION,
                                 "The Subscription's status (query-status), events since it started; owner only."))
    state.operation_docs.append(("Subscription", "$events", EVENTS_DEFINITION,
                                 "Replay of numbered events (eventsSinceNumber, eventsUntilNumber, content), "
                                 "as the caller may see them now; owner only."))


jwks_router = APIRouter()


@jwks_router.get(JWKS_PATH, summary="public keys of the notification signatures")
async def notification_jwks(request: Request) -> FhirResponse:
    from careflow.auth.notification_keys import NotificationSigner

    signer = getattr(request.app.state, "notification_signer", None) or NotificationSigner()
    return FhirResponse(signer.public_jwks(), media_type="application/json")
