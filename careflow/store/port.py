"""The port every careflow resource store implements: what the API and the engine may ask of storage.

Two implementations: ``careflow.store.sql.SqlRepository`` (SQLAlchemy; SQLite embedded, PostgreSQL in
production) and ``careflow.store.memory.MemoryRepository`` (a pure in-memory twin for tests and
planning dry-runs).  One contract suite (tests/store) runs against both, so callers can rely on:

* every read and write passes through a ``Repository`` (listeners see every write, so access rules,
  audit and the outbox hook in at one place);
* a ``UnitOfWork`` is one transaction: all its writes (resources, history, index rows, outbox events,
  listener side effects) commit together or not at all;
* uniqueness (conditional create, create-if-absent, If-Match) is decided by the database, not by a
  search followed by an insert;
* isolation is READ COMMITTED-like: a unit of work takes the write lock at its first write (so
  read-only units of work never wait for writers), reads before that may predate it, and every check
  a write relies on (current version, existing id, conditional key) is made inside the write;
* resources are plain JSON dicts; the store stamps ``id`` (on create), ``meta.versionId`` (str) and
  ``meta.lastUpdated`` (ISO instant, UTC) and never validates them (the API validates at the edge).

Errors raised (careflow.errors): NotFound, Gone, VersionConflict, PreconditionFailed,
ResourceConflict, InvalidResource, InvalidSearch.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Literal, Protocol, Sequence, runtime_checkable

from careflow.access.principal import Principal
from careflow.fhir import exact_json
from careflow.fhir.search_query import SearchQuery

Action = Literal["create", "update", "delete"]


UNKNOWN: Any = object()
"""``Stored.compartment`` when the store did not read it (work it out from the resource)."""


class Stored:
    """One version of one resource as the store holds it (immutable).

    ``resource`` carries ``meta.versionId`` and ``meta.lastUpdated``; it is ``None`` for a deletion.
    Treat it as read-only (copy before mutating).  ``raw`` is the same resource as JSON bytes: the SQL
    store hands out what it read and parses ``resource`` only when asked, so an adapter that writes
    JSON (e.g. ``orjson.Fragment(stored.raw)`` inside a Bundle) skips a parse/serialise round trip.
    ``compartment`` is the patient the SQL store's ``resource.patient`` column holds for the current
    version (``careflow.access.compartment.patient_of``: an id, ``None`` for directory data, ``""``
    otherwise), or ``UNKNOWN``: the audit trail names the patient of each returned resource without
    parsing its JSON again.
    """

    __slots__ = ("type", "id", "version", "last_updated", "deleted", "_resource", "_raw", "compartment")

    type: str
    id: str
    version: int
    last_updated: datetime  # timezone-aware, UTC
    deleted: bool

    def __init__(
        self, type: str, id: str, version: int, last_updated: datetime, deleted: bool,
        resource: dict[str, Any] | None = None, *, raw: bytes | None = None, compartment: object = UNKNOWN,
    ) -> None:
        for name, value in (("type", type), ("id", id), ("version", version), ("last_updated", last_updated),
                            ("deleted", deleted), ("_resource", resource), ("_raw", raw),
                            ("compartment", compartment)):
            object.__setattr__(self, name, value)

    @property
    def resource(self) -> dict[str, Any] | None:
        if self._resource is None and self._raw is not None:
            object.__setattr__(self, "_resource", exact_json.loads(self._raw))
        return self._resource

    @property
    def raw(self) -> bytes | None:
        if self._raw is None and self._resource is not None:
            object.__setattr__(self, "_raw", exact_json.dumps(self._resource))
        return self._raw

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Stored is immutable (tried to set {name})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stored):
            return NotImplemented
        return (self.type, self.id, self.version, self.last_updated, self.deleted, self.resource) == (
            other.type, other.id, other.version, other.last_updated, other.deleted, other.resource)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "deleted" if self.deleted else "live"
        return f"Stored({self.type}/{self.id} v{self.version} {state} {self.last_updated.isoformat()})"


@dataclass(frozen=True)
class SearchResult:
    """``total`` counts all matches (``None`` when the query asked ``_total=none``); ``matches`` is
    the requested page; ``included`` holds ``_include`` / ``_revinclude`` resources (no duplicates,
    none that is also in ``matches``); ``next_cursor`` is the ``_cursor`` of the page after this one,
    None when no match follows."""

    total: int | None
    matches: list[Stored]
    included: list[Stored] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """An event recorded in the same transaction as the write that caused it (transactional outbox)."""

    id: int
    topic: str
    payload: dict[str, Any]
    created: datetime  # timezone-aware, UTC


# Called after each write, inside the writing transaction: (action, stored, uow).  Raising aborts the
# whole unit of work.  The engine uses it to add outbox events (uow.outbox_add) for new Observations.
Listener = Callable[[Action, Stored, "UnitOfWork"], None]


@runtime_checkable
class UnitOfWork(Protocol):
    """One transaction on behalf of one principal.  Reads inside it see its own writes."""

    principal: Principal

    def create(self, resource: dict[str, Any], *, if_none_exist: SearchQuery | None = None) -> tuple[Stored, bool]:
        """POST: assigns a server id (uuid4; any id in the body is replaced).  With ``if_none_exist``:
        one match -> ``(existing, False)``; several -> PreconditionFailed; none -> created (a query
        without criteria is no condition).  Concurrent identical conditional creates yield exactly one
        resource."""
        ...

    def create_if_absent(self, resource: dict[str, Any]) -> tuple[Stored, bool]:
        """Create with the client id the resource carries; if that id exists (even deleted) leave it
        untouched and return ``(current, False)``.  Idempotent planning relies on this."""
        ...

    def update(self, resource: dict[str, Any], *, if_match: int | None = None) -> tuple[Stored, bool]:
        """PUT Type/id: new version (``created`` False) or create with the client id (``created`` True;
        also when the current version is a deletion).  ``if_match`` stale -> VersionConflict; if_match
        on an absent resource -> NotFound."""
        ...

    def conditional_update(
        self, resource: dict[str, Any], query: SearchQuery, *, if_match: int | None = None
    ) -> tuple[Stored, bool]:
        """PUT Type?query: no match -> create (the body's id if any, else a server id); one match ->
        update it (a body id that differs -> ResourceConflict); several -> PreconditionFailed."""
        ...

    def delete(self, type: str, id: str, *, if_match: int | None = None) -> Stored | None:
        """Soft delete: a new, deleted version (history kept).  Returns it, or ``None`` when the resource
        is absent or already deleted (DELETE is idempotent)."""
        ...

    def expunge(self, type: str, id: str) -> list[tuple[str, str]]:
        """Erase for good: every version of one resource, or a Patient's whole record (system only).
        Returns the (type, id) of every resource removed."""
        ...

    def conditional_delete(self, type: str, query: SearchQuery, *, multiple: bool = False) -> list[Stored]:
        """DELETE Type?query: deletes the match; several matches -> PreconditionFailed unless
        ``multiple``.  Returns the deletion versions written."""
        ...

    def read(self, type: str, id: str) -> Stored:
        """Current version; NotFound when never stored, Gone when the current version is a deletion."""
        ...

    def vread(self, type: str, id: str, version: int) -> Stored:
        """One version (a deleted version is returned with ``deleted`` True); NotFound when absent."""
        ...

    def history(
        self, type: str | None = None, id: str | None = None, *, since: datetime | None = None,
        count: int = 100, offset: int = 0,
    ) -> tuple[int, list[Stored]]:
        """(total, page) of versions, newest first: of one resource, of one type, or of everything."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        ...

    def search_many(self, type: str, params: list[tuple[str, str]], param: str, values: Sequence[str]) -> list[Stored]:
        """Every match of the search ``type?params`` whose ``param`` (``_id``, or a reference parameter
        such as ``patient``, given plain ids) is one of ``values``: what ``param=v1,v2,…`` added to the
        search finds, all of it, unpaged and in no set order, narrowed and audited like a search.  For
        engines that read the records of thousands of patients at once: the SQL store answers a
        thousand values per statement where paged searches by id lists cost a query per hundred."""
        ...

    def outbox_add(self, topic: str, payload: dict[str, Any]) -> None:
        """Record an event that commits (or not) with this unit of work."""
        ...

    # the sweep's due-date index (careflow.engine.sweep; system only): every unit of work marks the
    # patients whose resources it wrote due at once, before it commits
    due_touched: frozenset[str]  # after the unit of work ended: the patients it marked due

    def due_patients(self, today: date) -> list[str]:
        """Patients the sweep may have work for on ``today``, sorted."""
        ...

    def due_generations(self, patient_ids: list[str]) -> dict[str, int]:
        """Each patient's write generation, read before their plans are read."""
        ...

    def due_settle(self, rows: list[tuple[str, int, date | None]]) -> int:
        """(patient, generation read, next due day; None: never) where the generation still holds."""
        ...

    def due_stamp(self) -> str | None:
        """The programme fingerprint the due days were computed with."""
        ...

    def due_restamp(self, stamp: str) -> None:
        """Every patient due now, computed from here on with the programmes ``stamp`` names."""
        ...

    def grant_emergency(self, patient_id: str, reason: str) -> Any:
        """Break-the-glass for the calling practitioner (careflow.access.grants.Grant returned): access
        to one patient for the policy's hours, the patient's GP told by a Communication, an outbox
        event ``access.emergency`` for the audit trail.  Forbidden for anyone but a practitioner."""
        ...


@runtime_checkable
class Repository(Protocol):
    """The one place every read and write passes."""

    def unit_of_work(self, principal: Principal) -> AbstractContextManager[UnitOfWork]:
        """One transaction on behalf of ``principal``: commit on normal exit, rollback when the block
        raises.  Every read, search and write inside it is narrowed to what ``principal`` may see and do."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """Run ``listener`` after every write, inside the writing transaction."""
        ...

    # system read conveniences for the engine, the CLI and tests: each runs in its own short read
    # transaction as careflow.access.principal.SYSTEM.  An adapter serving a person never uses them: it
    # opens a unit of work for that person.
    def read(self, type: str, id: str) -> Stored: ...

    def vread(self, type: str, id: str, version: int) -> Stored: ...

    def history(
        self, type: str | None = None, id: str | None = None, *, since: datetime | None = None,
        count: int = 100, offset: int = 0,
    ) -> tuple[int, list[Stored]]: ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def search_many(self, type: str, params: list[tuple[str, str]], param: str, values: Sequence[str]) -> list[Stored]: ...

    # outbox consumption (each call is its own transaction)
    def outbox_claim(self, limit: int = 100, *, topics: tuple[str, ...] | None = None,
                     exclude: tuple[str, ...] = ()) -> list[OutboxEvent]:
        """Take up to ``limit`` unclaimed events, oldest first; concurrent consumers never get the same
        event.  A claimed event not marked done within the lease (5 minutes) becomes claimable again.
        ``topics`` / ``exclude`` narrow the claim, so two consumers of one outbox (the engine's rules,
        the Subscription matcher) each take only their own events."""
        ...

    def outbox_done(self, ids: list[int]) -> None:
        """Mark claimed events processed (they are deleted)."""
        ...

    def refresh_statistics(self) -> None:
        """Bring the query planner's statistics up to date: called when bulk work (a region load,
        an import, an enrolment run) ends, so the next searches are planned for the store as it is."""
        ...

    def try_lead(self, name: str) -> Any:
        """The lease ``name`` (careflow.store.leader.Lease) when no other process sharing this store
        holds it, else None: what runs once across ``careflow serve --workers N`` takes it."""
        ...

    def checkpoint(self) -> None:
        """Fold the write-ahead journal into the store and empty it (SQLite's WAL): called between the
        batches of bulk work, when it ends and at close, so the journal stays small on disk."""
        ...

    def close(self) -> None: ...
