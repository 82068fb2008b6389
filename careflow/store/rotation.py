"""Key maintenance of a SQL store: status, online content-key rotation, offline re-index, master re-wrap.

* ``rotate`` (online, ``careflow keys rotate``): a new content key becomes active (new values use it
  from that commit on), every stored version still under an older key is re-encrypted in short
  batches, then each older key no value names any more is deleted.  Readers keep working throughout:
  a value decrypts under whichever key its header names, and a process meeting a key it has not seen
  yet reads it from ``data_key`` in the same snapshot.  See ``careflow.store.keyring`` for why no
  writer can still be using the old key once the switch has committed.
* ``reindex`` (offline, ``careflow keys reindex``): rebuilds every index row from the decrypted
  current versions - with a new blind-index key when asked - and clears the conditional-create keys.
  Offline because a blind-index key cannot be switched under running searches: rows under the old
  and new key would not match the same query.  It also converts a database from before encryption at
  rest (plaintext contents and index rows) in the same pass.
* ``rewrap`` (``careflow keys rewrap``): wraps every data key under a new master key, in one
  transaction; no resource is touched.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import orjson
from sqlalchemy import Connection, delete, func, select, update

from careflow.crypto.envelope import FORMATS, HEADER_SIZE, key_id_of, unwrap, wrap
from careflow.crypto.master import KeyConfigError, fingerprint
from careflow.fhir.identifying import Protection, hmac_blind
from careflow.fhir.search_index import extract_index
from careflow.store.database import READ_ONLY
from careflow.store.keyring import BLIND, CONTENT, EXCLUSIVE_LOCK, insert_key
from careflow.store.sql import SqlRepository
from careflow.store.sql_worklist import worklist_rows
from careflow.store.tables import INDEX_TABLES, condition_key, data_key, resource, resource_version, task_performer, task_worklist

PLAINTEXT = "plaintext"
Progress = Callable[[str], None]


@dataclass
class KeyUsage:
    id: int
    purpose: str
    active: bool
    created: datetime
    values: int | None  # stored versions encrypted under it (content keys)


@dataclass
class Status:
    keys: list[KeyUsage]
    plaintext: int  # versions stored unencrypted (a database from before encryption at rest)
    unknown: dict[int, int] = field(default_factory=dict)  # key ids values name but data_key lacks


def _write(conn: Connection) -> Any:
    """A write transaction (BEGIN IMMEDIATE on SQLite)."""
    conn.execution_options(**{READ_ONLY: False})
    return conn.begin()


def usage(conn: Connection) -> dict[int | str, int]:
    """How many stored versions each content key encrypts (from the value headers), plus plaintext."""
    head = func.substr(resource_version.c.content, 1, HEADER_SIZE).label("head")
    rows = conn.execute(
        select(head, func.count()).where(resource_version.c.content.is_not(None)).group_by(head)
    ).all()
    out: dict[int | str, int] = {}
    for h, n in rows:
        h = bytes(h)
        if len(h) == HEADER_SIZE and h[0] in FORMATS:
            kid: int | str = struct.unpack(">BI", h)[1]
        else:
            kid = PLAINTEXT
        out[kid] = out.get(kid, 0) + n
    return out


def status(repo: SqlRepository) -> Status:
    with repo.engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            keys = conn.execute(select(data_key).order_by(data_key.c.created, data_key.c.id)).all()
            used = usage(conn)
    known = {k.id for k in keys}
    return Status(
        keys=[KeyUsage(k.id, k.purpose, k.active_for is not None, k.created,
                       used.get(k.id, 0) if k.purpose == CONTENT else None) for k in keys],
        plaintext=used.get(PLAINTEXT, 0),
        unknown={k: n for k, n in used.items() if isinstance(k, int) and k not in known},
    )


@dataclass
class RotationReport:
    new_key: int
    reencrypted: int
    retired: list[int]
    remaining: dict[int, int]  # older keys still in use (only if something went wrong; kept)


def switch_content_key(repo: SqlRepository) -> int:
    """Make a new content key the active one; returns its id.  On PostgreSQL the exclusive rotation
    lock waits for every writer that read the old key to finish, and holds new ones back until this
    commits; on SQLite the write lock does the same."""
    keys = repo.keys
    if not keys.enabled or keys.master is None:
        raise KeyConfigError("encryption is off: there is no key to rotate")
    with repo.engine.connect() as conn:
        keys.ensure(conn)
        with _write(conn):
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(EXCLUSIVE_LOCK)
            conn.execute(update(data_key).where(data_key.c.active_for == CONTENT).values(active_for=None))
            kid = insert_key(conn, keys.master, CONTENT, active=True)
        keys.reload(conn)
    return kid


def rotate(repo: SqlRepository, *, batch: int = 500, pause: float = 0.0, progress: Progress | None = None) -> RotationReport:
    """Online rotation of the content key (see module docstring).  ``pause`` seconds between batches
    leave the write lock to the server on SQLite."""
    new = switch_content_key(repo)
    keys = repo.keys
    done = 0
    last = (0, 0)
    with repo.engine.connect() as conn:
        while True:
            with _write(conn):
                rows = conn.execute(
                    select(resource_version.c.res_pk, resource_version.c.version, resource_version.c.content)
                    .where(resource_version.c.content.is_not(None),
                           (resource_version.c.res_pk > last[0])
                           | ((resource_version.c.res_pk == last[0]) & (resource_version.c.version > last[1])))
                    .order_by(resource_version.c.res_pk, resource_version.c.version).limit(batch)
                ).all()
                if not rows:
                    break
                for pk, version, content in rows:
                    blob = bytes(content)
                    if key_id_of(blob) == new:
                        continue
                    raw = keys.open(pk, version, blob, conn)
                    sealed = keys.seal(pk, version, raw, new)
                    result = conn.execute(
                        update(resource_version)
                        .where(resource_version.c.res_pk == pk, resource_version.c.version == version,
                               resource_version.c.content == blob)
                        .values(content=sealed)
                    )
                    done += result.rowcount
                last = (rows[-1][0], rows[-1][1])
            if progress:
                progress(f"re-encrypted {done} versions (up to row {last[0]})")
            if pause:
                time.sleep(pause)
        retired, remaining = retire_unused(conn)
    return RotationReport(new, done, retired, remaining)


def retire_unused(conn: Connection) -> tuple[list[int], dict[int, int]]:
    """Delete every inactive content key that no stored value names; returns (deleted, still used)."""
    with _write(conn):
        used = usage(conn)
        inactive = conn.execute(
            select(data_key.c.id).where(data_key.c.purpose == CONTENT, data_key.c.active_for.is_(None))
        ).scalars().all()
        retired = [k for k in inactive if not used.get(k)]
        if retired:
            conn.execute(delete(data_key).where(data_key.c.id.in_(retired)))
    return retired, {k: used[k] for k in inactive if used.get(k)}


@dataclass
class ReindexReport:
    resources: int
    converted: int  # plaintext versions encrypted
    blind_key: int


def reindex(repo: SqlRepository, *, new_blind_key: bool = True, batch: int = 500,
            progress: Progress | None = None) -> ReindexReport:
    """Offline: every index row rebuilt from the current versions, under a new blind-index key when
    ``new_blind_key`` (the old one is deleted at the end); plaintext versions are encrypted on the way;
    conditional-create keys are cleared (they only guard creates in flight).  Stop every server and
    worker first: searches would miss rows while the index is rebuilt."""
    keys = repo.keys
    if not keys.enabled or keys.master is None:
        raise KeyConfigError("encryption is off: nothing to re-index")
    keys.allow_legacy = True
    with repo.engine.connect() as conn:
        keys.ensure(conn)
        with _write(conn):
            if new_blind_key:
                blind_id = insert_key(conn, keys.master, BLIND, active=False)
            else:
                blind_id = conn.execute(select(data_key.c.id).where(data_key.c.active_for == BLIND)).scalar_one()
            row = conn.execute(select(data_key).where(data_key.c.id == blind_id)).one()
        protection = Protection(hmac_blind(unwrap(keys.master, row.id, row.purpose, row.wrapped)))
        converted = indexed = 0
        last = 0
        while True:
            with _write(conn):
                chunk = conn.execute(
                    select(resource_version.c.res_pk, resource_version.c.version, resource_version.c.content,
                           resource.c.type, resource.c.version.label("current"), resource.c.deleted)
                    .select_from(resource_version.join(resource, resource.c.pk == resource_version.c.res_pk))
                    .where(resource_version.c.res_pk > last)
                    .order_by(resource_version.c.res_pk, resource_version.c.version)
                    .limit(batch)
                ).all()
                if not chunk:
                    break
                last_pk = chunk[-1].res_pk
                if len(chunk) == batch:  # finish the last resource of the chunk in the next round
                    rest = conn.execute(
                        select(resource_version.c.res_pk, resource_version.c.version, resource_version.c.content,
                               resource.c.type, resource.c.version.label("current"), resource.c.deleted)
                        .select_from(resource_version.join(resource, resource.c.pk == resource_version.c.res_pk))
                        .where(resource_version.c.res_pk == last_pk,
                               resource_version.c.version > chunk[-1].version)
                        .order_by(resource_version.c.version)
                    ).all()
                    chunk = [*chunk, *rest]
                pks = sorted({r.res_pk for r in chunk})
                for table in (*INDEX_TABLES.values(), task_worklist, task_performer):
                    conn.execute(delete(table).where(table.c.res_pk.in_(pks)))
                rows: dict[str, list[dict[str, Any]]] = {k: [] for k in INDEX_TABLES}
                worklist: dict[str, list[dict[str, Any]]] = {"task_worklist": [], "task_performer": []}
                for r in chunk:
                    if r.content is None:
                        continue
                    blob = bytes(r.content)
                    if key_id_of(blob) is None:  # plaintext from before encryption at rest
                        raw = blob
                        conn.execute(
                            update(resource_version)
                            .where(resource_version.c.res_pk == r.res_pk, resource_version.c.version == r.version)
                            .values(content=keys.seal(r.res_pk, r.version, blob, keys.cipher.active))  # type: ignore[arg-type]
                        )
                        converted += 1
                    else:
                        raw = keys.open(r.res_pk, r.version, blob, conn)
                    if r.version != r.current or r.deleted:
                        continue
                    index = protection.index(r.type, extract_index(orjson.loads(raw)))
                    indexed += 1
                    for kind, table in INDEX_TABLES.items():
                        for row in getattr(index, kind):
                            values = dict(zip([c.name for c in table.columns][2:], row))
                            rows[kind].append({"res_pk": r.res_pk, "rtype": r.type, **values})
                    for name, listed in worklist_rows(r.res_pk, r.type, index, lambda moment: moment).items():
                        columns = [c.name for c in (task_worklist if name == "task_worklist" else task_performer).columns]
                        worklist[name].extend(dict(zip(columns, row)) for row in listed)
                for kind, table in INDEX_TABLES.items():
                    if rows[kind]:
                        conn.execute(table.insert(), rows[kind])
                for name, table in (("task_worklist", task_worklist), ("task_performer", task_performer)):
                    if worklist[name]:
                        conn.execute(table.insert(), worklist[name])
                last = last_pk
            if progress:
                progress(f"re-indexed {indexed} resources")
        with _write(conn):
            conn.execute(delete(condition_key))
            if new_blind_key:
                conn.execute(delete(data_key).where(data_key.c.active_for == BLIND))
                conn.execute(update(data_key).where(data_key.c.id == blind_id).values(active_for=BLIND))
            # unused inactive blind keys (an interrupted earlier re-index) go too
            conn.execute(delete(data_key).where(data_key.c.purpose == BLIND, data_key.c.active_for.is_(None)))
        keys.reload(conn)
    return ReindexReport(indexed, converted, blind_id)


def rewrap(repo: SqlRepository, new_master: bytes) -> int:
    """Wrap every data key under ``new_master`` (one transaction); returns how many.  Configure the new
    master key for every process afterwards (running ones keep their unwrapped keys)."""
    keys = repo.keys
    if keys.master is None:
        raise KeyConfigError("encryption is off: there are no data keys to re-wrap")
    old = keys.master
    with repo.engine.connect() as conn:
        keys.ensure(conn)
        with _write(conn):
            rows = conn.execute(select(data_key)).all()
            for row in rows:
                if row.master_id != fingerprint(old):
                    raise KeyConfigError(f"data key {row.id} is not wrapped by the configured master key")
                secret = unwrap(old, row.id, row.purpose, row.wrapped)
                conn.execute(update(data_key).where(data_key.c.id == row.id).values(
                    wrapped=wrap(new_master, row.id, row.purpose, secret), master_id=fingerprint(new_master)))
    keys.master = new_master
    return len(rows)


__all__ = ["ReindexReport", "RotationReport", "Status", "reindex", "retire_unused", "rewrap", "rotate", "status",
           "switch_content_key", "usage"]
