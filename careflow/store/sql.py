"""The SQL resource store (SQLAlchemy Core; SQLite or PostgreSQL).

Race-freedom comes from the database: new resources and conditional-create keys are claimed with
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on unique keys, version changes are
``UPDATE ... WHERE pk=? AND version=?`` with a row-count check, and on PostgreSQL the current row is
read ``FOR UPDATE`` first so concurrent writers of one resource queue instead of racing.  On SQLite a
unit of work switches to a ``BEGIN IMMEDIATE`` transaction at its first write (see
``SqlUnitOfWork._begin``), which serialises writers outright.

Version and index rows are buffered per unit of work and written in bulk (executemany on SQLite, COPY on
PostgreSQL) before a read that needs them and at commit: ingest of a 500-resource transaction bundle
costs one INSERT per resource plus a handful of bulk writes.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Sequence

import orjson
from sqlalchemy import Connection, Engine, Row, String, and_, any_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from careflow.access.compartment import patient_of
from careflow.access.grants import DERIVED, Grant
from careflow.access.policy import AccessPolicy
from careflow.access.principal import SYSTEM, Principal
from careflow.audit.log import SqlAuditLog, audit_enabled
from careflow.errors import Gone, InvalidSearch, NotFound, TransientStoreError
from careflow.fhir import exact_json
from careflow.fhir.search_cursor import Cursor, cursor_gone
from careflow.fhir.search_index import IndexRows
from careflow.fhir.search_params import get_param
from careflow.fhir.search_query import TOTAL_CAP, Include, SearchQuery, parse_search
from careflow.store.database import READ_ONLY
from careflow.store.keyring import KeyRing
from careflow.store.port import UNKNOWN, Listener, OutboxEvent, SearchResult, Stored
from careflow.store.sql_access import access_clause
from careflow.store.sql_search import after_clause, filter_clause, order_by, page_in_creation_order, sort_exprs
from careflow.store.sql_worklist import sorted_page, worklist_rows
from careflow.store.tables import (
    INDEX_TABLES,
    access_grant,
    condition_key,
    idx_reference,
    outbox,
    plan_due,
    resource,
    resource_version,
    sweep_state,
    task_performer,
    task_worklist,
)
from careflow.store.unit_of_work import DUE_NOW, Current, RepositoryReads, UnitOfWorkBase, utc_now

OUTBOX_LEASE = timedelta(minutes=5)
MANY_CHUNK = 1000  # values per statement of search_many (well under SQLite's bound-parameter limit)
MAX_INCLUDE_ROUNDS = 4

_TABLES = {"resource_version": resource_version, "outbox": outbox, **{f"idx_{k}": t for k, t in INDEX_TABLES.items()},
           "task_worklist": task_worklist, "task_performer": task_performer}
_COLUMNS = (
    resource.c.pk, resource.c.type, resource.c.id, resource_version.c.version,
    resource_version.c.last_updated, resource_version.c.deleted, resource_version.c.content,
    resource.c.version.label("current_version"), resource.c.patient,
)
_CURRENT = resource.join(
    resource_version, and_(resource_version.c.res_pk == resource.c.pk, resource_version.c.version == resource.c.version)
)
_ANY_VERSION = resource_version.join(resource, resource.c.pk == resource_version.c.res_pk)


class HotSql:
    """Driver-level SQL for the statements every write runs, per dialect.

    Building and cache-keying SQLAlchemy constructs costs about a millisecond per statement on a small
    machine, more than SQLite needs to run them; ingest goes through these strings instead (the same
    statements the table models describe; the contract suite covers both dialects).
    """

    def __init__(self, dialect: str) -> None:
        pg = dialect == "postgresql"
        p = "%s" if pg else "?"
        self.pg = pg
        self.select_current = f"SELECT pk, version, deleted FROM resource WHERE type = {p} AND id = {p}"
        self.select_current_for_update = self.select_current + (" FOR UPDATE" if pg else "")
        self.insert_resource = (
            f"INSERT INTO resource (type, id, version, last_updated, deleted, patient) VALUES ({p}, {p}, 1, {p}, "
            f"{'false' if pg else '0'}, {p}) ON CONFLICT (type, id) DO NOTHING RETURNING pk"
        )
        self.update_version = (
            f"UPDATE resource SET version = {p}, last_updated = {p}, deleted = {p}, patient = {p} "
            f"WHERE pk = {p} AND version = {p}"
        )
        # a deletion keeps the row's patient, so history stays narrowed like the resource was
        self.delete_version = (
            f"UPDATE resource SET version = {p}, last_updated = {p}, deleted = {p} WHERE pk = {p} AND version = {p}"
        )
        self.delete_index = tuple(f"DELETE FROM {t.name} WHERE res_pk = {p}"
                                  for t in (*INDEX_TABLES.values(), task_worklist, task_performer))
        columns = {
            name: [c.name for c in table.columns
                   if not (c.primary_key and c.autoincrement is True) and c.name != "claimed_until"]
            for name, table in _TABLES.items()
        }
        self.insert_sql = {
            name: f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"
            for name, cols in columns.items()
        }
        self.copy_sql = {name: f"COPY {name} ({', '.join(cols)}) FROM STDIN" for name, cols in columns.items()}

    def ts(self, moment: datetime) -> Any:
        """A timestamp as the driver should get it: naive UTC (PostgreSQL), or SQLAlchemy's SQLite text."""
        naive = _naive(moment) if moment.tzinfo is not None else moment
        return naive if self.pg else naive.isoformat(sep=" ", timespec="microseconds")


HOT_SQL = {"sqlite": HotSql("sqlite"), "postgresql": HotSql("postgresql")}


def _naive(moment: datetime) -> datetime:
    """Naive UTC for the DateTime columns; a naive input is taken to be UTC already."""
    return moment if moment.tzinfo is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def _naive_value(value: Any) -> Any:
    """A sort value as the cursor keeps it (datetimes naive UTC, as the index stores them)."""
    return _naive(value) if isinstance(value, datetime) else value


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc)


class SqlUnitOfWork(UnitOfWorkBase):
    """One database transaction on ``conn`` (begun and ended by ``SqlRepository``)."""

    def __init__(self, conn: Connection, listeners: list[Listener], principal: Principal = SYSTEM,
                 policy: AccessPolicy | None = None, *, keys: KeyRing, audit: Any = None) -> None:
        super().__init__(listeners, principal, policy, protection=keys.protection, audit=audit)
        self._keys = keys
        self._content_key: int | None = None  # the data key this transaction's new versions use
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"
        # SQLite: begin lazily, deferred for reads and IMMEDIATE once the unit of work first writes, so
        # read-only units of work (an API GET) never queue for the single write lock.  PostgreSQL: one
        # READ COMMITTED transaction from the start.
        self._lazy = not self._pg
        self._tx: Any = None if self._lazy else conn.begin()
        self._mode: str | None = None if self._lazy else "write"
        self._hot = HOT_SQL[conn.dialect.name]
        self._cursor: Any = None  # DBAPI cursor of this transaction's connection, for the hot statements
        self._pending: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._pending_pks: set[int] = set()  # resources with buffered index rows
        self._pending_refs: set[tuple[str, str]] = set()  # resources with buffered version rows

    # --- buffered writes ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered version, index and outbox rows (one executemany per table)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(list)
        self._pending_pks = set()
        self._pending_refs = set()
        for name, rows in pending.items():
            if rows:
                if self._cursor is None:
                    self._cursor = self._conn.connection.cursor()
                if self._pg:  # COPY: one stream per table instead of a round trip per row
                    with self._cursor.copy(self._hot.copy_sql[name]) as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    self._cursor.executemany(self._hot.insert_sql[name], rows)

    def _queue(self, pk: int, stored: Stored, index: IndexRows | None) -> None:
        ts = self._hot.ts
        self._pending_refs.add((stored.type, stored.id))
        self._pending["resource_version"].append((
            pk, stored.version, ts(stored.last_updated), stored.deleted,
            self._seal(pk, stored),
        ))
        if index is None:
            return
        self._pending_pks.add(pk)
        rtype = stored.type
        for kind in INDEX_TABLES:
            rows = getattr(index, kind)
            if rows:
                bucket = self._pending[f"idx_{kind}"]
                if kind == "date":
                    bucket.extend((pk, rtype, r.param, ts(r.low), ts(r.high)) for r in rows)
                else:
                    bucket.extend((pk, rtype, *r) for r in rows)
        for name, listed in worklist_rows(pk, rtype, index, ts).items():
            self._pending[name].extend(listed)

    def _seal(self, pk: int, stored: Stored) -> bytes | None:
        """The content column of a new version: its JSON encrypted under the active content key."""
        raw = stored.raw
        if raw is None or not self._keys.enabled:
            return raw
        if self._content_key is None:
            self._content_key = self._keys.writer_key(lambda sql: self._raw(sql, ()), self._conn, self._pg)
        return self._keys.seal(pk, stored.version, raw, self._content_key)

    def _stored(self, row: Row[Any]) -> Stored:
        """Row of ``_COLUMNS`` -> Stored, content decrypted; the JSON is parsed only if someone reads
        ``resource``."""
        pk, rtype, rid, version, last_updated, deleted, content, current_version, patient = row
        raw = None
        if content is not None:
            raw = bytes(content)
            if self._keys.enabled:
                raw = self._keys.open(pk, version, raw, self._conn)
        # the patient column is the current version's: an older version may have been another patient's
        compartment = patient if version == current_version and not deleted else UNKNOWN
        return Stored(rtype, rid, version, last_updated.replace(tzinfo=timezone.utc), bool(deleted), None, raw=raw,
                      compartment=compartment)

    def _insert_ignoring_conflict(self, table: Any) -> Any:
        if self._pg:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _begin(self, mode: str) -> None:
        """Make sure a transaction fit for ``mode`` ("read" | "write") is open (SQLite; see __init__).

        Moving from read to write ends the read snapshot and takes the write lock: like READ COMMITTED,
        reads before the first write may be older than the write transaction, and every check that a
        write depends on (current version, conditional-create key, existing id) is re-done inside it.
        """
        if self._mode == "write" or self._mode == mode:
            return
        if self._mode == "read":
            self._tx.commit()
        self._conn.execution_options(**{READ_ONLY: mode == "read"})
        self._tx = self._conn.begin()
        self._mode = mode

    def commit(self) -> None:
        self.before_commit()
        self.flush()
        if self._tx is not None and self._tx.is_active:
            self._tx.commit()

    def rollback(self) -> None:
        self._pending.clear()
        self._pending_pks.clear()
        self._pending_refs.clear()
        if self._tx is not None and self._tx.is_active:
            self._tx.rollback()

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def _raw(self, sql: str, params: tuple[Any, ...]) -> Any:
        """Run a hot statement on the DBAPI cursor (same connection and transaction as ``self._conn``)."""
        if self._cursor is None:
            self._cursor = self._conn.connection.cursor()
        self._cursor.execute(sql, params)
        return self._cursor

    # --- primitives ---------------------------------------------------------------------------
    def _current(self, rtype: str, rid: str, *, lock: bool) -> Current | None:
        self._begin("write" if lock else "read")
        sql = self._hot.select_current_for_update if lock else self._hot.select_current
        row = self._raw(sql, (rtype, rid)).fetchone()
        return None if row is None else Current(row[0], row[1], bool(row[2]))

    def _insert(self, stored: Stored, index: IndexRows) -> bool:
        self._begin("write")
        row = self._raw(self._hot.insert_resource, (stored.type, stored.id, self._hot.ts(stored.last_updated),
                                                    patient_of(stored.resource))).fetchone()
        pk = row[0] if row is not None else None
        if pk is None:
            return False
        self._queue(pk, stored, index)
        return True

    def _replace(self, cur: Current, stored: Stored, index: IndexRows | None) -> bool:
        self._begin("write")
        if stored.deleted:
            result = self._raw(
                self._hot.delete_version,
                (stored.version, self._hot.ts(stored.last_updated), stored.deleted, cur.handle, cur.version),
            )
        else:
            result = self._raw(
                self._hot.update_version,
                (stored.version, self._hot.ts(stored.last_updated), stored.deleted, patient_of(stored.resource),
                 cur.handle, cur.version),
            )
        if result.rowcount != 1:
            return False
        if not cur.deleted:
            if cur.handle in self._pending_pks:
                self.flush()  # index rows of this resource still buffered must land before they are removed
            for sql in self._hot.delete_index:
                self._raw(sql, (cur.handle,))
        self._queue(cur.handle, stored, index)
        return True

    def _claim(self, rtype: str, key: str, rid: str) -> str | None:
        self._begin("write")
        stmt = (
            self._insert_ignoring_conflict(condition_key)
            .values(rtype=rtype, key=key, res_id=rid)
            .on_conflict_do_nothing(index_elements=["rtype", "key"])
            .returning(condition_key.c.key)
        )
        if self._conn.execute(stmt).scalar() is not None:
            return None
        owner = self._conn.execute(
            select(condition_key.c.res_id).where(condition_key.c.rtype == rtype, condition_key.c.key == key)
        ).scalar()
        return owner or ""

    def _take_over(self, rtype: str, key: str, old_owner: str, rid: str) -> bool:
        self._begin("write")
        result = self._conn.execute(
            update(condition_key)
            .where(condition_key.c.rtype == rtype, condition_key.c.key == key, condition_key.c.res_id == old_owner)
            .values(res_id=rid)
        )
        return result.rowcount == 1

    def _match_ids(self, query: SearchQuery) -> list[str]:
        self._begin("read")
        self.flush()
        query = self._protection.query(query)
        stmt = select(resource.c.id).where(filter_clause(query.type, query.criteria, self._narrow)).order_by(resource.c.pk)
        return list(self._conn.execute(stmt).scalars())

    # --- access -------------------------------------------------------------------------------
    def _narrow(self, rtype: str, table: Any = resource, interaction: str = "s") -> Any:
        """The access term for ``rtype`` rows of ``table`` (None: not narrowed)."""
        return access_clause(self.view(rtype, interaction), rtype, _naive(utc_now()), table)

    def _narrowed(self, rtype: str, interaction: str = "r") -> list[Any]:
        term = self._narrow(rtype, resource, interaction)
        return [] if term is None else [term]

    def _compartment(self, rtype: str, patient_id: str) -> list[dict[str, Any]]:
        self._begin("read")
        self.flush()
        rows = self._conn.execute(
            select(*_COLUMNS).select_from(_CURRENT)
            .where(resource.c.type == rtype, resource.c.patient == patient_id, resource.c.deleted.is_(False))
            .order_by(resource.c.pk)
        )
        return [r for r in (self._stored(row).resource for row in rows) if r is not None]

    def _set_grants(self, patient_id: str, grants: list[Grant]) -> None:
        self._begin("write")
        self._conn.execute(delete(access_grant).where(
            access_grant.c.patient_id == patient_id, access_grant.c.reason.in_(list(DERIVED))))
        if grants:
            self._conn.execute(access_grant.insert(), [
                {"patient_id": patient_id, "grantee": g.grantee, "reason": g.reason, "full": g.full,
                 "expires": g.expires} for g in grants if g.reason in DERIVED
            ])

    def _add_grant(self, patient_id: str, grant: Grant) -> None:
        self._begin("write")
        key = (access_grant.c.patient_id == patient_id, access_grant.c.grantee == grant.grantee,
               access_grant.c.reason == grant.reason)
        self._conn.execute(delete(access_grant).where(*key))
        self._conn.execute(access_grant.insert().values(
            patient_id=patient_id, grantee=grant.grantee, reason=grant.reason, full=grant.full, expires=grant.expires))

    def _expunge(self, targets: list[tuple[str, str]], patient: str | None) -> list[tuple[str, str]]:
        self._begin("write")
        self.flush()
        which = or_(*(and_(resource.c.type == t, resource.c.id == i) for t, i in targets))
        if patient is not None:
            which = or_(which, resource.c.patient == patient)
        rows = self._conn.execute(select(resource.c.pk, resource.c.type, resource.c.id).where(which)).all()
        pks = [r.pk for r in rows]
        removed = [(r.type, r.id) for r in rows]
        for start in range(0, len(pks), 500):
            chunk = pks[start:start + 500]
            for table in (*INDEX_TABLES.values(), task_worklist, task_performer):
                self._conn.execute(delete(table).where(table.c.res_pk.in_(chunk)))
            self._conn.execute(delete(resource_version).where(resource_version.c.res_pk.in_(chunk)))
            self._conn.execute(delete(resource).where(resource.c.pk.in_(chunk)))
        for rtype, rid in removed:
            self._conn.execute(delete(condition_key).where(condition_key.c.rtype == rtype, condition_key.c.res_id == rid))
        if patient is not None:
            self._conn.execute(delete(access_grant).where(access_grant.c.patient_id == patient))
            self._conn.execute(delete(plan_due).where(plan_due.c.patient_id == patient))
        names = {f'"{i}"'.encode() for _, i in removed} | {f"{t}/{i}".encode() for t, i in removed}
        if names:
            naming = [r.id for r in self._conn.execute(select(outbox.c.id, outbox.c.payload))
                      if any(n in bytes(r.payload) for n in names)]
            if naming:
                self._conn.execute(delete(outbox).where(outbox.c.id.in_(naming)))
        return removed

    # --- reads --------------------------------------------------------------------------------
    def read(self, type: str, id: str) -> Stored:
        self._begin("read")
        if (type, id) in self._pending_refs:  # only this resource's buffered rows matter
            self.flush()
        row = self._conn.execute(
            select(*_COLUMNS).select_from(_CURRENT)
            .where(resource.c.type == type, resource.c.id == id, *self._narrowed(type))
        ).first()
        if row is None:
            raise NotFound(type, id)
        if row.deleted:
            raise Gone(type, id, row.version)
        return self._stored(row)

    def vread(self, type: str, id: str, version: int) -> Stored:
        self._begin("read")
        if (type, id) in self._pending_refs:  # only this resource's buffered rows matter
            self.flush()
        row = self._conn.execute(
            select(*_COLUMNS).select_from(_ANY_VERSION)
            .where(resource.c.type == type, resource.c.id == id, resource_version.c.version == version,
                   *self._narrowed(type))
        ).first()
        if row is None:
            raise NotFound(type, id, version)
        return self._stored(row)

    def history(
        self, type: str | None = None, id: str | None = None, *, since: datetime | None = None,
        count: int = 100, offset: int = 0,
    ) -> tuple[int, list[Stored]]:
        self._begin("read")
        self.flush()
        where: list[Any] = []
        if type is not None and id is not None:
            cur = self._current(type, id, lock=False)
            if cur is None:
                raise NotFound(type, id)
            where.append(resource_version.c.res_pk == cur.handle)
            where.extend(self._narrowed(type))
        elif type is not None:
            where.append(resource.c.type == type)
            where.extend(self._narrowed(type))
        else:
            where.extend(self._any_type_narrowed())
        if since is not None:
            where.append(resource_version.c.last_updated >= _naive(since))
        total = self._conn.execute(select(func.count()).select_from(_ANY_VERSION).where(*where)).scalar() or 0
        rows = self._conn.execute(
            select(*_COLUMNS).select_from(_ANY_VERSION).where(*where)
            .order_by(resource_version.c.last_updated.desc(), resource_version.c.res_pk.desc(),
                      resource_version.c.version.desc())
            .limit(count).offset(offset)
        )
        return total, [self._stored(r) for r in rows]

    def search(self, query: SearchQuery) -> SearchResult:
        """The page's keys (one more than asked, to know whether a next page exists), the total as
        ``query.total_wanted`` says (``careflow.fhir.search_query``), then the page's JSON by primary key.

        Without ``_sort`` the keys come from ``page_in_creation_order``, whose cost follows the page;
        a cursor continues with ``pk >`` (or the sort values, ``after_clause``) instead of skipping
        rows.  Every statement carries the access term, so totals and cursors count and see only
        what the caller may see."""
        query = self._protection.query(query)
        self._begin("read")
        self.flush()
        narrow = self._narrow
        if query.total_only:
            return SearchResult(self._count(filter_clause(query.type, query.criteria, narrow)), [], [])
        after_pk: int | None = None
        if query.after is not None:
            after_pk = self._conn.execute(
                select(resource.c.pk).where(resource.c.type == query.type, resource.c.id == query.after.id,
                                            *self._narrowed(query.type, "s"))
            ).scalar()
            if after_pk is None:  # gone, or never seen by this caller: the same answer either way
                raise cursor_gone()
        limit = query.count + 1
        exprs = sort_exprs(query.sort)
        if not query.sort:
            stmt = page_in_creation_order(query.type, query.criteria, narrow, after_pk=after_pk, limit=limit)
            page = [(r[0], ()) for r in self._conn.execute(stmt.offset(query.offset) if query.offset else stmt)]
        elif (fast := sorted_page(query, narrow, limit=limit, after=None if after_pk is None or query.after is None
                                  else (_naive_value(query.after.values[0]) if query.after.values else None, after_pk))) is not None:
            page = [(r[0], (r[1],)) for r in self._conn.execute(fast)]  # careflow.store.sql_worklist
        else:
            stmt = select(resource.c.pk, *exprs).where(filter_clause(query.type, query.criteria, narrow))
            if query.after is not None and after_pk is not None:
                stmt = stmt.where(after_clause(query.sort, exprs, query.after.values, after_pk))
            stmt = stmt.order_by(*order_by(query.type, query.sort)).limit(limit).offset(query.offset)
            page = [(r[0], tuple(r[1:])) for r in self._conn.execute(stmt)]
        more = len(page) > query.count
        page = page[:query.count]
        total = self._total(query, lambda: filter_clause(query.type, query.criteria, narrow), len(page), more)
        if not page:
            return SearchResult(total, [], [])
        pks = [pk for pk, _ in page]
        by_pk = {r[0]: r for r in self._conn.execute(select(*_COLUMNS).select_from(_CURRENT).where(resource.c.pk.in_(pks)))}
        rows = [by_pk[pk] for pk in pks if pk in by_pk]
        matches = [self._stored(r) for r in rows]
        next_cursor = None
        if more and rows:
            last_values = tuple(_naive_value(v) for v in page[-1][1])
            next_cursor = Cursor(last_values, rows[-1].id).encode()
        included: list[Stored] = []
        if query.includes or query.revincludes:
            included = self._included({r[0]: (r[1], r[2]) for r in rows}, query)
        return SearchResult(total, matches, included, next_cursor)

    def search_many(self, type: str, params: list[tuple[str, str]], param: str, values: Sequence[str]) -> list[Stored]:
        """One statement per thousand values: ``param`` as one ``IN`` list (``resource.id``, or the
        reference index's ``target_id``), the rest of the search and the access term as ``search``
        builds them."""
        spec = get_param(type, param) if param != "_id" else None
        if param != "_id" and (spec is None or spec.type != "reference"):
            raise InvalidSearch(param, "search_many takes _id or a reference parameter")
        query = self._protection.query(parse_search(type, params, strict=True))
        self._begin("read")
        self.flush()
        where = filter_clause(type, query.criteria, self._narrow)
        found: dict[int, Stored] = {}
        unique = sorted(set(values))
        for start in range(0, len(unique), MANY_CHUNK):
            chunk = unique[start:start + MANY_CHUNK]
            if spec is None:
                keyed = self._one_of(resource.c.id, chunk)
            else:
                keyed = resource.c.pk.in_(select(idx_reference.c.res_pk).where(
                    idx_reference.c.rtype == type, idx_reference.c.param == param,
                    self._one_of(idx_reference.c.target_id, chunk)))
            for row in self._conn.execute(select(*_COLUMNS).select_from(_CURRENT).where(where, keyed)):
                if row[0] not in found:
                    found[row[0]] = self._stored(row)
        return list(found.values())

    def _one_of(self, column: Any, values: list[str]) -> Any:
        """``column`` is one of ``values``, given as ONE parameter (PostgreSQL: ``= ANY(array)``;
        SQLite: ``IN (SELECT value FROM json_each(json))``): SQLAlchemy and the drivers bind it once
        instead of rendering, parsing and casting a thousand placeholders."""
        if self._pg:
            return column == any_(bindparam("one_of", list(values), type_=ARRAY(String(64)), unique=True))
        each = func.json_each(bindparam("one_of", orjson.dumps(values).decode(), unique=True)).table_valued("value")
        return column.in_(select(each.c.value))

    def _count(self, where: Any) -> int:
        return self._conn.execute(select(func.count()).select_from(resource).where(where)).scalar() or 0

    def _total(self, query: SearchQuery, filtered: Callable[[], Any], got: int, more: bool) -> int | None:
        """The total the query asks for; the page already tells it when it is the first and last
        (``filtered`` builds the WHERE clause: only when a count needs it)."""
        wanted = query.total_wanted
        if wanted == "none":
            return None
        if not more and query.offset == 0 and query.after is None:
            return got  # every match is on this page
        if wanted == "accurate":
            return self._count(filtered())
        # counted on the streaming plan: it stops at the cap instead of collecting every match first
        capped = page_in_creation_order(query.type, query.criteria, self._narrow, after_pk=None,
                                        limit=TOTAL_CAP + 1).subquery()
        n = self._conn.execute(select(func.count()).select_from(capped)).scalar() or 0
        if n <= TOTAL_CAP:
            return n
        if wanted == "estimate":
            return max(TOTAL_CAP + 1, self._estimate(filtered()))
        return None

    def _estimate(self, where: Any) -> int:
        """PostgreSQL's planner estimate of the matches (statistics kept fresh by ``maintenance.analyze``);
        SQLite has none to give, so there the estimate is the count."""
        if not self._pg:
            return self._count(where)
        stmt = select(resource.c.pk).where(where)
        compiled = stmt.compile(dialect=self._conn.dialect, compile_kwargs={"render_postcompile": True})
        plan = self._conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
        doc = plan if isinstance(plan, list) else orjson.loads(plan)
        return int(doc[0]["Plan"]["Plan Rows"])

    def _included(self, frontier: dict[int, tuple[str, str]], query: SearchQuery) -> list[Stored]:
        seen = set(frontier.values())
        out: list[Stored] = []
        for round_ in range(MAX_INCLUDE_ROUNDS):
            found: dict[int, Stored] = {}
            for inc in query.includes:
                if round_ == 0 or inc.iterate:
                    self._forward(inc, frontier, seen, found)
            for inc in query.revincludes:
                if round_ == 0 or inc.iterate:
                    self._reverse(inc, frontier, seen, found)
            if not found:
                break
            ordered = sorted(found.items())
            out.extend(s for _, s in ordered)
            frontier = {pk: (s.type, s.id) for pk, s in ordered}
        return out

    def _any_type_narrowed(self, types: list[str] | None = None) -> list[Any]:
        """One term narrowing rows of any type: per type, that type's access term (system-wide
        history and ``*`` includes mix types)."""
        if self._unrestricted or self.principal.unlimited:
            return []
        if types is None:
            types = list(self._conn.execute(select(resource.c.type).distinct()).scalars())
        alts = []
        for t in sorted(types):
            term = self._narrow(t, resource, "s")
            alts.append(resource.c.type == t if term is None else and_(resource.c.type == t, term))
        return [or_(*alts)] if alts else [resource.c.pk.is_(None)]

    def _fetch(self, where: Any, seen: set[tuple[str, str]], found: dict[int, Stored],
               types: list[str] | None = None) -> None:
        rows = self._conn.execute(select(*_COLUMNS).select_from(_CURRENT).where(
            resource.c.deleted.is_(False), where, *self._any_type_narrowed(types)))
        for r in rows:
            if (r.type, r.id) not in seen:
                seen.add((r.type, r.id))
                found[r.pk] = self._stored(r)

    def _forward(self, inc: Include, frontier: dict[int, tuple[str, str]], seen: set[tuple[str, str]],
                 found: dict[int, Stored]) -> None:
        pks = [pk for pk, (t, _) in frontier.items() if inc.source in ("*", t)]
        if not pks:
            return
        stmt = select(idx_reference.c.target_type, idx_reference.c.target_id).where(
            idx_reference.c.res_pk.in_(pks), idx_reference.c.target_type != ""
        )
        if inc.param is not None:
            stmt = stmt.where(idx_reference.c.param == inc.param)
        if inc.target is not None:
            stmt = stmt.where(idx_reference.c.target_type == inc.target)
        by_type: dict[str, set[str]] = defaultdict(set)
        for t, i in self._conn.execute(stmt.distinct()):
            if (t, i) not in seen:
                by_type[t].add(i)
        for t, ids in by_type.items():
            self._fetch(and_(resource.c.type == t, resource.c.id.in_(sorted(ids))), seen, found, [t])

    def _reverse(self, inc: Include, frontier: dict[int, tuple[str, str]], seen: set[tuple[str, str]],
                 found: dict[int, Stored]) -> None:
        by_type: dict[str, list[str]] = defaultdict(list)
        for t, i in frontier.values():
            if inc.target is None or inc.target == t:
                by_type[t].append(i)
        if not by_type:
            return
        stmt = select(idx_reference.c.res_pk).where(
            or_(*(and_(idx_reference.c.target_type == t, idx_reference.c.target_id.in_(ids)) for t, ids in by_type.items()))
        )
        if inc.source != "*":
            stmt = stmt.where(idx_reference.c.rtype == inc.source)
        if inc.param is not None:
            stmt = stmt.where(idx_reference.c.param == inc.param)
        self._fetch(resource.c.pk.in_(stmt), seen, found, None if inc.source == "*" else [inc.source])

    # --- the sweep's due-date index -----------------------------------------------------------
    def _due_touch(self, patient_ids: list[str], create: list[str]) -> None:
        self._begin("write")
        if create:
            self._conn.execute(self._insert_ignoring_conflict(plan_due).on_conflict_do_nothing(),
                               [{"patient_id": p, "next_due": DUE_NOW, "gen": 0} for p in create])
        for start in range(0, len(patient_ids), 500):
            chunk = patient_ids[start:start + 500]
            self._conn.execute(update(plan_due).where(plan_due.c.patient_id.in_(chunk))
                               .values(next_due=DUE_NOW, gen=plan_due.c.gen + 1))

    def _due_select(self, today: date) -> list[str]:
        self._begin("read")
        rows = self._conn.execute(select(plan_due.c.patient_id).where(plan_due.c.next_due <= today))
        return sorted(r[0] for r in rows)

    def _due_generations(self, patient_ids: list[str]) -> dict[str, int]:
        self._begin("read")
        out: dict[str, int] = {}
        for start in range(0, len(patient_ids), 500):
            chunk = patient_ids[start:start + 500]
            out.update(self._conn.execute(select(plan_due.c.patient_id, plan_due.c.gen)
                                          .where(plan_due.c.patient_id.in_(chunk))).all())
        return out

    def _due_settle(self, rows: list[tuple[str, int, date]]) -> int:
        if not rows:
            return 0
        self._begin("write")
        stmt = (update(plan_due).where(plan_due.c.patient_id == bindparam("p"), plan_due.c.gen == bindparam("g"))
                .values(next_due=bindparam("d")))
        result = self._conn.execute(stmt, [{"p": p, "g": g, "d": d} for p, g, d in rows])
        return int(result.rowcount)

    def _due_stamp(self) -> str | None:
        self._begin("read")
        return self._conn.execute(select(sweep_state.c.value).where(sweep_state.c.name == "programs")).scalar()

    def _due_reset(self, stamp: str) -> None:
        self._begin("write")
        self._conn.execute(update(plan_due).values(next_due=DUE_NOW, gen=plan_due.c.gen + 1))
        self._conn.execute(delete(sweep_state).where(sweep_state.c.name == "programs"))
        self._conn.execute(sweep_state.insert().values(name="programs", value=stamp))

    # --- outbox -------------------------------------------------------------------------------
    def outbox_add(self, topic: str, payload: dict[str, Any]) -> None:
        self._begin("write")
        self._pending["outbox"].append((topic, exact_json.dumps(payload), self._hot.ts(utc_now())))


def _transient_types() -> tuple[type[BaseException], ...]:
    import sqlite3

    from sqlalchemy import exc

    kinds: list[type[BaseException]] = [exc.OperationalError, exc.TimeoutError, exc.DisconnectionError,
                                         sqlite3.OperationalError]
    try:
        import psycopg

        kinds.append(psycopg.OperationalError)
    except ImportError:  # pragma: no cover - psycopg is a dependency, but SQLite needs nothing else
        pass
    return tuple(kinds)


_TRANSIENT = _transient_types()


@contextmanager
def _translated() -> Iterator[None]:
    """Database failures that a retry can cure (lock timeout, deadlock, serialisation failure, lost
    connection, pool exhausted) surface as TransientStoreError, the cause kept for logs."""
    try:
        yield
    except _TRANSIENT as exc:
        if not _is_transient(exc):
            raise
        raise TransientStoreError(f"the database is busy or unreachable, retry: {str(exc).splitlines()[0]}") from exc


def _is_transient(exc: BaseException) -> bool:
    """sqlite3 reports a missing table as OperationalError too: only lock/busy/IO failures pass."""
    import sqlite3

    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return any(word in message for word in ("locked", "busy", "disk i/o"))
    return True



class SqlRepository(RepositoryReads):
    """The SQL store on an engine made by ``careflow.store.database.make_engine`` (schema migrated)."""

    def __init__(self, engine: Engine, policy: AccessPolicy | None = None, keys: KeyRing | None = None) -> None:
        self.engine = engine
        self.policy = policy
        # the master key is read now (a missing one fails at start-up); data keys at the first unit of work
        self.keys = keys if keys is not None else KeyRing.from_settings(engine.dialect.name)
        self._listeners: list[Listener] = []
        # the audit trail: records buffered and appended by a background writer (careflow.audit.log)
        self.audit: SqlAuditLog | None = SqlAuditLog(engine, self.keys) if audit_enabled() else None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @contextmanager
    def unit_of_work(self, principal: Principal) -> Iterator[SqlUnitOfWork]:
        with _translated(), self.engine.connect() as conn:
            self.keys.ensure(conn)
            uow = SqlUnitOfWork(conn, self._listeners, principal, self.policy, keys=self.keys, audit=self.audit)
            try:
                yield uow
                uow.commit()
            except BaseException as exc:
                uow.rollback()
                uow.audit_finish(exc)
                raise
            finally:
                uow.close()
            uow.audit_finish(None)

    @contextmanager
    def _reader(self) -> Iterator[SqlUnitOfWork]:
        with _translated(), self.engine.connect() as conn:
            self.keys.ensure(conn)
            uow = SqlUnitOfWork(conn, [], SYSTEM, self.policy, keys=self.keys, audit=self.audit)
            try:
                yield uow
            except BaseException as exc:
                uow.audit_finish(exc)
                raise
            finally:
                uow.rollback()
                uow.close()
            uow.audit_finish(None)

    def outbox_claim(self, limit: int = 100, *, topics: tuple[str, ...] | None = None,
                     exclude: tuple[str, ...] = ()) -> list[OutboxEvent]:
        now = _naive(utc_now())
        stmt = select(outbox).where(or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now))
        if topics is not None:
            stmt = stmt.where(outbox.c.topic.in_(list(topics)))
        if exclude:
            stmt = stmt.where(outbox.c.topic.not_in(list(exclude)))
        with _translated(), self.engine.connect() as conn, conn.begin():
            rows = conn.execute(stmt.order_by(outbox.c.id).limit(limit).with_for_update(skip_locked=True)).all()
            if rows:
                conn.execute(
                    update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(claimed_until=now + OUTBOX_LEASE)
                )
        return [OutboxEvent(r.id, r.topic, exact_json.loads(r.payload), _aware(r.created)) for r in rows]

    def outbox_done(self, ids: list[int]) -> None:
        if not ids:
            return
        with _translated(), self.engine.connect() as conn, conn.begin():
            conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))

    def refresh_statistics(self) -> None:
        from careflow.store.maintenance import analyze

        with _translated():
            analyze(self.engine)

    def try_lead(self, name: str) -> Any:
        from careflow.store import leader

        with _translated():
            if self.engine.dialect.name == "postgresql":
                return leader.try_postgres(self.engine, name)
            return leader.try_file(str(self.engine.url.database), name)

    def checkpoint(self) -> None:
        from careflow.store.database import checkpoint

        with _translated():
            checkpoint(self.engine)

    def _checkpoint_at_close(self) -> None:
        from careflow.store.database import checkpoint

        try:
            with _translated():
                checkpoint(self.engine, wait_seconds=2.0)
        except TransientStoreError:
            pass  # another process holds the file: its own close (the last one) folds the WAL in

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()  # nothing queued is lost on a clean shutdown
        self._checkpoint_at_close()  # the WAL does not outlive the process (issue #13: 1.28 GB left behind)
        self.engine.dispose()
