"""The data keys of one database, unwrapped in memory: encryption of stored resources, blind-index key.

Envelope encryption.  The ``data_key`` table holds random 256-bit data keys, each wrapped (AES-GCM)
by the master key, which lives outside the database (``careflow.crypto.master``).  Two purposes:

* ``content``: AES-256-GCM of every ``resource_version.content`` (every version of every type);
  the associated data binds the value to its table, row (res_pk, version) and column.  Exactly one
  content key is active (new values); older ones stay until no value uses them (``careflow keys rotate``).
* ``blind``: the HMAC key of the blind index and of conditional-create keys (``careflow.fhir.identifying``).

Key switches and writers: on PostgreSQL every writing unit of work holds a shared advisory lock
(``ROTATION_LOCK``) from its first write to its end and reads the active key under it; ``careflow keys
rotate`` takes the lock exclusively to switch keys, so once the switch commits no writer can still be
using the old key, and one pass over the rows re-encrypts everything.  On SQLite writers are
serialised by the database lock, which gives the same guarantee.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import Connection, select

from careflow.crypto.envelope import Cipher, DecryptionError, key_id_of, new_key, unwrap, wrap
from careflow.crypto.master import KeyConfigError, fingerprint, load_master_key
from careflow.fhir.identifying import Protection, hmac_blind
from careflow.store.database import READ_ONLY
from careflow.store.tables import data_key, resource

log = logging.getLogger("careflow.store")

ENV_ENCRYPTION = "CAREFLOW_ENCRYPTION"  # "off": plaintext store, for measuring the cost only
CONTENT, BLIND = "content", "blind"
ROTATION_LOCK = 0x63666B6579  # PostgreSQL advisory lock: writers share it, a content-key switch takes it alone

_ACTIVE_SQL = {
    "sqlite": f"SELECT id FROM data_key WHERE active_for = '{CONTENT}'",
    "postgresql": f"SELECT id FROM data_key WHERE active_for = '{CONTENT}'",
}
_SHARE_LOCK = f"SELECT pg_advisory_xact_lock_shared({ROTATION_LOCK})"
EXCLUSIVE_LOCK = f"SELECT pg_advisory_xact_lock({ROTATION_LOCK})"


class LegacyDatabase(KeyConfigError):
    """The database holds resources written before encryption at rest (plaintext): convert it once."""


def content_context(res_pk: int, version: int) -> bytes:
    """Associated data of ``resource_version.content`` at (res_pk, version)."""
    return b"resource_version.content\x00" + struct.pack(">qi", res_pk, version)


def new_key_id() -> int:
    return secrets.randbelow(2**31 - 2) + 1


def insert_key(conn: Connection, master: bytes, purpose: str, *, active: bool) -> int:
    """A new wrapped data key of ``purpose``; with ``active`` it becomes the one new values use, unless
    another process made one first (the unique ``active_for`` decides; the caller re-reads)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    kid = new_key_id()
    conn.execute(insert(data_key).values(
        id=kid, purpose=purpose, master_id=fingerprint(master), wrapped=wrap(master, kid, purpose, new_key()),
        created=datetime.now(timezone.utc).replace(tzinfo=None), active_for=purpose if active else None,
    ).on_conflict_do_nothing())
    return kid


class KeyRing:
    """The unwrapped data keys of one database, shared by all units of work of a repository.

    Loaded at the first unit of work (creating the first keys of a new database); a value naming a key
    this process has not seen yet (another process rotated) makes it read that key from the table.
    ``master`` None: encryption off (the measurement baseline), refused on a database that has keys."""

    def __init__(self, master: bytes | None, *, allow_legacy: bool = False) -> None:
        self.master = master
        self.allow_legacy = allow_legacy  # the one-off conversion (careflow keys reindex) may open plaintext data
        self._lock = threading.Lock()
        self._cipher: Cipher | None = None
        self._protection: Protection | None = None
        self.blind_key_id: int | None = None

    @classmethod
    def from_settings(cls, dialect: str) -> "KeyRing":
        """The master key from the settings (see careflow.crypto.master); SQLite may use the generated
        key file.  ``CAREFLOW_ENCRYPTION=off`` gives the plaintext baseline benchmarks compare with."""
        if os.environ.get(ENV_ENCRYPTION, "").strip().lower() == "off":
            log.warning("encryption at rest is OFF (%s=off): for measurements only, never for real data", ENV_ENCRYPTION)
            return cls(None)
        return cls(load_master_key(embedded=dialect == "sqlite"))

    @property
    def enabled(self) -> bool:
        return self.master is not None

    @property
    def protection(self) -> Protection:
        assert self._protection is not None, "KeyRing.ensure() first"
        return self._protection

    @property
    def cipher(self) -> Cipher:
        assert self._cipher is not None, "KeyRing.ensure() first"
        return self._cipher

    # --- loading ---------------------------------------------------------------------------------
    def ensure(self, conn: Connection) -> None:
        """Load the keys (once per process) on ``conn``, outside any transaction of it."""
        if self._protection is not None:
            return
        with self._lock:
            if self._protection is not None:
                return
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                rows = conn.execute(select(data_key)).all()
            if self.master is None:
                if rows:
                    raise KeyConfigError(f"this database is encrypted; {ENV_ENCRYPTION}=off cannot open it")
                self._protection = Protection(None)
                return
            if {r.active_for for r in rows} >= {CONTENT, BLIND}:
                self._install(rows)
                return
            conn.execution_options(**{READ_ONLY: False})
            with conn.begin():
                rows = conn.execute(select(data_key)).all()
                active = {r.active_for for r in rows}
                if not rows and not self.allow_legacy and conn.execute(select(resource.c.pk).limit(1)).first() is not None:
                    raise LegacyDatabase(
                        "this database holds resources stored before encryption at rest: stop every careflow "
                        "server and worker and run `careflow keys reindex` once")
                for purpose in (CONTENT, BLIND):
                    if purpose not in active:
                        insert_key(conn, self.master, purpose, active=True)
                rows = conn.execute(select(data_key)).all()
            self._install(rows)

    def reload(self, conn: Connection) -> None:
        """Forget the loaded keys and load them again (after a switch made by this process)."""
        with self._lock:
            self._protection = None
            self._cipher = None
        self.ensure(conn)

    def _unwrap(self, row: Any) -> bytes:
        assert self.master is not None
        if row.master_id != fingerprint(self.master):
            raise KeyConfigError(
                f"data key {row.id} was wrapped by another master key (fingerprint {row.master_id}, configured "
                f"{fingerprint(self.master)}): set CAREFLOW_MASTER_KEY or CAREFLOW_MASTER_KEY_FILE to that key")
        try:
            return unwrap(self.master, row.id, row.purpose, row.wrapped)
        except DecryptionError:
            raise KeyConfigError(f"data key {row.id} does not unwrap: it was altered") from None

    def _install(self, rows: Sequence[Any]) -> None:
        content: dict[int, bytes] = {}
        active = None
        blind = None
        for row in rows:
            if row.purpose == CONTENT:
                content[row.id] = self._unwrap(row)
                if row.active_for == CONTENT:
                    active = row.id
            elif row.purpose == BLIND and row.active_for == BLIND:
                blind = (row.id, self._unwrap(row))
        if active is None or blind is None:
            raise KeyConfigError("the database has no active data keys; run `careflow keys status`")
        self._cipher = Cipher(content, active)
        self.blind_key_id = blind[0]
        self._protection = Protection(hmac_blind(blind[1]))

    def fetch(self, conn: Connection, key_id: int) -> None:
        """Learn a content key another process added (a value names it), inside ``conn``'s transaction:
        the snapshot that shows the value shows its key."""
        row = conn.execute(select(data_key).where(data_key.c.id == key_id)).first()
        if row is None or row.purpose != CONTENT:
            raise DecryptionError(f"the stored value needs key {key_id}, which the database does not hold")
        secret = self._unwrap(row)
        with self._lock:
            self.cipher.add(key_id, secret)

    # --- per unit of work ------------------------------------------------------------------------
    def writer_key(self, execute: Callable[[str], Any], conn: Connection, pg: bool) -> int:
        """The content key new values of this (writing) transaction use: read under the shared rotation
        lock (PostgreSQL) or the write lock (SQLite), so a concurrent switch cannot be missed."""
        if pg:
            execute(_SHARE_LOCK)
        row = execute(_ACTIVE_SQL["postgresql" if pg else "sqlite"]).fetchone()
        if row is None:
            raise KeyConfigError("the database has no active content key; run `careflow keys status`")
        kid = int(row[0])
        if not self.cipher.has(kid):
            self.fetch(conn, kid)
        return kid

    def seal(self, res_pk: int, version: int, raw: bytes, key_id: int) -> bytes:
        return self.cipher.encrypt(raw, content_context(res_pk, version), key_id, deflate=True)

    def open(self, res_pk: int, version: int, blob: bytes, conn: Connection) -> bytes:
        kid = key_id_of(blob)
        if kid is None:
            raise DecryptionError(
                f"resource_version ({res_pk}, {version}) is stored unencrypted: run `careflow keys reindex`")
        if not self.cipher.has(kid):
            self.fetch(conn, kid)
        return self.cipher.decrypt(blob, content_context(res_pk, version))


__all__ = ["BLIND", "CONTENT", "ENV_ENCRYPTION", "KeyRing", "LegacyDatabase", "content_context", "insert_key"]
