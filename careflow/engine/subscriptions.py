"""Subscriptions fed by the transactional outbox: match, number, deliver, retry.

``install(repo)`` adds a listener that records, in the writing transaction, one outbox event per
Task or CarePlan version (``subscription.resource``) and per Subscription write
(``subscription.changed``, with the writer's principal: the subscriber). :class:`Notifier` then

1. **matches** (claim-based, like the engine's rules; ``outbox_claim(topics=...)`` so the two
   consumers never take each other's events): each changed Task or CarePlan version against the
   live Subscriptions' topic and filters, and numbers each match in the ledger (gapless per
   Subscription, a replayed claim adds nothing);
2. **delivers** per Subscription: a handshake while ``requested`` (success makes it ``active``), the
   pending events in number order in batches (``event-notification``), a heartbeat when nothing was
   sent for the heartbeat period. Every body is signed (careflow.auth.notification_keys).

Access is checked at delivery, through the repository port as the subscriber: each event's focus is
read (``vread`` of the event's version) in a unit of work of the principal that made the
Subscription, so a withdrawn consent or an ended care-team membership counts from the next delivery.
An event the subscriber may no longer see is **withheld**: its number stays taken (the ledger keeps
it, marked ``withheld``) but it is not sent, nor returned by ``$events``; the status's
``events-since-subscription-start`` still counts it, so a receiver sees that something was held back,
never what.

A failed POST (no answer, a non-2xx status) is retried with exponential back-off (10 s doubling to
an hour) from the ledger's ``next_attempt``; a failing run lasting :data:`RETRY_WINDOW` (24 h) puts the
Subscription in ``error`` (resource and ledger). The clock is injected, so tests walk through a day
of retries without sleeping. Events stay pending meanwhile; a receiver that was down gets them in
order when it comes back (or replays them with ``$events``) and de-duplicates by event number.

:func:`process_subscriptions` is one round (match then deliver) for a worker;
:class:`SubscriptionConsumer` runs rounds on a thread inside ``careflow serve``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from careflow.access.principal import SYSTEM, Principal, Scope
from careflow.auth.notification_keys import SIGNATURE_HEADER, NotificationSigner
from careflow.engine import endpoints
from careflow.engine.events import SUBSCRIPTION_TOPICS
from careflow.engine.retry import is_transient
from careflow.errors import Gone, NotFound, VersionConflict
from careflow.fhir import backport, exact_json
from careflow.store.port import Action, Repository, Stored, UnitOfWork
from careflow.store.subscriptions import EventRow, Ledger, Match, SubState, ledger_for

log = logging.getLogger("careflow.subscriptions")

RESOURCE_TOPIC, CHANGED_TOPIC = SUBSCRIPTION_TOPICS
WATCHED_TYPES = frozenset({"Task", "CarePlan"})
RETRY_WINDOW = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)
ENV_PUBLIC_URL = "CAREFLOW_PUBLIC_URL"
_INSTALLED_ATTR = "_careflow_subscription_listener"

# (url, body, headers, timeout seconds) -> HTTP status; raises on no answer
Sender = Callable[[str, bytes, dict[str, str], float], int]


# ------------------------------------------------------------------------------- the principal kept

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


# ---------------------------------------------------------------------------------------- listener

def outbox_listener(action: Action, stored: Stored, uow: UnitOfWork) -> None:
    """Record what the Subscription matcher needs (runs inside the writing transaction)."""
    if stored.type in WATCHED_TYPES:
        uow.outbox_add(RESOURCE_TOPIC, {"type": stored.type, "id": stored.id, "version": stored.version,
                                        "action": action})
    elif stored.type == "Subscription":
        uow.outbox_add(CHANGED_TOPIC, {"id": stored.id, "principal": principal_json(uow.principal)})


def install(repo: Repository) -> None:
    """Register the listener on ``repo`` once."""
    if getattr(repo, _INSTALLED_ATTR, False):
        return
    repo.add_listener(outbox_listener)
    setattr(repo, _INSTALLED_ATTR, True)


def visible_event(uow: UnitOfWork, row: EventRow, content: str) -> backport.Event | None:
    """The event as the principal of ``uow`` may see its focus now, or None: the store narrows the
    read (consent, care-team membership, the access matrix), so this is the one access check of
    delivery and of ``$events``."""
    rtype, _, rid = row.focus.partition("/")
    if not uow.principal.may(rtype, "r"):
        return None
    try:
        stored = uow.vread(rtype, rid, row.version)
    except (NotFound, Gone):
        return None
    resource = stored.resource if content == "full-resource" and not stored.deleted else None
    return backport.Event(row.number, row.occurred, row.focus, row.action, resource)


# ------------------------------------------------------------------------------------------ sending

_CLIENT: Any = None
_CLIENT_LOCK = threading.Lock()


def http_sender(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with one shared client (its TLS context and connection pool are made once, not per
    notification); redirects are not followed, an endpoint is the URL the subscriber gave, and it
    is sent to only at a public address (``careflow.engine.endpoints``: checked, then connected to)."""
    import httpx

    global _CLIENT
    target = endpoints.resolve(url)
    with _CLIENT_LOCK:
        if _CLIENT is None:
            _CLIENT = httpx.Client(follow_redirects=False)
        client = _CLIENT
    tls = {"sni_hostname": target.server_name} if url.lower().startswith("https:") else {}
    return int(client.post(target.url, content=body, headers={**headers, "Host": target.host_header},
                           timeout=timeout, extensions=tls).status_code)


def backoff(failures: int) -> timedelta:
    """Wait after the ``failures``-th failure in a row: 10 s, 20 s, 40 s ... at most an hour."""
    wait: timedelta = FIRST_RETRY * (2 ** max(0, min(failures, 30) - 1))
    return min(wait, LONGEST_RETRY)


def public_base() -> str:
    """The FHIR base notifications point at (``CAREFLOW_PUBLIC_URL``)."""
    return os.environ.get(ENV_PUBLIC_URL, "http://localhost:8080/fhir").rstrip("/")


@dataclass
class Round:
    matched: int = 0
    sent: int = 0
    withheld: int = 0
    failed: int = 0
    handshakes: int = 0
    heartbeats: int = 0
    errors: int = 0

    def merge(self, other: "Round") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Notifier:
    """Matching and delivery over one repository (its ledger beside it)."""

    repo: Repository
    base: str = field(default_factory=public_base)
    send: Sender = http_sender
    signer: NotificationSigner = field(default_factory=NotificationSigner)
    ledger: Ledger | None = None

    def __post_init__(self) -> None:
        if self.ledger is None:
            self.ledger = ledger_for(self.repo)

    @property
    def _ledger(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    # --- matching ---------------------------------------------------------------------------
    def match(self, limit: int = 200) -> int:
        """Claim up to ``limit`` Subscription outbox events; number the matches. Returns how many
        events were claimed."""
        events = self.repo.outbox_claim(limit, topics=SUBSCRIPTION_TOPICS)
        done: list[int] = []
        specs: dict[str, backport.Spec] | None = None
        try:
            for event in events:
                if event.topic == CHANGED_TOPIC:
                    self._subscription_changed(str(event.payload.get("id", "")), event.payload.get("principal") or {})
                    specs = None  # the live set may have changed
                else:
                    if specs is None:
                        specs = self._live_specs()
                    self._resource_changed(event.payload, event.created, specs)
                done.append(event.id)
        finally:
            if done:
                self.repo.outbox_done(done)
        return len(events)

    def _live_specs(self) -> dict[str, backport.Spec]:
        out: dict[str, backport.Spec] = {}
        for state in self._ledger.live():
            try:
                resource = self.repo.read("Subscription", state.id).resource or {}
                out[state.id] = backport.parse(resource)
            except (NotFound, Gone, backport.SubscriptionProblem):
                continue
        return out

    def _subscription_changed(self, sub_id: str, principal: dict[str, Any]) -> None:
        try:
            resource = self.repo.read("Subscription", sub_id).resource or {}
        except (NotFound, Gone):
            self._ledger.remove(sub_id)  # deleted: nothing more is sent
            return
        status = resource.get("status")
        state = self._ledger.get(sub_id)
        if state is None:
            if status in ("requested", "active") and principal:
                self._ledger.register(sub_id, principal, "requested")
            return
        if status == "off" and state.status != "off":
            self._ledger.change(sub_id, status="off", next_attempt=None)
        elif status == "requested" and state.status in ("off", "error"):
            # the subscriber asks again (after fixing its endpoint): a new handshake, a new failure run
            self._ledger.change(sub_id, status="requested", failures=0, first_failure=None, next_attempt=None,
                                error=None)

    def _team_patient(self) -> Callable[[str], str | None]:
        cache: dict[str, str | None] = {}

        def lookup(team: str) -> str | None:
            if team not in cache:
                kind, _, tid = team.partition("/")
                try:
                    res = self.repo.read(kind, tid).resource or {} if kind == "CareTeam" else {}
                except (NotFound, Gone):
                    res = {}
                ref = (res.get("subject") or {}).get("reference")
                cache[team] = backport._ref_key(ref) if isinstance(ref, str) else None
            return cache[team]

        return lookup

    def _resource_changed(self, payload: dict[str, Any], occurred: datetime,
                          specs: dict[str, backport.Spec]) -> None:
        rtype, rid, version = str(payload.get("type")), str(payload.get("id")), int(payload.get("version") or 0)
        action = str(payload.get("action") or "update")
        relevant = {sid: s for sid, s in specs.items() if s.rtype == rtype}
        if not relevant:
            return
        try:
            stored = self.repo.vread(rtype, rid, version)
            if stored.deleted and version > 1:  # a deletion matches as the version it removed
                stored = self.repo.vread(rtype, rid, version - 1)
        except NotFound:
            return  # erased for good since (purge): there is nothing left to tell
        resource = stored.resource or {}
        team_patient = self._team_patient()
        matches = [Match(sid, f"{rtype}/{rid}", version, action)
                   for sid, spec in relevant.items() if backport.matches(spec, resource, team_patient)]
        if matches:
            self._ledger.record(matches, occurred)

    # --- delivery ---------------------------------------------------------------------------
    def deliver(self, now: datetime) -> Round:
        """One delivery pass over every live Subscription whose next attempt is due."""
        out = Round()
        for state in self._ledger.live():
            if state.next_attempt is not None and now < state.next_attempt:
                continue
            try:
                resource = self.repo.read("Subscription", state.id).resource or {}
                spec = backport.parse(resource)
            except (NotFound, Gone):
                self._ledger.remove(state.id)
                continue
            except backport.SubscriptionProblem as exc:
                self._set_error(state, str(exc), out)
                continue
            if spec.end is not None and spec.end <= now:
                self._ledger.change(state.id, status="off", next_attempt=None)  # Subscription.end has come
                self._set_resource_status(state.id, "off", None)
                continue
            if state.status == "requested":
                self._handshake(state, spec, now, out)
            else:
                self._deliver_events(state, spec, now, out)
        return out

    def _post(self, state: SubState, spec: backport.Spec, bundle: dict[str, Any]) -> str | None:
        """POST one notification; None on success, else why it failed (no private data)."""
        body = exact_json.dumps(bundle)
        headers = {**dict(spec.headers), "Content-Type": "application/fhir+json",
                   SIGNATURE_HEADER: self.signer.sign(body)}
        try:
            status = self.send(spec.endpoint, body, headers, float(spec.timeout))
        except endpoints.EndpointRefused as exc:
            return str(exc)
        except Exception as exc:  # no answer at all: refused, timed out, DNS
            return f"no answer from the endpoint ({type(exc).__name__})"
        return None if 200 <= status < 300 else f"the endpoint answered HTTP {status}"

    def _bundle(self, state: SubState, spec: backport.Spec, status: str, kind: str, events: list[backport.Event],
                now: datetime, events_since: int | None = None) -> dict[str, Any]:
        return backport.notification_bundle(self.base, state.id, spec.topic, status, kind,
                                            state.events if events_since is None else events_since,
                                            events, spec.content, now)

    def _handshake(self, state: SubState, spec: backport.Spec, now: datetime, out: Round) -> None:
        problem = self._post(state, spec, self._bundle(state, spec, "requested", "handshake", [], now))
        if problem is not None:
            self._failed(state, problem, now, out)
            return
        out.handshakes += 1
        self._ledger.change(state.id, status="active", failures=0, first_failure=None, next_attempt=None,
                            error=None, last_sent=now)
        self._set_resource_status(state.id, "active", None)
        fresh = self._ledger.get(state.id)
        if fresh is not None:
            self._deliver_events(fresh, spec, now, out)

    def visible_event(self, principal: Principal, row: EventRow, content: str) -> backport.Event | None:
        """The event as ``principal`` may see it now, or None (withheld): read through the port."""
        with self.repo.unit_of_work(principal) as uow:
            return visible_event(uow, row, content)

    def _deliver_events(self, state: SubState, spec: backport.Spec, now: datetime, out: Round) -> None:
        principal = principal_from(state.principal)
        delivered = state.delivered
        while True:
            rows = self._ledger.events(state.id, delivered + 1, limit=spec.max_count)
            if not rows:
                break
            shown: list[backport.Event] = []
            withheld: list[int] = []
            for row in rows:
                event = self.visible_event(principal, row, spec.content)
                if event is None:
                    withheld.append(row.number)
                else:
                    shown.append(event)
            through = rows[-1].number
            if shown:
                bundle = self._bundle(state, spec, "active", "event-notification", shown, now,
                                      events_since=max(through, state.events))
                problem = self._post(state, spec, bundle)
                if problem is not None:
                    self._failed(state, problem, now, out)
                    return
            self._ledger.settle(state.id, [e.number for e in shown], withheld, through, now)
            out.sent += len(shown)
            out.withheld += len(withheld)
            delivered = through
            if shown:
                state = self._ledger.get(state.id) or state
        if spec.heartbeat is not None:
            last = state.last_sent
            if last is None or now - last >= timedelta(seconds=spec.heartbeat):
                problem = self._post(state, spec, self._bundle(state, spec, "active", "heartbeat", [], now))
                if problem is not None:
                    self._failed(state, problem, now, out)
                    return
                out.heartbeats += 1
                self._ledger.change(state.id, last_sent=now, failures=0, first_failure=None, next_attempt=None,
                                    error=None)

    def _failed(self, state: SubState, problem: str, now: datetime, out: Round) -> None:
        out.failed += 1
        first = state.first_failure or now
        failures = state.failures + 1
        if now - first >= RETRY_WINDOW:
            self._set_error(state, f"{problem}; retried since {backport.instant(first)}", out)
            return
        self._ledger.change(state.id, failures=failures, first_failure=first, next_attempt=now + backoff(failures),
                            error=problem)
        log.info("subscription %s: %s; retry %d", state.id, problem, failures)

    def _set_error(self, state: SubState, problem: str, out: Round) -> None:
        out.errors += 1
        self._ledger.change(state.id, status="error", error=problem, next_attempt=None)
        self._set_resource_status(state.id, "error", problem)
        log.warning("subscription %s is in error: %s", state.id, problem)

    def _set_resource_status(self, sub_id: str, status: str, error: str | None) -> None:
        for _ in range(3):
            try:
                with self.repo.unit_of_work(SYSTEM) as uow:
                    current = uow.read("Subscription", sub_id)
                    resource = dict(current.resource or {})
                    if resource.get("status") == status and resource.get("error") == error:
                        return
                    resource["status"] = status
                    if error:
                        resource["error"] = error
                    else:
                        resource.pop("error", None)
                    uow.update(resource, if_match=current.version)
                return
            except VersionConflict:
                continue  # the subscriber changed it meanwhile: read again
            except (NotFound, Gone):
                return

    def run_once(self, now: datetime, limit: int = 200) -> Round:
        """Match what the outbox holds, then deliver what is due."""
        out = Round()
        while True:
            n = self.match(limit)
            out.matched += n
            if n < limit:
                break
        out.merge(self.deliver(now))
        return out


def process_subscriptions(repo: Repository, now: datetime, *, base: str | None = None,
                          send: Sender = http_sender) -> Round:
    """One round for a worker or the command line: match the outbox, deliver what is due. It feeds
    on what writers recorded: ``careflow serve`` installs the listener on its repository (API writes
    and its in-server engine); the worker's own bulk enrolment and sweep writes are not fed (one
    outbox row per Task write of a whole region is a cost to weigh first)."""
    return Notifier(repo, base=base or public_base(), send=send).run_once(now)


class SubscriptionConsumer:
    """A daemon thread running :meth:`Notifier.run_once` every ``interval`` seconds until ``stop()``."""

    def __init__(self, repo: Repository, *, interval: float = 1.0, notifier: Notifier | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        install(repo)
        self.notifier = notifier or Notifier(repo)
        self.interval = interval
        self.now = now or (lambda: datetime.now(timezone.utc))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="careflow-subscriptions", daemon=True)

    def start(self) -> "SubscriptionConsumer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.notifier.run_once(self.now())
            except Exception as exc:  # keep serving: a failing round is tried again on the next tick
                level = logging.INFO if is_transient(exc) else logging.ERROR
                log.log(level, "subscription round failed (%s)", type(exc).__name__)
            self._stop.wait(self.interval)
