"""The Subscription ledger: delivery state and gapless numbered events per Subscription.

The Subscription resources themselves live in the resource store (history, audit, search like any
resource); what the IG asks the server to remember beside them (who made it, the events handed out
and how far delivery got, the failing run of attempts) lives here, in two tables on the same database
(``subscription_state``, ``subscription_event``; migration 0007), or in memory beside a
``MemoryRepository``. Event numbers are gapless per Subscription because the counter is incremented
in the transaction that inserts the event row, and a replayed outbox claim adds nothing: one
resource version is one event (unique per Subscription, focus and version; outbox ids are no key,
SQLite hands a deleted row's id out again).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Protocol

from sqlalchemy import Engine, and_, delete, insert, select, update

from careflow.fhir import exact_json
from careflow.store.tables import subscription_event, subscription_state

LIVE = ("requested", "active")


@dataclass(frozen=True)
class SubState:
    id: str
    principal: dict[str, Any]
    status: str
    events: int = 0
    delivered: int = 0
    failures: int = 0
    first_failure: datetime | None = None
    next_attempt: datetime | None = None
    last_sent: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class EventRow:
    number: int
    focus: str
    version: int
    action: str
    occurred: datetime
    state: str  # pending | sent | withheld


@dataclass(frozen=True)
class Match:
    """One Subscription an outbox event matched."""

    sub_id: str
    focus: str
    version: int
    action: str
    occurred: datetime | None = None  # when the change was written (None: the time ``record`` is given)


_STATE_FIELDS = ("status", "failures", "first_failure", "next_attempt", "last_sent", "error", "delivered")


class Ledger(Protocol):
    def register(self, sub_id: str, principal: dict[str, Any], status: str) -> bool:
        """Start keeping a Subscription (False: it was kept already, nothing changed)."""
        ...

    def get(self, sub_id: str) -> SubState | None: ...

    def live(self) -> list[SubState]:
        """Subscriptions that are requested or active."""
        ...

    def change(self, sub_id: str, **fields: Any) -> None:
        """Set some of status, failures, first_failure, next_attempt, last_sent, error, delivered."""
        ...

    def remove(self, sub_id: str) -> None: ...

    def record(self, matches: Iterable[Match], occurred: datetime) -> None:
        """Number and keep the matches, in their order (one transaction for all of them)."""
        ...

    def events(self, sub_id: str, since: int, until: int | None = None, limit: int = 1000) -> list[EventRow]:
        """Events numbered ``since``..``until`` (inclusive), oldest first."""
        ...

    def settle(self, sub_id: str, sent: list[int], withheld: list[int], through: int, now: datetime) -> None:
        """Mark events sent or withheld, delivery done through ``through``, the failing run over."""
        ...


def _naive(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=timezone.utc)


class SqlLedger:
    """The ledger in the SQL store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _state(self, row: Any) -> SubState:
        return SubState(row.id, exact_json.loads(row.principal), row.status, row.events, row.delivered, row.failures,
                        _aware(row.first_failure), _aware(row.next_attempt), _aware(row.last_sent), row.error)

    def register(self, sub_id: str, principal: dict[str, Any], status: str) -> bool:
        with self.engine.begin() as conn:
            if conn.execute(select(subscription_state.c.id).where(subscription_state.c.id == sub_id)).first():
                return False
            conn.execute(insert(subscription_state).values(
                id=sub_id, principal=exact_json.dumps(principal), status=status, events=0, delivered=0, failures=0))
            return True

    def get(self, sub_id: str) -> SubState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscription_state).where(subscription_state.c.id == sub_id)).first()
        return self._state(row) if row is not None else None

    def live(self) -> list[SubState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(subscription_state).where(subscription_state.c.status.in_(LIVE))
                                .order_by(subscription_state.c.id)).all()
        return [self._state(r) for r in rows]

    def change(self, sub_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_STATE_FIELDS)
        if unknown:
            raise TypeError(f"not a ledger field: {sorted(unknown)}")
        values = {k: _naive(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        with self.engine.begin() as conn:
            conn.execute(update(subscription_state).where(subscription_state.c.id == sub_id).values(**values))

    def remove(self, sub_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(subscription_event).where(subscription_event.c.sub_id == sub_id))
            conn.execute(delete(subscription_state).where(subscription_state.c.id == sub_id))

    def record(self, matches: Iterable[Match], occurred: datetime) -> None:
        """Per Subscription a handful of statements whatever the number of matches: take the
        counter's row lock, drop what is numbered already (a replayed claim), move the counter on by
        the rest and insert them in one ``executemany``."""
        per_sub: dict[str, dict[tuple[str, int], Match]] = {}
        for m in matches:
            per_sub.setdefault(m.sub_id, {}).setdefault((m.focus, m.version), m)
        state, event = subscription_state, subscription_event
        with self.engine.begin() as conn:
            for sub_id, wanted in per_sub.items():
                # the no-op increment takes the row's write lock, so concurrent matchers queue here
                if conn.execute(update(state).where(state.c.id == sub_id).values(events=state.c.events)).rowcount == 0:
                    continue  # the Subscription was removed meanwhile
                focuses = sorted({f for f, _ in wanted})
                for start in range(0, len(focuses), 500):
                    for row in conn.execute(select(event.c.focus, event.c.version).where(and_(
                            event.c.sub_id == sub_id, event.c.focus.in_(focuses[start:start + 500])))):
                        wanted.pop((row.focus, row.version), None)
                if not wanted:
                    continue
                top = conn.execute(update(state).where(state.c.id == sub_id)
                                   .values(events=state.c.events + len(wanted)).returning(state.c.events)).scalar_one()
                first = int(top) - len(wanted) + 1
                conn.execute(insert(event), [
                    {"sub_id": sub_id, "number": first + i, "focus": m.focus, "version": m.version, "action": m.action,
                     "occurred": _naive(m.occurred or occurred), "state": "pending"}
                    for i, m in enumerate(wanted.values())])

    def events(self, sub_id: str, since: int, until: int | None = None, limit: int = 1000) -> list[EventRow]:
        stmt = select(subscription_event).where(and_(subscription_event.c.sub_id == sub_id,
                                                     subscription_event.c.number >= since))
        if until is not None:
            stmt = stmt.where(subscription_event.c.number <= until)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(subscription_event.c.number).limit(limit)).all()
        return [EventRow(r.number, r.focus, r.version, r.action, _aware(r.occurred) or r.occurred, r.state)
                for r in rows]

    def settle(self, sub_id: str, sent: list[int], withheld: list[int], through: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            for state, numbers in (("sent", sent), ("withheld", withheld)):
                if numbers:
                    conn.execute(update(subscription_event).where(and_(
                        subscription_event.c.sub_id == sub_id, subscription_event.c.number.in_(numbers)))
                        .values(state=state))
            values: dict[str, Any] = {"delivered": through, "failures": 0, "first_failure": None,
                                      "next_attempt": None, "error": None}
            if sent:
                values["last_sent"] = _naive(now)
            conn.execute(update(subscription_state).where(subscription_state.c.id == sub_id).values(**values))


class MemoryLedger:
    """The ledger beside a ``MemoryRepository`` (tests, dry runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, SubState] = {}
        self._events: dict[str, dict[int, EventRow]] = {}

    def register(self, sub_id: str, principal: dict[str, Any], status: str) -> bool:
        with self._lock:
            if sub_id in self._states:
                return False
            self._states[sub_id] = SubState(sub_id, principal, status)
            self._events[sub_id] = {}
            return True

    def get(self, sub_id: str) -> SubState | None:
        with self._lock:
            return self._states.get(sub_id)

    def live(self) -> list[SubState]:
        with self._lock:
            return [s for _, s in sorted(self._states.items()) if s.status in LIVE]

    def change(self, sub_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_STATE_FIELDS)
        if unknown:
            raise TypeError(f"not a ledger field: {sorted(unknown)}")
        with self._lock:
            if sub_id in self._states:
                self._states[sub_id] = replace(self._states[sub_id], **fields)

    def remove(self, sub_id: str) -> None:
        with self._lock:
            self._states.pop(sub_id, None)
            self._events.pop(sub_id, None)

    def record(self, matches: Iterable[Match], occurred: datetime) -> None:
        with self._lock:
            for m in matches:
                state, events = self._states.get(m.sub_id), self._events.get(m.sub_id)
                if state is None or events is None or any(
                        (e.focus, e.version) == (m.focus, m.version) for e in events.values()):
                    continue
                number = state.events + 1
                self._states[m.sub_id] = replace(state, events=number)
                events[number] = EventRow(number, m.focus, m.version, m.action, m.occurred or occurred, "pending")

    def events(self, sub_id: str, since: int, until: int | None = None, limit: int = 1000) -> list[EventRow]:
        with self._lock:
            rows = [row for n, row in sorted(self._events.get(sub_id, {}).items())
                    if n >= since and (until is None or n <= until)]
        return rows[:limit]

    def settle(self, sub_id: str, sent: list[int], withheld: list[int], through: int, now: datetime) -> None:
        with self._lock:
            events = self._events.get(sub_id, {})
            for state, numbers in (("sent", sent), ("withheld", withheld)):
                for n in numbers:
                    if n in events:
                        events[n] = replace(events[n], state=state)
            if sub_id in self._states:
                s = self._states[sub_id]
                self._states[sub_id] = replace(s, delivered=through, failures=0, first_failure=None, next_attempt=None,
                                               error=None, last_sent=now if sent else s.last_sent)


_LEDGER_ATTR = "_careflow_subscription_ledger"


def ledger_for(repo: Any) -> Ledger:
    """The ledger on the same storage as ``repo`` (one per repository object)."""
    existing = getattr(repo, _LEDGER_ATTR, None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    engine = getattr(repo, "engine", None)
    ledger: Ledger = SqlLedger(engine) if isinstance(engine, Engine) else MemoryLedger()
    setattr(repo, _LEDGER_ATTR, ledger)
    return ledger
