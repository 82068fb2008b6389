"""One runner among every process that shares a store: a named lease, held while the holder lives.

``careflow serve --workers N`` starts N processes, each with the same app; the outbox consumer and
the Subscription delivery loop must still run once, or a notification goes out twice (delivery
reads the ledger's pending numbers, posts them, then settles them: two rounds at once both post).
Whoever holds the lease runs them; the others ask again now and then, so when the holder dies (its
connection closes, its file lock goes with the process) another process takes over.

- **PostgreSQL**: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own,
  kept open while the lease is held. The key is a hash of the name and the connection's schema, so
  two stores in one database (the test sessions' private schemas) never wait on each other.
- **SQLite**: an exclusive ``flock`` on a file beside the database (``<db>.<name>.lock``): the
  processes sharing an SQLite file share its machine.
- **Memory twin**: a flag on the repository (one process by definition).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Protocol

BACKGROUND = "careflow-background"  # the outbox consumer and the Subscription delivery of a server


class Lease(Protocol):
    """A held lease; :meth:`alive` says whether it still holds (False once the database dropped it)."""

    def alive(self) -> bool: ...

    def release(self) -> None: ...


def lock_key(name: str, schema: str) -> int:
    """A signed 64-bit advisory lock key, stable across processes and Python versions."""
    digest = hashlib.blake2b(f"careflow lease {schema} {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _PostgresLease:
    def __init__(self, conn: Any, key: int) -> None:
        self._conn, self._key = conn, key

    def alive(self) -> bool:
        try:
            held = self._conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %(k)s",
                {"k": self._key},
            ).scalar()
        except Exception:  # the connection is gone, and the lock with it
            return False
        return bool(held)

    def release(self) -> None:
        try:
            self._conn.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": self._key})
        except Exception:
            pass  # a dead connection holds nothing
        finally:
            try:
                self._conn.close()
            except Exception:
                pass


def try_postgres(engine: Any, name: str) -> Lease | None:
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar() or ""
        key = lock_key(name, str(schema))
        if conn.exec_driver_sql("SELECT pg_try_advisory_lock(%(k)s)", {"k": key}).scalar():
            return _PostgresLease(conn, key)
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


class _FileLease:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def try_file(database: str, name: str) -> Lease | None:
    import fcntl

    path = Path(f"{database}.{name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return _FileLease(fd)


class _FlagLease:
    def __init__(self, held: set[str], lock: threading.Lock, name: str) -> None:
        self._held, self._lock, self._name = held, lock, name
        self._alive = True

    def alive(self) -> bool:
        return self._alive

    def release(self) -> None:
        with self._lock:
            if self._alive:
                self._held.discard(self._name)
                self._alive = False


class InProcessLeases:
    """The memory twin's leases: one holder per name in this process."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def try_lead(self, name: str) -> Lease | None:
        with self._lock:
            if name in self._held:
                return None
            self._held.add(name)
        return _FlagLease(self._held, self._lock, name)
