"""In-memory twin of the SQL store: same port, same semantics, no database.

For tests and dry runs.  One re-entrant lock serialises writing units of work (like SQLite's single
writer: taken at the first write, held to the end; reads before that take it only while they run);
a unit of work records an undo action per change and replays them backwards on rollback, so its writes
are all-or-nothing.  Search evaluates the same index rows the SQL store writes
(``careflow.fhir.search_match``), blinded like the SQL store's with a key of this repository, so
identifying parameters answer exactly as they do there (the resources themselves stay plaintext in
memory: nothing of the twin reaches a disk).
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from careflow.access.compartment import ORPHAN, patient_of
from careflow.access.grants import DERIVED, SHARING, Grant
from careflow.access.policy import AccessPolicy
from careflow.access.principal import SYSTEM, Principal
from careflow.access.rules import View
from careflow.audit.log import MemoryAuditLog, audit_enabled
from careflow.errors import Gone, NotFound
from careflow.fhir import exact_json
from careflow.fhir.identifying import Protection, hmac_blind
from careflow.fhir.search_cursor import Cursor, cursor_gone
from careflow.fhir.search_index import IndexRows
from careflow.fhir.search_match import Candidate, after_cursor, matches_all, sort_candidates, sort_values
from careflow.fhir.search_query import TOTAL_CAP, SearchQuery
from careflow.fhir.search_values import to_utc_naive
from careflow.store.leader import InProcessLeases
from careflow.store.port import Listener, OutboxEvent, SearchResult, Stored
from careflow.store.unit_of_work import DUE_NOW, Current, RepositoryReads, UnitOfWorkBase, utc_now

OUTBOX_LEASE = timedelta(minutes=5)
MAX_INCLUDE_ROUNDS = 4


@dataclass
class _Entry:
    seq: int
    versions: list[Stored] = field(default_factory=list)
    index: IndexRows | None = None  # of the current version; None when deleted
    patient: str | None = ""  # careflow.access.compartment.patient_of the latest live version

    @property
    def current(self) -> Stored:
        return self.versions[-1]


class _State:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, _Entry]] = {}  # type -> id -> entry (creation order)
        self.keys: dict[tuple[str, str], str] = {}
        self.grants: dict[str, dict[tuple[str, str], Grant]] = {}  # patient id -> (grantee, reason) -> grant
        self.outbox: dict[int, tuple[OutboxEvent, datetime | None]] = {}
        self.seq = itertools.count(1)
        self.outbox_seq = itertools.count(1)
        self.due: dict[str, tuple[date, int]] = {}  # the sweep's due-date index: patient -> (next due, generation)
        self.due_stamp: str | None = None


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Reads hold the store lock only while they run, unless the unit of work already writes."""

    @functools.wraps(method)
    def wrapper(self: "MemoryUnitOfWork", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class MemoryUnitOfWork(UnitOfWorkBase):
    def __init__(self, state: _State, listeners: list[Listener], lock: threading.RLock,
                 principal: Principal = SYSTEM, policy: AccessPolicy | None = None, *,
                 protection: Protection | None = None, audit: Any = None) -> None:
        super().__init__(listeners, principal, policy, protection=protection, audit=audit)
        self._s = state
        self._lock = lock
        self._holds_lock = False  # taken at the first write, held to the end (like SQLite's write lock)
        self._undo: list[Callable[[], None]] = []

    def _write(self) -> None:
        if not self._holds_lock:
            self._lock.acquire()
            self._holds_lock = True

    def release(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            self._lock.release()

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()

    # --- primitives ---------------------------------------------------------------------------
    def _entry(self, rtype: str, rid: str) -> _Entry | None:
        return self._s.entries.get(rtype, {}).get(rid)

    def _current(self, rtype: str, rid: str, *, lock: bool) -> Current | None:
        if lock:
            self._write()
        e = self._entry(rtype, rid)
        return None if e is None else Current(e, e.current.version, e.current.deleted)

    def _insert(self, stored: Stored, index: IndexRows) -> bool:
        self._write()
        by_id = self._s.entries.setdefault(stored.type, {})
        if stored.id in by_id:
            return False
        by_id[stored.id] = _Entry(next(self._s.seq), [_frozen(stored)], index, patient_of(stored.resource))
        self._undo.append(lambda: by_id.pop(stored.id, None))
        return True

    def _replace(self, cur: Current, stored: Stored, index: IndexRows | None) -> bool:
        self._write()
        e: _Entry = cur.handle
        if e.current.version != cur.version:
            return False
        old_index, old_patient = e.index, e.patient
        e.versions.append(_frozen(stored))
        e.index = index
        if not stored.deleted:
            e.patient = patient_of(stored.resource)

        def undo() -> None:
            e.versions.pop()
            e.index = old_index
            e.patient = old_patient

        self._undo.append(undo)
        return True

    def _claim(self, rtype: str, key: str, rid: str) -> str | None:
        self._write()
        owner = self._s.keys.get((rtype, key))
        if owner is not None:
            return owner
        self._s.keys[(rtype, key)] = rid
        self._undo.append(lambda: self._s.keys.pop((rtype, key), None))
        return None

    def _take_over(self, rtype: str, key: str, old_owner: str, rid: str) -> bool:
        self._write()
        if self._s.keys.get((rtype, key)) != old_owner:
            return False
        self._s.keys[(rtype, key)] = rid
        self._undo.append(lambda: self._s.keys.__setitem__((rtype, key), old_owner))
        return True

    @_locked
    def _match_ids(self, query: SearchQuery) -> list[str]:
        return [c.id for c in self._matching(self._protection.query(query))]

    # --- access -------------------------------------------------------------------------------
    def _visible(self, rtype: str, e: _Entry, interaction: str = "s") -> bool:
        """The twin of careflow.store.sql_access.access_clause, on one entry."""
        v = self.view(rtype, interaction)
        if v.everything:
            return True
        if v.nothing:
            return False
        return self._visible_in(v, rtype, e)

    def _visible_in(self, v: View, rtype: str, e: _Entry) -> bool:
        pid = e.patient
        ok = False
        if v.directory and pid is None:
            ok = True
        elif v.all_patients and pid is not None:
            ok = True
        elif v.own_patient and pid == v.own_patient:
            ok = True
        elif v.grantees and pid:
            now = to_utc_naive(utc_now())
            grants = [g for g in self._s.grants.get(pid, {}).values()
                      if g.reason != "excluded" and (g.expires is None or g.expires > now)]
            mine = [g for g in grants if g.grantee in v.grantees]
            excluded = any(g.reason == "excluded" and g.grantee in v.excluded_by
                           for g in self._s.grants.get(pid, {}).values())
            if mine and not excluded:
                if any(g.full for g in mine) or v.matrix is None:
                    ok = True
                elif v.matrix:
                    ok = self._matches_filters(rtype, e, v.matrix)
        elif v.summaries and pid == ORPHAN:
            ok = True
        if ok and v.consented_only and pid == ORPHAN:
            ok = v.summaries  # orphan patient data (no consent) only as a summary report
        elif ok and v.consented_only and pid:
            now = to_utc_naive(utc_now())
            held = self._s.grants.get(pid, {}).get((SHARING, "sharing"))
            ok = held is not None and (held.expires is None or held.expires > now)
        if ok and v.only_patient and pid is not None and pid != v.only_patient:
            ok = False
        if ok and v.scope is not None:
            ok = self._matches_filters(rtype, e, v.scope)
        return ok

    def _matches_filters(self, rtype: str, e: _Entry, filters: tuple[tuple[tuple[str, str], ...], ...]) -> bool:
        from careflow.store.sql_access import filter_criteria

        rid = e.current.id
        cand = self._candidate(rtype, rid, e)
        if cand is None:
            return False
        return any(matches_all(filter_criteria(rtype, f), cand, self._resolve_unnarrowed) for f in filters)

    def _resolve_unnarrowed(self, rtype: str, rid: str) -> Candidate | None:
        e = self._entry(rtype, rid)
        return None if e is None else self._candidate(rtype, rid, e)

    @_locked
    def _compartment(self, rtype: str, patient_id: str) -> list[dict[str, Any]]:
        return [e.current.resource for e in self._s.entries.get(rtype, {}).values()
                if e.patient == patient_id and not e.current.deleted and e.current.resource is not None]

    def _set_grants(self, patient_id: str, grants: list[Grant]) -> None:
        self._write()
        before = dict(self._s.grants.get(patient_id, {}))
        kept = {k: g for k, g in before.items() if g.reason not in DERIVED}
        kept.update({(g.grantee, g.reason): g for g in grants if g.reason in DERIVED})
        self._s.grants[patient_id] = kept
        self._undo.append(lambda: self._s.grants.__setitem__(patient_id, before))

    def _add_grant(self, patient_id: str, grant: Grant) -> None:
        self._write()
        before = dict(self._s.grants.get(patient_id, {}))
        self._s.grants[patient_id] = {**before, (grant.grantee, grant.reason): grant}
        self._undo.append(lambda: self._s.grants.__setitem__(patient_id, before))

    # --- reads --------------------------------------------------------------------------------
    @_locked
    def read(self, type: str, id: str) -> Stored:
        e = self._entry(type, id)
        if e is None or not self._visible(type, e, "r"):
            raise NotFound(type, id)
        if e.current.deleted:
            raise Gone(type, id, e.current.version)
        return e.current

    @_locked
    def vread(self, type: str, id: str, version: int) -> Stored:
        e = self._entry(type, id)
        if e is None or not 1 <= version <= len(e.versions) or not self._visible(type, e, "r"):
            raise NotFound(type, id, version)
        return e.versions[version - 1]

    @_locked
    def history(
        self, type: str | None = None, id: str | None = None, *, since: datetime | None = None,
        count: int = 100, offset: int = 0,
    ) -> tuple[int, list[Stored]]:
        if type is not None and id is not None:
            e = self._entry(type, id)
            if e is None:
                raise NotFound(type, id)
            versions = list(e.versions) if self._visible(type, e, "r") else []
        else:
            types = [type] if type is not None else list(self._s.entries)
            versions = [v for t in types for e in self._s.entries.get(t, {}).values() if self._visible(t, e)
                        for v in e.versions]
        if since is not None:
            since = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)  # naive = UTC
            versions = [v for v in versions if v.last_updated >= since]
        versions.sort(key=lambda v: (v.last_updated, v.version), reverse=True)
        return len(versions), versions[offset: offset + count]

    def _candidate(self, rtype: str, rid: str, e: _Entry) -> Candidate | None:
        if e.index is None:
            return None
        return Candidate(rtype, rid, to_utc_naive(e.current.last_updated), e.index, e.seq)

    def _resolve(self, rtype: str, rid: str) -> Candidate | None:
        """A chain target, if the caller may see it (a chain is no way to probe hidden resources)."""
        e = self._entry(rtype, rid)
        return None if e is None or not self._visible(rtype, e) else self._candidate(rtype, rid, e)

    def _matching(self, query: SearchQuery) -> list[Candidate]:
        out = []
        for rid, e in self._s.entries.get(query.type, {}).items():
            cand = self._candidate(query.type, rid, e)
            if cand is not None and self._visible(query.type, e) and matches_all(query.criteria, cand, self._resolve):
                out.append(cand)
        return out

    @_locked
    def search(self, query: SearchQuery) -> SearchResult:
        query = self._protection.query(query)
        found = self._matching(query)
        if query.total_only:
            return SearchResult(len(found), [], [])
        wanted = query.total_wanted
        total: int | None = None
        if wanted in ("accurate", "estimate") or (wanted == "capped" and len(found) <= TOTAL_CAP):
            total = len(found)  # the twin counts everything anyway: its estimate is exact
        ordered = sort_candidates(found, query.sort)
        if query.after is not None:
            entry = self._s.entries.get(query.type, {}).get(query.after.id)
            if entry is None or not self._visible(query.type, entry):
                raise cursor_gone()
            ordered = after_cursor(ordered, query.sort, query.after.values, entry.seq)
        page = ordered[query.offset: query.offset + query.count + 1]
        more = len(page) > query.count
        page = page[:query.count]
        next_cursor = Cursor(sort_values(page[-1], query.sort), page[-1].id).encode() if more and page else None
        matches = [self._entry(c.type, c.id).current for c in page]  # type: ignore[union-attr]
        return SearchResult(total, matches, self._included(matches, query), next_cursor)

    def _included(self, matches: list[Stored], query: SearchQuery) -> list[Stored]:
        seen = {(s.type, s.id) for s in matches}
        included: list[Stored] = []
        frontier = matches
        for round_ in range(MAX_INCLUDE_ROUNDS):
            new: list[Stored] = []
            for inc in query.includes:
                if round_ and not inc.iterate:
                    continue
                for s in frontier:
                    if inc.source not in ("*", s.type):
                        continue
                    e = self._entry(s.type, s.id)
                    for row in (e.index.reference if e and e.index else []):
                        if (inc.param is None or row.param == inc.param) and row.target_type and (
                            inc.target is None or row.target_type == inc.target
                        ):
                            _add_new(self._live(row.target_type, row.target_id), seen, new)
            for inc in query.revincludes:
                if round_ and not inc.iterate:
                    continue
                wanted = {(s.type, s.id) for s in frontier}
                sources = list(self._s.entries) if inc.source == "*" else [inc.source]
                for src in sources:
                    for e in self._s.entries.get(src, {}).values():
                        if e.index is None or not self._visible(src, e):
                            continue
                        for row in e.index.reference:
                            if (inc.param is None or row.param == inc.param) and (row.target_type, row.target_id) in wanted and (
                                inc.target is None or row.target_type == inc.target
                            ):
                                _add_new(e.current, seen, new)
                                break
            if not new:
                break
            included.extend(new)
            frontier = new
        return included

    def _live(self, rtype: str, rid: str) -> Stored | None:
        e = self._entry(rtype, rid)
        return None if e is None or e.current.deleted or not self._visible(rtype, e) else e.current

    def _expunge(self, targets: list[tuple[str, str]], patient: str | None) -> list[tuple[str, str]]:
        self._write()
        wanted = set(targets)
        gone: list[tuple[str, str, _Entry]] = []
        for rtype, by_id in self._s.entries.items():
            for rid, e in list(by_id.items()):
                if (rtype, rid) in wanted or (patient is not None and e.patient == patient):
                    gone.append((rtype, rid, by_id.pop(rid)))
        removed = [(t, i) for t, i, _ in gone]
        ids = {(t, i) for t, i in removed}
        keys = {k: v for k, v in self._s.keys.items() if (k[0], v) in ids}
        for k in keys:
            del self._s.keys[k]
        grants = self._s.grants.pop(patient, None) if patient is not None else None
        due_row = self._s.due.pop(patient, None) if patient is not None else None
        names = {f'"{i}"' for _, i in removed} | {f"{t}/{i}" for t, i in removed}
        events = {eid: item for eid, item in self._s.outbox.items()
                  if names and any(n in exact_json.dumps(item[0].payload).decode() for n in names)}
        for eid in events:
            del self._s.outbox[eid]

        def undo() -> None:
            for rtype, rid, e in gone:
                self._s.entries.setdefault(rtype, {})[rid] = e
            self._s.keys.update(keys)
            if grants is not None and patient is not None:
                self._s.grants[patient] = grants
            if due_row is not None and patient is not None:
                self._s.due[patient] = due_row
            self._s.outbox.update(events)

        self._undo.append(undo)
        return removed

    # --- the sweep's due-date index -----------------------------------------------------------
    def _due_touch(self, patient_ids: list[str], create: list[str]) -> None:
        self._write()
        due = self._s.due
        before = {p: due.get(p) for p in patient_ids}
        for p in patient_ids:
            row = due.get(p)
            if row is None and p in create:
                row = (DUE_NOW, 0)
            if row is not None:
                due[p] = (DUE_NOW, row[1] + 1)

        def undo() -> None:
            for p, row in before.items():
                if row is None:
                    due.pop(p, None)
                else:
                    due[p] = row

        self._undo.append(undo)

    @_locked
    def _due_select(self, today: date) -> list[str]:
        return sorted(p for p, (d, _) in self._s.due.items() if d <= today)

    @_locked
    def _due_generations(self, patient_ids: list[str]) -> dict[str, int]:
        return {p: self._s.due[p][1] for p in patient_ids if p in self._s.due}

    def _due_settle(self, rows: list[tuple[str, int, date]]) -> int:
        self._write()
        due = self._s.due
        done: dict[str, tuple[date, int]] = {}
        for p, gen, day in rows:
            row = due.get(p)
            if row is not None and row[1] == gen:
                done[p] = row
                due[p] = (day, gen)
        self._undo.append(lambda: due.update(done))
        return len(done)

    @_locked
    def _due_stamp(self) -> str | None:
        return self._s.due_stamp

    def _due_reset(self, stamp: str) -> None:
        self._write()
        old, old_stamp = dict(self._s.due), self._s.due_stamp
        self._s.due = {p: (DUE_NOW, g + 1) for p, (_, g) in old.items()}
        self._s.due_stamp = stamp

        def undo() -> None:
            self._s.due, self._s.due_stamp = old, old_stamp

        self._undo.append(undo)

    # --- outbox -------------------------------------------------------------------------------
    def outbox_add(self, topic: str, payload: dict[str, Any]) -> None:
        self._write()
        eid = next(self._s.outbox_seq)
        self._s.outbox[eid] = (OutboxEvent(eid, topic, copy.deepcopy(payload), utc_now()), None)
        self._undo.append(lambda: self._s.outbox.pop(eid, None))


def _add_new(s: Stored | None, seen: set[tuple[str, str]], out: list[Stored]) -> None:
    if s is not None and (s.type, s.id) not in seen:
        seen.add((s.type, s.id))
        out.append(s)


def _frozen(stored: Stored) -> Stored:
    """Keep a private deep copy so callers mutating what they passed in cannot change stored history."""
    return Stored(stored.type, stored.id, stored.version, stored.last_updated, stored.deleted,
                  copy.deepcopy(stored.resource) if stored.resource is not None else None)


class MemoryRepository(RepositoryReads):
    """The in-memory store (see module docstring).  Thread-safe; units of work run one at a time."""

    def __init__(self, policy: AccessPolicy | None = None) -> None:
        self.policy = policy
        self._state = _State()
        self._lock = threading.RLock()
        self._leases = InProcessLeases()
        self._listeners: list[Listener] = []
        self._protection = Protection(hmac_blind(os.urandom(32)))
        self.audit: MemoryAuditLog | None = MemoryAuditLog() if audit_enabled() else None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @contextmanager
    def unit_of_work(self, principal: Principal) -> Iterator[MemoryUnitOfWork]:
        uow = MemoryUnitOfWork(self._state, self._listeners, self._lock, principal, self.policy,
                               protection=self._protection, audit=self.audit)
        try:
            yield uow
            uow.before_commit()
        except BaseException as exc:
            uow.rollback()
            uow.release()
            uow.audit_finish(exc)
            raise
        uow.release()
        uow.audit_finish(None)

    @contextmanager
    def _reader(self) -> Iterator[MemoryUnitOfWork]:
        uow = MemoryUnitOfWork(self._state, [], self._lock, SYSTEM, self.policy, protection=self._protection,
                               audit=self.audit)
        try:
            yield uow
        except BaseException as exc:
            uow.audit_finish(exc)
            raise
        uow.audit_finish(None)

    def outbox_claim(self, limit: int = 100, *, topics: tuple[str, ...] | None = None,
                     exclude: tuple[str, ...] = ()) -> list[OutboxEvent]:
        with self._lock:
            now = utc_now()
            out: list[OutboxEvent] = []
            for eid in sorted(self._state.outbox):
                event, until = self._state.outbox[eid]
                if (topics is not None and event.topic not in topics) or event.topic in exclude:
                    continue
                if until is None or until < now:
                    self._state.outbox[eid] = (event, now + OUTBOX_LEASE)
                    out.append(event)
                    if len(out) >= limit:
                        break
            return out

    def outbox_done(self, ids: list[int]) -> None:
        with self._lock:
            for eid in ids:
                self._state.outbox.pop(eid, None)

    def refresh_statistics(self) -> None:
        """Nothing to plan: the twin scans its dictionaries."""

    def try_lead(self, name: str) -> Any:
        return self._leases.try_lead(name)

    def checkpoint(self) -> None:
        """No journal: the twin keeps nothing on disk."""

    def close(self) -> None:
        pass


__all__ = ["MemoryRepository", "MemoryUnitOfWork"]
