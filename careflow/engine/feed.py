"""What feeds the Subscriptions: one outbox event per Task or CarePlan version, in the writing transaction.

Kept apart from matching and delivery (careflow.engine.subscriptions) because every writer installs
it: ``careflow serve`` on its repository, and each engine entry point that writes Tasks or CarePlans
(enrolment, the sweep, event processing, programme revision) on the repository it writes through,
so the worker's bulk writes reach Subscriptions exactly like the API's.

The event rides in the write's own unit of work (``uow.outbox_add``), so it commits with the write
or not at all: nothing is lost when a process dies after the commit, nothing is told of a rolled
back write. The SQL store buffers outbox rows with the version and index rows and writes them in
one ``executemany`` (SQLite) or one ``COPY`` (PostgreSQL) per unit of work, so a batch of 50
enrolled patients costs one more statement, not one per Task.

Each event carries the references a Subscription filter can test (``keys``: patient, owner, care
teams), so the matcher decides without reading the resource back; access is still checked when an
event is delivered, by reading it as the subscriber.
"""

from __future__ import annotations

from typing import Any

from careflow.access.principal import Principal, Scope
from careflow.fhir import backport
from careflow.store.port import Action, Repository, Stored, UnitOfWork

RESOURCE_TOPIC = "subscription.resource"
CHANGED_TOPIC = "subscription.changed"
SUBSCRIPTION_TOPICS = (RESOURCE_TOPIC, CHANGED_TOPIC)
WATCHED_TYPES = frozenset(backport.PATIENT_ELEMENT)
_INSTALLED_ATTR = "_careflow_subscription_listener"


def principal_json(p: Principal) -> dict[str, Any]:
    return {
        "kind": p.kind, "id": p.id, "acts_as": list(p.acts_as), "discipline": p.discipline, "patient": p.patient,
        "scopes": None if p.scopes is None else [
            {"context": s.context, "type": s.type, "interactions": sorted(s.interactions),
             "filter": [list(f) for f in s.filter]} for s in p.scopes],
        "client_id": p.client_id, "on_behalf_of": p.on_behalf_of, "organizations": list(p.organizations),
    }


def principal_from(d: dict[str, Any]) -> Principal:
    scopes = d.get("scopes")
    return Principal(
        kind=d["kind"], id=d["id"], acts_as=tuple(d.get("acts_as") or ()), discipline=d.get("discipline"),
        patient=d.get("patient"),
        scopes=None if scopes is None else tuple(
            Scope(s["context"], s["type"], frozenset(s["interactions"]), tuple((a, b) for a, b in s["filter"]))
            for s in scopes),
        client_id=d.get("client_id"), on_behalf_of=d.get("on_behalf_of"),
        organizations=tuple(d.get("organizations") or ()),
    )


def outbox_listener(action: Action, stored: Stored, uow: UnitOfWork) -> None:
    """Record what the Subscription matcher needs (runs inside the writing transaction)."""
    if stored.type in WATCHED_TYPES:
        payload: dict[str, Any] = {"type": stored.type, "id": stored.id, "version": stored.version, "action": action}
        if stored.resource is not None:  # a deletion has no body: the matcher reads the version it removed
            payload["keys"] = backport.match_keys(stored.resource)
        uow.outbox_add(RESOURCE_TOPIC, payload)
    elif stored.type == "Subscription":
        uow.outbox_add(CHANGED_TOPIC, {"id": stored.id, "principal": principal_json(uow.principal)})


def install(repo: Repository) -> None:
    """Register the listener on ``repo`` once (calling it again is a no-op)."""
    if getattr(repo, _INSTALLED_ATTR, False):
        return
    repo.add_listener(outbox_listener)
    setattr(repo, _INSTALLED_ATTR, True)
