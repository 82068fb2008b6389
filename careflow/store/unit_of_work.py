"""The write flows of a unit of work, shared by the SQL store and the in-memory twin.

Each backend supplies a handful of primitives whose atomicity its storage guarantees (insert-if-absent,
compare-and-set of the version, claim of a conditional-create key); the FHIR semantics (ids, meta,
If-Match, If-None-Exist, conditional update/delete, listeners) are written once here so both behave the
same by construction.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from careflow.access import rules
from careflow.access.compartment import patient_of
from careflow.access.grants import Grant, derive_grants
from careflow.access.policy import AccessPolicy, default_policy
from careflow.access.principal import SYSTEM, Principal
from careflow.audit import context as audit_context
from careflow.audit.query import AuditQuery
from careflow.audit.record import AuditRecord
from careflow.errors import (
    CareflowError,
    Forbidden,
    Gone,
    IllegalTransition,
    InvalidResource,
    InvalidSearch,
    NotFound,
    PreconditionFailed,
    ResourceConflict,
    VersionConflict,
)
from careflow.fhir.identifying import Protection, hmac_blind
from careflow.fhir.search_index import IndexRows, extract_index
from careflow.fhir.search_params import get_param, is_resource_type_name
from careflow.fhir.search_query import MAX_COUNT, SearchQuery, parse_search
from careflow.fhir.search_values import instant_text
from careflow.store.port import Action, Listener, SearchResult, Stored
from careflow.triggers import task_states

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_OUTSIDE = ("{rtype} would be outside what you may see (no consent, care-team relationship or access-matrix "
            "right for this patient)")
# writes of these change who may see the patient: the patient's grants are recomputed
GRANT_TYPES = frozenset({"Patient", "CareTeam", "Consent"})
# the sweep's due-date index (``plan_due``): a patient whose resources a unit of work wrote is due now
DUE_NOW = date(1, 1, 1)
NEVER_DUE = date(9999, 12, 31)


class Current(NamedTuple):
    """The current-version pointer of a resource as a backend sees it (``handle``: its row key)."""

    handle: Any
    version: int
    deleted: bool


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


def condition_key(query: SearchQuery) -> str:
    """Unkeyed fixed-length key of a conditional create's criteria: what ``Protection(None)`` stores;
    every real store keys it (``Protection.condition_key``) so it cannot be brute-forced back."""
    return hashlib.sha256(query.canonical_key().encode()).hexdigest()


_process_protection: Protection | None = None


def process_protection() -> Protection:
    """A blind index keyed by a random key of this process: for stores that keep nothing on disk (the
    in-memory twin), which must answer searches exactly as the SQL store does."""
    global _process_protection
    if _process_protection is None:
        _process_protection = Protection(hmac_blind(os.urandom(32)))
    return _process_protection


def resource_type_of(resource: Any) -> str:
    if not isinstance(resource, dict):
        raise InvalidResource("a resource must be a JSON object")
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not is_resource_type_name(rtype):
        raise InvalidResource("resourceType is missing or not a resource type name", expression="resourceType")
    return rtype


def check_id(rid: Any) -> str:
    if not isinstance(rid, str) or not _ID.match(rid):
        raise InvalidResource(f"id {rid!r} is not a FHIR id ([A-Za-z0-9-.]{{1,64}})", expression="id")
    return rid


def stamp(resource: dict[str, Any], rtype: str, rid: str, version: int, when: datetime) -> Stored:
    """A stored version: the body with id, meta.versionId and meta.lastUpdated set (input untouched)."""
    body = dict(resource)
    body["id"] = rid
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant_text(when)
    body["meta"] = meta
    return Stored(rtype, rid, version, when, False, body)


# --- the audit hook -----------------------------------------------------------------------------
# Every read, vread, history, search and write of a unit of work is recorded on an AuditRecord (a
# "frame"): the adapter opens one per interaction (``uow.audited``: the API does in ``execute``), and a
# port call made outside any frame (the engine, the CLI, a transaction fix-up) gets one of its own.
# Only the outermost call of the principal counts (reads a write makes to check itself, and
# ``unrestricted`` bookkeeping, hand nothing to the caller); every write, a listener's included, is
# recorded through ``_notify``.  Finished frames are handed to the repository's audit sink when the
# unit of work ends: with outcome 0, or the failure that ended it ("rolled back").


def _read_frame(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if name == "search":
        query = args[0] if args else kwargs["query"]
        return {"subtype": "search-type", "rtype": query.type, "params": tuple(query.raw)}
    if name == "search_many":  # recorded as the one search it stands for
        rtype, params, param, values = (list(args) + [None] * 4)[:4]
        rtype, params = rtype or kwargs.get("type"), params if params is not None else kwargs.get("params", [])
        param, values = param or kwargs.get("param"), values if values is not None else kwargs.get("values", ())
        return {"subtype": "search-type", "rtype": rtype,
                "params": (*(tuple(p) for p in params), (str(param), ",".join(values)))}
    rtype = args[0] if args else kwargs.get("type")
    rid = args[1] if len(args) > 1 else kwargs.get("id")
    if name == "history":
        kind = "history-instance" if rid is not None else "history-type" if rtype is not None else "history-system"
        return {"subtype": kind, "rtype": rtype, "rid": rid}
    return {"subtype": name, "rtype": rtype, "rid": rid}


def _record_result(frame: AuditRecord, name: str, result: Any) -> None:
    if name in ("read", "vread"):
        frame.add("r", result)
    elif name == "history":
        for s in result[1]:
            frame.add("r", s)
    elif name == "search":
        for s in (*result.matches, *result.included):
            frame.add("r", s)
    elif name == "search_many":
        for s in result:
            frame.add("r", s)


def _inside_frame(uow: "UnitOfWorkBase", own: Any, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Run an audited port call one level deeper (nested port calls are part of its event); a
    failure ends the call's frame with the exception, so a refused read is on record too."""
    uow._audit_depth += 1
    try:
        result = fn(uow, *args, **kwargs)
    except BaseException as exc:
        uow._audit_depth -= 1
        uow._frame_end(own, exc)
        raise
    uow._audit_depth -= 1
    return result


def _audited_read(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: "UnitOfWorkBase", *args: Any, **kwargs: Any) -> Any:
        if self._audit_sink is None or self._unrestricted or self._audit_depth:
            return fn(self, *args, **kwargs)
        own = self._frame_start(**_read_frame(name, args, kwargs))
        result = _inside_frame(self, own, fn, args, kwargs)
        if self._audit_frame is not None:
            _record_result(self._audit_frame, name, result)
        self._frame_end(own)
        return result

    wrapper._audited = True  # type: ignore[attr-defined]
    return wrapper


def _audited_write(subtype: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(self: "UnitOfWorkBase", *args: Any, **kwargs: Any) -> Any:
            if self._audit_sink is None or self._audit_depth:
                return fn(self, *args, **kwargs)
            first = args[0] if args else None
            rtype = first.get("resourceType") if isinstance(first, dict) else first
            own = self._frame_start(subtype, rtype=rtype if isinstance(rtype, str) else None)
            result = _inside_frame(self, own, fn, args, kwargs)
            frame = self._audit_frame
            if frame is not None and isinstance(result, tuple) and len(result) == 2 and result[1] is False:
                frame.add("r", result[0])  # a conditional create that found its match returns it
            self._frame_end(own)
            return result

        return wrapper

    return decorate


class UnitOfWorkBase(ABC):
    """FHIR write semantics over backend primitives; reads and search are the backend's."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("read", "vread", "history", "search", "search_many"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_audited", False):
                setattr(cls, name, _audited_read(name, fn))

    def __init__(self, listeners: list[Listener], principal: Principal = SYSTEM,
                 policy: AccessPolicy | None = None, *, protection: Protection | None = None,
                 audit: Any = None) -> None:
        self._listeners = listeners
        self.principal = principal
        # identifying index values and conditional-create keys are blinded on the way in, and queries
        # translated alike (careflow.fhir.identifying); backends call ``self._protection.query``
        self._protection = protection if protection is not None else process_protection()
        self.policy = policy or default_policy()
        self._views: dict[tuple[str, str], rules.View] = {}
        self._unrestricted = 0
        self._grant_dirty: set[str] = set()
        # the audit trail (careflow.audit.log): None when off
        self._audit_sink = audit
        self._audit_frame: AuditRecord | None = None
        self._audit_depth = 0
        self._audit_done: list[AuditRecord] = []
        # the sweep's due-date index: patients whose resources this unit of work wrote (True: one of
        # them is a CarePlan, so the patient gets a row if they have none), applied before commit
        self._due_marks: dict[str, bool] = {}
        self.due_touched: frozenset[str] = frozenset()

    # --- audit --------------------------------------------------------------------------------
    def _frame_start(self, subtype: str, *, rtype: str | None = None, rid: str | None = None,
                     operation: str | None = None, params: tuple[tuple[str, str], ...] | None = None) -> AuditRecord | None:
        """Open a frame unless one is open (the call then belongs to that one: None)."""
        if self._audit_sink is None or self._audit_frame is not None:
            return None
        rec = AuditRecord(subtype, self.principal, utc_now(), audit_context.current(), rtype, rid, operation, params)
        self._audit_frame = rec
        return rec

    def _frame_end(self, rec: AuditRecord | None, exc: BaseException | None = None) -> None:
        if rec is None:
            return
        if exc is not None:
            rec.fail(exc)
        self._audit_frame = None
        self._audit_done.append(rec)

    @contextmanager
    def audited(self, subtype: str, *, rtype: str | None = None, rid: str | None = None,
                operation: str | None = None, params: tuple[tuple[str, str], ...] | None = None) -> Iterator[AuditRecord | None]:
        """One interaction: everything the block reads and writes goes into one AuditEvent."""
        rec = self._frame_start(subtype, rtype=rtype, rid=rid, operation=operation, params=params)
        try:
            yield rec
        except BaseException as exc:
            self._frame_end(rec, exc)
            raise
        self._frame_end(rec)

    def audit_finish(self, exc: BaseException | None) -> None:
        """The unit of work ended (committed when ``exc`` is None): hand its records to the log."""
        done, self._audit_done = self._audit_done, []
        if self._audit_frame is not None:  # a frame left open by an interrupted call
            done.append(self._audit_frame)
            self._audit_frame = None
        if not done or self._audit_sink is None:
            return
        if exc is not None:
            for rec in done:
                if rec.outcome == "0":
                    rec.fail(exc, "rolled back: ")
        self._audit_sink.submit(done)

    def audit_search(self, query: AuditQuery) -> tuple[int, list[bytes]]:
        """AuditEvents (JSON, newest first) for an auditor or the system; a patient gets those whose
        patient entity is themselves; anyone else is refused."""
        p = self.principal
        if p.kind == "patient" and p.patient:
            mine = f"Patient/{p.patient}"
            query.patients = [mine] if query.patients is None or mine in query.patients else []
        elif p.kind not in ("auditor", "system"):
            raise Forbidden("the audit trail is served to auditors, and to a patient for their own record")
        if self._audit_sink is None:
            return 0, []
        self._audit_sink.flush()  # what happened up to now, this request's own earlier units of work included
        return self._audit_sink.search(query)  # type: ignore[no-any-return]

    # --- access -------------------------------------------------------------------------------
    def view(self, rtype: str, interaction: str = "s") -> rules.View:
        """What this unit of work's principal may see of ``rtype`` (backends narrow queries with it)."""
        if self._unrestricted:
            return rules.EVERYTHING
        key = (rtype, interaction)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = rules.view(self.principal, rtype, self.policy, interaction)  # type: ignore[arg-type]
        return found

    @contextmanager
    def unrestricted(self) -> Iterator[None]:
        """Internal bookkeeping reads (grants, uniqueness) that must see everything; never hands
        what it reads to the caller."""
        self._unrestricted += 1
        try:
            yield
        finally:
            self._unrestricted -= 1

    @property
    def _checked(self) -> bool:
        """Are writes checked against the access and write rules? (Not for the system principal.)"""
        return not self._unrestricted and not self.principal.unlimited

    def _visible_current(self, rtype: str, rid: str) -> Stored | None:
        """The current version if it exists and the principal may see it; None when absent or
        deleted; NotFound when it exists but is hidden (exactly what a read would say)."""
        try:
            return self.read(rtype, rid)
        except Gone:
            return None
        except NotFound:
            with self.unrestricted():
                try:
                    self.read(rtype, rid)
                except (NotFound, Gone):
                    return None
            raise NotFound(rtype, rid) from None

    def _before_write(self, action: str, rtype: str, rid: str | None, new: dict[str, Any] | None) -> Stored | None:
        """Check a write before it happens; returns the visible current version (None if absent)."""
        if not self._checked:
            return None
        hidden = False
        try:
            old = self._visible_current(rtype, rid) if rid is not None else None
        except NotFound:
            if action == "delete":
                raise  # delete() answers as for an absent resource
            old, hidden = None, True
        # a hidden resource is judged as an absent one, so the answer cannot tell them apart
        verb = "update" if old is not None and action != "delete" else action
        if hidden:
            verb = "create"
        problem = rules.write_problem(self.principal, verb, rtype, old.resource if old else None, new, self.policy)
        if problem:
            raise Forbidden(problem)
        if hidden:
            raise Forbidden(_OUTSIDE.format(rtype=rtype))
        return old

    def _after_write(self, stored: Stored, old_patient: str | None = None) -> None:
        """Due-date and grant bookkeeping, then (for checked principals) the written resource must be
        visible to its writer: nobody writes data into a patient record they may not see."""
        self._mark_due(stored, old_patient)
        if stored.type in GRANT_TYPES:
            for pid in (old_patient, patient_of(stored.resource) if not stored.deleted else None):
                if pid:
                    self._grant_dirty.add(pid)
            if stored.deleted and stored.type == "Patient":
                self._grant_dirty.add(stored.id)
            if self._checked:
                self.refresh_grants()
        if self._checked and not stored.deleted:
            try:
                self.read(stored.type, stored.id)
            except (NotFound, Gone):
                raise Forbidden(_OUTSIDE.format(rtype=stored.type)) from None

    def _mark_due(self, stored: Stored, old_patient: str | None) -> None:
        """The patient of a written resource is due for the sweep now (and the one it left, for the
        grant types whose old patient is known): whatever changed in their record, the sweep's next
        decision for them may change with it, so their next due day is recomputed by the sweep."""
        if stored.deleted:
            with self.unrestricted():
                try:
                    before = self.vread(stored.type, stored.id, stored.version - 1).resource
                except (NotFound, Gone):
                    before = None
            pid = patient_of(before) if before is not None else None
        else:
            pid = patient_of(stored.resource)
        creates = stored.type == "CarePlan" and not stored.deleted
        for p in (pid, old_patient):
            if p:
                self._due_marks[p] = self._due_marks.get(p, False) or (creates and p == pid)

    def _old_patient(self, rtype: str, rid: str) -> str | None:
        """The patient a grant-relevant resource belonged to before this write (its subject may change)."""
        if rtype not in GRANT_TYPES or rtype == "Patient":
            return None
        with self.unrestricted():
            try:
                return patient_of(self.read(rtype, rid).resource)
            except (NotFound, Gone):
                return None

    def refresh_grants(self) -> None:
        """Recompute the derived grants of every patient touched by this unit of work (also called
        before commit, so bulk system writes recompute each patient once)."""
        if not self._grant_dirty:
            return
        dirty, self._grant_dirty = self._grant_dirty, set()
        now = utc_now()
        with self.unrestricted():
            for pid in sorted(dirty):
                try:
                    patient = self.read("Patient", pid).resource
                except (NotFound, Gone):
                    patient = None
                teams = self._compartment("CareTeam", pid)
                consents = self._compartment("Consent", pid)
                self._set_grants(pid, derive_grants(patient, teams, consents, self.policy, now))

    @_audited_write("operation")
    def grant_emergency(self, patient_id: str, reason: str) -> Grant:
        """Break-the-glass: the calling practitioner may see the patient for ``emergency.max_hours``.

        The reason is required; the patient's exclusions still hold.  The caller (the API) audits it
        and tells the patient's GP."""
        p = self.principal
        rules_ = self.policy.model.emergency
        if p.kind != "practitioner" or not p.acts_as:
            raise Forbidden("only a practitioner may break the glass")
        if len(reason.strip()) < rules_.min_reason_length:
            raise InvalidResource(f"break-the-glass needs a reason of at least {rules_.min_reason_length} characters",
                                  expression="reason")
        now = utc_now()
        if self._audit_frame is not None:
            self._audit_frame.purpose = "BTG"
            self._audit_frame.operation = self._audit_frame.operation or "$break-the-glass"
            self._audit_frame.patients.add(patient_id)
        with self.unrestricted():
            patient = self.read("Patient", patient_id).resource or {}  # NotFound / Gone
            grant = Grant(p.acts_as[0], "emergency", True,
                          (now + timedelta(hours=rules_.max_hours)).astimezone(timezone.utc).replace(tzinfo=None))
            self._add_grant(patient_id, grant)
            gps = [g for g in patient.get("generalPractitioner") or () if isinstance(g, dict) and g.get("reference")]
            self.create({
                "resourceType": "Communication",
                "status": "completed",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                          "code": "alert", "display": "Alert"}]}],
                "priority": "urgent",
                "subject": {"reference": f"Patient/{patient_id}"},
                "sent": instant_text(now),
                "recipient": [{"reference": g["reference"]} for g in gps],
                "sender": {"reference": p.acts_as[0]},
                "reasonCode": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                            "code": "ETREAT", "display": "Emergency Treatment"}]}],
                "payload": [{"contentString": (
                    f"Break-the-glass: {p.id} opened this patient's record in an emergency until "
                    f"{instant_text(grant.expires.replace(tzinfo=timezone.utc)) if grant.expires else ''}. "
                    f"Reason given: {reason.strip()}")}],
            })
            self.outbox_add("access.emergency", {"patient": f"Patient/{patient_id}", "grantee": grant.grantee,
                                                 "expires": instant_text(grant.expires.replace(tzinfo=timezone.utc))
                                                 if grant.expires else None})
        return grant

    def before_commit(self) -> None:
        self.refresh_grants()
        if self._due_marks:
            marks, self._due_marks = self._due_marks, {}
            self._due_touch(sorted(marks), sorted(p for p, creates in marks.items() if creates))
            self.due_touched = frozenset(marks)

    # --- the sweep's due-date index (careflow.engine.sweep) -----------------------------------------
    def _system_only(self) -> None:
        if not self.principal.unlimited:
            raise Forbidden("the sweep's due-date index is the engine's bookkeeping")

    def due_patients(self, today: date) -> list[str]:
        """Patients the sweep may have work for on ``today`` (due now, or their next day has come), sorted."""
        self._system_only()
        return self._due_select(today)

    def due_generations(self, patient_ids: list[str]) -> dict[str, int]:
        """The write generation of each patient's row (read before their plans: see ``due_settle``)."""
        self._system_only()
        return self._due_generations(patient_ids)

    def due_settle(self, rows: list[tuple[str, int, date | None]]) -> int:
        """Store (patient, generation read, next due day or None for never) for patients the sweep
        found nothing to do for; a row whose generation moved since (a write) stays due. Returns how
        many were stored."""
        self._system_only()
        return self._due_settle([(p, g, d or NEVER_DUE) for p, g, d in rows])

    def due_stamp(self) -> str | None:
        """The programme fingerprint the stored due days were computed with."""
        self._system_only()
        return self._due_stamp()

    def due_restamp(self, stamp: str) -> None:
        """Other programmes from now on: every patient is due at once, and ``stamp`` is recorded."""
        self._system_only()
        self._due_reset(stamp)

    # --- primitives each backend implements ---------------------------------------------------
    @abstractmethod
    def _current(self, rtype: str, rid: str, *, lock: bool) -> Current | None:
        """The current-version pointer; ``lock`` holds it against concurrent writers until the end."""

    @abstractmethod
    def _insert(self, stored: Stored, index: IndexRows) -> bool:
        """Insert version 1 of a new resource; False (and no change) when (type, id) already exists."""

    @abstractmethod
    def _replace(self, cur: Current, stored: Stored, index: IndexRows | None) -> bool:
        """Make ``stored`` current if ``cur.version`` still is; False when another writer moved it.
        ``index`` None: a deletion (index rows removed)."""

    @abstractmethod
    def _claim(self, rtype: str, key: str, rid: str) -> str | None:
        """Claim a conditional-create key for ``rid``; None on success, else the id that holds it."""

    @abstractmethod
    def _take_over(self, rtype: str, key: str, old_owner: str, rid: str) -> bool:
        """Move a stale key (its owner no longer matches) to ``rid``; False if someone else moved it."""

    @abstractmethod
    def _match_ids(self, query: SearchQuery) -> list[str]:
        """Ids of every current resource matching the query's criteria (paging ignored)."""

    @abstractmethod
    def _compartment(self, rtype: str, patient_id: str) -> list[dict[str, Any]]:
        """Current, live ``rtype`` resources of one patient (unnarrowed; grant bookkeeping)."""

    @abstractmethod
    def _set_grants(self, patient_id: str, grants: list[Grant]) -> None:
        """Replace the derived grants (reasons in careflow.access.grants.DERIVED) of one patient."""

    @abstractmethod
    def _add_grant(self, patient_id: str, grant: Grant) -> None:
        """Add or extend one grant (break-the-glass)."""

    @abstractmethod
    def _expunge(self, targets: list[tuple[str, str]], patient: str | None) -> list[tuple[str, str]]:
        """Remove for good every version and index row of ``targets`` and, when ``patient`` is
        given, of every resource in that patient's compartment, with their conditional-create keys,
        the patient's grants and the outbox events naming any of them; returns what was removed."""

    @abstractmethod
    def _due_touch(self, patient_ids: list[str], create: list[str]) -> None:
        """Make ``patient_ids`` due now (generation + 1); ``create``: give those a row first if absent."""

    @abstractmethod
    def _due_select(self, today: date) -> list[str]: ...

    @abstractmethod
    def _due_generations(self, patient_ids: list[str]) -> dict[str, int]: ...

    @abstractmethod
    def _due_settle(self, rows: list[tuple[str, int, date]]) -> int: ...

    @abstractmethod
    def _due_stamp(self) -> str | None: ...

    @abstractmethod
    def _due_reset(self, stamp: str) -> None: ...

    @abstractmethod
    def read(self, type: str, id: str) -> Stored: ...

    @abstractmethod
    def vread(self, type: str, id: str, version: int) -> Stored: ...

    @abstractmethod
    def search(self, query: SearchQuery) -> SearchResult: ...

    def search_many(self, type: str, params: list[tuple[str, str]], param: str, values: Sequence[str]) -> list[Stored]:
        """The port's ``search_many`` as the searches it stands for: ``param=`` a hundred values at a
        time, every page (the SQL store answers it in fewer, larger statements)."""
        if param != "_id" and (spec := get_param(type, param)) is not None and spec.type != "reference":
            raise InvalidSearch(param, "search_many takes _id or a reference parameter")
        found: dict[tuple[str, str], Stored] = {}
        unique = sorted(set(values))
        for start in range(0, len(unique), 100):
            chunk = ",".join(unique[start:start + 100])
            cursor: str | None = None
            while True:
                extra = [("_cursor", cursor)] if cursor else []
                page = self.search(parse_search(type, [*params, (param, chunk), ("_count", str(MAX_COUNT)),
                                                       ("_total", "none"), *extra], strict=True))
                for s in page.matches:
                    found.setdefault((s.type, s.id), s)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return list(found.values())

    @abstractmethod
    def outbox_add(self, topic: str, payload: dict[str, Any]) -> None: ...

    # --- FHIR write flows ----------------------------------------------------------------------
    def _index(self, stored: Stored) -> IndexRows:
        """The index rows stored for a version: extracted, then identifying values blinded."""
        return self._protection.index(stored.type, extract_index(stored.resource or {}))

    def _notify(self, action: Action, stored: Stored) -> None:
        frame = self._audit_frame
        if frame is not None:
            if stored.deleted:  # the deleted version has no body: its patient is the one before
                with self.unrestricted():
                    try:
                        before = self.vread(stored.type, stored.id, stored.version - 1).resource
                    except (NotFound, Gone):
                        before = None
                pid = patient_of(before) if before is not None else None
                frame.add("d", (stored.type, stored.id, stored.version, pid))
            else:
                frame.add(action[0], stored)
        for listener in self._listeners:
            listener(action, stored, self)  # type: ignore[arg-type]

    def _single_match(self, rtype: str, query: SearchQuery) -> str | None:
        if query.type != rtype:
            raise ResourceConflict(f"the condition searches {query.type} but the resource is a {rtype}")
        ids = self._match_ids(query)
        if len(ids) > 1:
            raise PreconditionFailed(
                f"the condition {query.criteria_text()!r} matches {len(ids)} {rtype} resources", matches=len(ids)
            )
        return ids[0] if ids else None

    @_audited_write("create")
    def create(self, resource: dict[str, Any], *, if_none_exist: SearchQuery | None = None) -> tuple[Stored, bool]:
        rtype = resource_type_of(resource)
        rid = new_id()
        self._before_write("create", rtype, None, resource)
        if if_none_exist is not None and if_none_exist.criteria:
            existing = self._single_match(rtype, if_none_exist)
            if existing is not None:
                return self.read(rtype, existing), False
            key = self._protection.condition_key(if_none_exist)
            owner = self._claim(rtype, key, rid)
            if owner is not None:
                # another transaction holds the key: it has committed by now (the claim waited for it)
                existing = self._single_match(rtype, if_none_exist)
                if existing is not None:
                    return self.read(rtype, existing), False
                if self._checked:
                    with self.unrestricted():
                        hidden = self._single_match(rtype, if_none_exist)
                    if hidden is not None:
                        raise ResourceConflict("another resource already holds these criteria (or is being "
                                               "created with them); it is not one you may see")
                if not self._take_over(rtype, key, owner, rid):
                    existing = self._single_match(rtype, if_none_exist)
                    if existing is not None:
                        return self.read(rtype, existing), False
                    raise ResourceConflict("a concurrent conditional create of the same criteria is in progress; retry")
        stored = stamp(resource, rtype, rid, 1, utc_now())
        if not self._insert(stored, self._index(stored)):
            raise ResourceConflict(f"{rtype}/{rid} already exists")
        self._after_write(stored)
        self._notify("create", stored)
        return stored, True

    @_audited_write("create")
    def create_if_absent(self, resource: dict[str, Any]) -> tuple[Stored, bool]:
        rtype = resource_type_of(resource)
        rid = check_id(resource.get("id"))
        if self._checked:
            try:
                existing = self._visible_current(rtype, rid)
            except NotFound:
                raise ResourceConflict(f"{rtype}/{rid} exists and is not one you may see") from None
            if existing is not None:
                return existing, False
            self._before_write("create", rtype, None, resource)
        stored = stamp(resource, rtype, rid, 1, utc_now())
        if self._insert(stored, self._index(stored)):
            self._after_write(stored)
            self._notify("create", stored)
            return stored, True
        cur = self._current(rtype, rid, lock=False)
        assert cur is not None
        return self.vread(rtype, rid, cur.version), False

    @_audited_write("update")
    def update(self, resource: dict[str, Any], *, if_match: int | None = None) -> tuple[Stored, bool]:
        rtype = resource_type_of(resource)
        rid = check_id(resource.get("id"))
        self._before_write("update", rtype, rid, resource)
        old_patient = self._old_patient(rtype, rid)
        index: IndexRows | None = None
        if if_match is None:
            # insert first: ingest PUTs mostly new ids, and the unique (type, id) key settles races
            first = stamp(resource, rtype, rid, 1, utc_now())
            index = self._index(first)
            if self._insert(first, index):
                self._after_write(first)
                self._notify("create", first)
                return first, True
        cur = self._current(rtype, rid, lock=True)
        if cur is None:
            if if_match is not None:
                raise NotFound(rtype, rid)
            raise ResourceConflict(f"{rtype}/{rid} is being written concurrently; retry")
        if if_match is not None and if_match != cur.version:
            raise VersionConflict(rtype, rid, if_match, cur.version, self._holder(rtype, rid, cur))
        if rtype == "Task" and not cur.deleted:
            self._check_task_transition(rid, cur.version, resource)
        stored = stamp(resource, rtype, rid, cur.version + 1, utc_now())
        if index is None:
            index = self._index(stored)  # meta is not indexed: one extraction serves any version
        if not self._replace(cur, stored, index):
            raise VersionConflict(rtype, rid, if_match if if_match is not None else cur.version, None)
        self._after_write(stored, old_patient)
        self._notify("create" if cur.deleted else "update", stored)
        return stored, cur.deleted

    def _holder(self, rtype: str, rid: str, cur: Any) -> str | None:
        """Who holds a Task that changed under a caller's If-Match (of two claims from a queue, the
        loser is told who has it): its owner and status, when the caller may read the Task."""
        if rtype != "Task" or cur.deleted:
            return None
        try:
            task = self.vread("Task", rid, cur.version).resource or {}
        except CareflowError:
            return None  # the caller may not read it: say no more than that it changed
        owner = (task.get("owner") or {}).get("reference")
        return f"{owner or 'nobody'} ({task.get('status')})"

    def _check_task_transition(self, rid: str, version: int, new: dict[str, Any]) -> None:
        """Every principal, SYSTEM included, moves a Task only along the FHIR state machine; the
        old version is read under the row lock update() holds, so concurrent writers cannot race it."""
        with self.unrestricted():
            old = self.vread("Task", rid, version).resource or {}
        old_status, new_status = old.get("status"), new.get("status")
        if old_status != new_status and new_status not in task_states.STATUSES:
            raise InvalidResource(f"Task status {new_status!r} is not an R4 Task status", expression="Task.status")
        skip = {"meta", "id"}
        changed = {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}
        problem = task_states.transition_problem(
            old_status, new_status, other_fields_changed=changed, system=self.principal.is_system
        )
        if problem:
            raise IllegalTransition(problem, allowed=task_states.allowed_next(str(old_status)))

    @_audited_write("update")
    def conditional_update(
        self, resource: dict[str, Any], query: SearchQuery, *, if_match: int | None = None
    ) -> tuple[Stored, bool]:
        rtype = resource_type_of(resource)
        existing = self._single_match(rtype, query)
        body_id = resource.get("id")
        if existing is not None:
            if body_id is not None and body_id != existing:
                raise ResourceConflict(
                    f"the body's id {body_id!r} differs from the matching {rtype}/{existing}", expression="id"
                )
            return self.update({**resource, "id": existing}, if_match=if_match)
        if body_id is not None:
            return self.update(resource, if_match=if_match)
        stored, created = self.create(resource, if_none_exist=query)
        if created:
            return stored, True
        return self.update({**resource, "id": stored.id}, if_match=if_match)

    @_audited_write("delete")
    def expunge(self, type: str, id: str) -> list[tuple[str, str]]:
        """Erase for good (GDPR art. 17), unlike ``delete``, which keeps history: one resource, or
        for a Patient the whole record (every resource of their compartment, which holds everything
        the engine derived for them). Only the system may; the audit trail keeps that it happened
        (this call is one event naming the target) and nothing of the content."""
        if not self.principal.unlimited:
            raise Forbidden("only the system (or a system/*.cruds service) may expunge")
        check_id(id)
        removed = self._expunge([(type, id)], id if type == "Patient" else None)
        frame = self._audit_frame
        if frame is not None and frame.rid is None:
            frame.rid = id
        return removed

    @_audited_write("delete")
    def delete(self, type: str, id: str, *, if_match: int | None = None) -> Stored | None:
        try:
            self._before_write("delete", type, id, None)
        except NotFound:  # hidden: exactly what deleting an absent resource answers
            if if_match is not None:
                raise
            return None
        old_patient = self._old_patient(type, id)
        cur = self._current(type, id, lock=True)
        if cur is None or cur.deleted:
            if if_match is not None and cur is None:
                raise NotFound(type, id)
            return None
        if if_match is not None and if_match != cur.version:
            raise VersionConflict(type, id, if_match, cur.version)
        stored = Stored(type, id, cur.version + 1, utc_now(), True, None)
        if not self._replace(cur, stored, None):
            raise VersionConflict(type, id, if_match if if_match is not None else cur.version, None)
        self._after_write(stored, old_patient)
        self._notify("delete", stored)
        return stored

    @_audited_write("delete")
    def conditional_delete(self, type: str, query: SearchQuery, *, multiple: bool = False) -> list[Stored]:
        if query.type != type:
            raise ResourceConflict(f"the condition searches {query.type}, not {type}")
        ids = self._match_ids(query)
        if len(ids) > 1 and not multiple:
            raise PreconditionFailed(
                f"the condition {query.criteria_text()!r} matches {len(ids)} {type} resources", matches=len(ids)
            )
        return [s for rid in ids if (s := self.delete(type, rid)) is not None]


class RepositoryReads(ABC):
    """The read conveniences of a repository, each in its own short read transaction (``_reader``)."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[UnitOfWorkBase]:
        """A read-only unit of work, closed (rolled back) on exit."""

    def read(self, type: str, id: str) -> Stored:
        with self._reader() as u:
            return u.read(type, id)

    def vread(self, type: str, id: str, version: int) -> Stored:
        with self._reader() as u:
            return u.vread(type, id, version)

    def history(
        self, type: str | None = None, id: str | None = None, *, since: datetime | None = None,
        count: int = 100, offset: int = 0,
    ) -> tuple[int, list[Stored]]:
        with self._reader() as u:
            return u.history(type, id, since=since, count=count, offset=offset)

    def search(self, query: SearchQuery) -> SearchResult:
        with self._reader() as u:
            return u.search(query)

    def search_many(self, type: str, params: list[tuple[str, str]], param: str, values: Sequence[str]) -> list[Stored]:
        with self._reader() as u:
            return u.search_many(type, params, param, values)
