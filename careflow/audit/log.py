"""Where audit records go: the SQL audit log and its in-memory twin.

SQL (``SqlAuditLog``): the store hands each finished unit of work's records to :meth:`submit`, which
only appends them to an in-memory queue, so a read never waits for a write lock (SQLite has one).  A
background writer thread takes the queue every ``FLUSH_SECONDS`` (or at ``BATCH`` records) and
appends it in one transaction of its own connection: it reads the chain head (seq, mac) inside that
transaction (PostgreSQL: under an advisory lock; SQLite: under the write lock ``BEGIN IMMEDIATE``
takes), so several processes may share one log, builds each entry (the compact record of
``careflow.audit.record.compact_record``: the AuditEvent is expanded from it when read, so a search
that returned fifty resources costs fifty short pairs, not fifty BALP elements), computes its MAC
and inserts the batch.  :meth:`flush` does the same synchronously; :meth:`close` (``repository.close()``,
and an ``atexit`` hook for logs nobody closed) flushes what is left, so a clean shutdown loses
nothing.  A crash (kill -9, power loss) loses the records still queued: at most the last
``FLUSH_SECONDS`` of interactions, whose responses may already have been sent.

The audit key is a data key of purpose ``audit`` in the ``data_key`` table, wrapped by the master key
like the content and blind-index keys (``careflow keys rewrap`` re-wraps it; rotation leaves it).
With encryption off (``CAREFLOW_ENCRYPTION=off``, measurements only) it is a key file ``audit.key``
in the data directory.  ``CAREFLOW_AUDIT=off`` turns the audit trail off (for measuring its cost only).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from datetime import timezone
from typing import Any, Iterator

import orjson
from sqlalchemy import Connection, Engine, and_, func, select

from careflow.audit.chain import GENESIS, Entry, Report, entry_mac, verify
from careflow.audit.query import AuditQuery
from careflow.audit.record import AuditRecord, compact_record, expand

log = logging.getLogger("careflow.audit")

ENV_AUDIT = "CAREFLOW_AUDIT"
AUDIT = "audit"
FLUSH_SECONDS = 0.25
BATCH = 2000
IDLE_EXIT_SECONDS = 5.0
AUDIT_LOCK = 0x6366617564  # PostgreSQL advisory lock: one appender of the chain at a time

_OPEN_LOGS: "weakref.WeakSet[SqlAuditLog]" = weakref.WeakSet()


def audit_enabled() -> bool:
    off = os.environ.get(ENV_AUDIT, "").strip().lower() == "off"
    if off:
        log.warning("the audit trail is OFF (%s=off): for measurements only, never for real data", ENV_AUDIT)
    return not off


def _canonical(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


class MemoryAuditLog:
    """The in-memory twin: the same entries and chain, appended at once (nothing to wait for)."""

    def __init__(self) -> None:
        self.key = os.urandom(32)
        self.entries: list[tuple[Entry, dict[str, Any], list[tuple[str, str]]]] = []
        self._lock = threading.Lock()

    def submit(self, records: list[AuditRecord]) -> None:
        with self._lock:
            for r in records:
                event, rows = compact_record(r, str(uuid.uuid4()), self.key)
                content = _canonical(event)
                seq = len(self.entries) + 1
                prev = self.entries[-1][0].mac if self.entries else GENESIS
                entry = Entry(seq, content, prev, entry_mac(self.key, seq, content, prev))
                self.entries.append((entry, event, rows))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def verify(self) -> Report:
        return verify([e for e, _, _ in self.entries], self.key)

    def search(self, q: AuditQuery) -> tuple[int, list[bytes]]:
        if q.none:
            return 0, []
        found = [(e, ev) for e, ev, rows in reversed(self.entries) if _matches(q, e, ev, rows)]
        return len(found), [_served(e.content) for e, _ in found[q.offset:q.offset + q.count]]


def _matches(q: AuditQuery, e: Entry, ev: dict[str, Any], rows: list[tuple[str, str]]) -> bool:
    from careflow.audit.chain import columns_of

    eid, recorded, action, subtype, outcome, agent = columns_of(e.content)
    refs = {r for r, _ in rows}
    patients = {r for r, role in rows if role == "p"}
    if q.ids is not None and eid not in q.ids:
        return False
    if q.patients is not None and not patients & set(q.patients):
        return False
    if q.entities is not None and not refs & set(q.entities):
        return False
    if q.agents is not None and agent not in q.agents:
        return False
    if q.subtypes is not None and subtype not in q.subtypes:
        return False
    if q.actions is not None and action not in q.actions:
        return False
    if q.outcomes is not None and outcome not in q.outcomes:
        return False
    from careflow.fhir.search_values import instant_text

    for op, bound in q.dates:
        limit = instant_text(bound.replace(tzinfo=timezone.utc))
        if (op == "ge" and recorded < limit) or (op == "lt" and recorded >= limit):
            return False
    return True


class SqlAuditLog:
    """The audit log in the store's database (tables ``audit_event`` and ``audit_entity``)."""

    def __init__(self, engine: Engine, keys: Any) -> None:
        self.engine = engine
        self.keys = keys  # careflow.store.keyring.KeyRing: its master key wraps the audit key
        self.pg = engine.dialect.name == "postgresql"
        self._key: bytes | None = None
        self._queue: deque[AuditRecord] = deque()
        self._cond = threading.Condition()
        self._append_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.appended = 0
        _OPEN_LOGS.add(self)

    # --- writing ---------------------------------------------------------------------------------
    def submit(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        with self._cond:
            self._queue.extend(records)
            if self._closed:
                pass  # closed: written synchronously below
            elif self._thread is None:
                self._thread = threading.Thread(target=self._run, name="careflow-audit-writer", daemon=True)
                self._thread.start()
            elif len(self._queue) >= BATCH:
                self._cond.notify()
        if self._closed:
            self.flush()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(FLUSH_SECONDS)
                if self._closed:
                    self._thread = None
                    return
                if not self._queue:
                    if time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                        self._thread = None  # started again by the next submit
                        return
                    continue
            try:
                self.flush()
                idle_since = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the records stay queued; retried on the next round
                # the kind only, no traceback: a database error's text quotes the records (who saw whom)
                log.error("appending to the audit log failed (%s); retrying", type(exc).__name__)
                time.sleep(1.0)
            time.sleep(FLUSH_SECONDS)

    def flush(self) -> None:
        """Append everything queued now (in the calling thread)."""
        with self._append_lock:
            while True:
                with self._cond:
                    batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                if not batch:
                    return
                try:
                    self._append(batch)
                except BaseException:
                    with self._cond:
                        self._queue.extendleft(reversed(batch))
                    raise

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()

    def key(self, conn: Connection, *, create: bool) -> bytes | None:
        """The audit key (created in ``conn``'s transaction at first use when ``create``)."""
        if self._key is None:
            self._key = load_audit_key(conn, self.keys.master, create=create)
        return self._key

    def _append(self, batch: list[AuditRecord]) -> None:
        # driver-level statements (as the store's ingest does, ``careflow.store.sql.HotSql``): a batch
        # is thousands of entity rows, and SQLAlchemy's per-row parameter handling would hold the GIL
        # that the request threads need
        from careflow.store.sql import HOT_SQL

        hot = HOT_SQL["postgresql" if self.pg else "sqlite"]
        p = "%s" if self.pg else "?"
        with self.engine.connect() as conn, conn.begin():
            key = self.key(conn, create=True)
            assert key is not None
            if self.pg:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK})")
            head = conn.exec_driver_sql("SELECT seq, mac FROM audit_event ORDER BY seq DESC LIMIT 1").first()
            seq, prev = (int(head[0]), bytes(head[1])) if head is not None else (0, GENESIS)
            events: list[tuple[Any, ...]] = []
            entities: list[tuple[str, str, int]] = []
            for r in batch:
                event, rows = compact_record(r, str(uuid.uuid4()), key)
                content = _canonical(event)
                seq += 1
                mac = entry_mac(key, seq, content, prev)
                events.append((seq, event["id"], hot.ts(r.recorded), r.action, r.subtype, r.outcome,
                               r.principal.id[:140], content, prev, mac))
                entities.extend((ref[:140], role, seq) for ref, role in rows)
                prev = mac
            cursor = conn.connection.cursor()
            try:
                cursor.executemany(
                    "INSERT INTO audit_event (seq, id, recorded, action, subtype, outcome, agent, content, prev_mac, "
                    f"mac) VALUES ({', '.join([p] * 10)})", events)
                if entities:
                    cursor.executemany(f"INSERT INTO audit_entity (ref, role, seq) VALUES ({p}, {p}, {p})", entities)
            finally:
                cursor.close()
        self.appended += len(batch)

    # --- reading ---------------------------------------------------------------------------------
    def entries(self, conn: Connection) -> Iterator[Entry]:
        from careflow.store.tables import audit_event as table

        rows = conn.execution_options(yield_per=1000).execute(
            select(table.c.seq, table.c.content, table.c.prev_mac, table.c.mac, table.c.id, table.c.recorded,
                   table.c.action, table.c.subtype, table.c.outcome, table.c.agent).order_by(table.c.seq))
        from careflow.fhir.search_values import instant_text

        for r in rows:
            yield Entry(int(r.seq), _bytes(r.content), _bytes(r.prev_mac), _bytes(r.mac),
                        (r.id, instant_text(r.recorded.replace(tzinfo=timezone.utc)) if r.recorded else None,
                         r.action, r.subtype, r.outcome, r.agent))

    def verify(self, *, expect_head: tuple[int, str] | None = None) -> Report:
        self.flush()
        with self.engine.connect() as conn:
            key = load_audit_key(conn, self.keys.master, create=False)
            if key is None:
                count = conn.execute(select(func.count()).select_from(_table())).scalar() or 0
                if count:
                    return Report(count, ["the audit key is missing from the database: no entry can be checked"], 0, "")
                return Report(0, [], 0, GENESIS.hex())
            return verify(self.entries(conn), key, expect_head=expect_head)

    def search(self, q: AuditQuery, conn: Connection | None = None) -> tuple[int, list[bytes]]:
        from careflow.store.tables import audit_entity
        from careflow.store.tables import audit_event as table

        if q.none:
            return 0, []
        where: list[Any] = []
        if q.ids is not None:
            where.append(table.c.id.in_(q.ids))
        for refs, role in ((q.patients, "p"), (q.entities, None)):
            if refs is not None:
                sub = select(audit_entity.c.seq).where(audit_entity.c.ref.in_(refs))
                if role:
                    sub = sub.where(audit_entity.c.role == role)
                where.append(table.c.seq.in_(sub))
        for values, column in ((q.agents, table.c.agent), (q.subtypes, table.c.subtype),
                               (q.actions, table.c.action), (q.outcomes, table.c.outcome)):
            if values is not None:
                where.append(column.in_(values))
        for op, bound in q.dates:
            where.append(table.c.recorded >= bound if op == "ge" else table.c.recorded < bound)
        cond = and_(*where) if where else None

        def run(c: Connection) -> tuple[int, list[bytes]]:
            count_q = select(func.count()).select_from(table)
            page_q = select(table.c.content).order_by(table.c.seq.desc()).limit(q.count).offset(q.offset)
            if cond is not None:
                count_q, page_q = count_q.where(cond), page_q.where(cond)
            total = c.execute(count_q).scalar() or 0
            return total, [_served(bytes(r[0])) for r in c.execute(page_q)]

        if conn is not None:
            return run(conn)
        with self.engine.connect() as c:
            return run(c)


def _served(content: bytes) -> bytes:
    """The AuditEvent JSON of a stored entry (the log keeps the compact form, see ``compact_record``)."""
    return orjson.dumps(expand(orjson.loads(content)))


def _bytes(value: Any) -> bytes:
    """A stored binary column (an altered row may hold text or NULL: verify reports it, never crashes)."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _table() -> Any:
    from careflow.store.tables import audit_event

    return audit_event


def load_audit_key(conn: Connection, master: bytes | None, *, create: bool) -> bytes | None:
    """The audit key: the ``audit`` data key unwrapped by ``master``; with no master (encryption off,
    for measurements) the ``audit.key`` file of the data directory."""
    if master is None:
        from careflow.crypto.master import data_dir, generated_key_file

        return generated_key_file(data_dir() / "audit.key")
    from careflow.crypto.envelope import unwrap
    from careflow.store.keyring import insert_key
    from careflow.store.tables import data_key

    def active() -> Any:
        return conn.execute(select(data_key).where(data_key.c.active_for == AUDIT)).first()

    row = active()
    if row is None:
        if not create:
            return None
        insert_key(conn, master, AUDIT, active=True)
        row = active()
        assert row is not None
    from careflow.crypto.master import KeyConfigError, fingerprint

    if row.master_id != fingerprint(master):
        raise KeyConfigError(f"the audit key was wrapped by another master key (fingerprint {row.master_id})")
    return unwrap(master, row.id, row.purpose, row.wrapped)


@atexit.register
def _flush_open_logs() -> None:
    for audit_log in list(_OPEN_LOGS):
        try:
            audit_log.close()
        except Exception as exc:  # noqa: BLE001 - at exit, a log that cannot be written is reported, not raised
            log.error("could not write the last audit records at exit (%s)", type(exc).__name__)
