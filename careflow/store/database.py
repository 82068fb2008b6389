"""Where the store lives and how to open it: URL resolution, engine set-up, migrations at open.

SQLite (the embedded default, a file in the user's data directory) is tuned for concurrent use: WAL
journal, a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions so concurrent writers queue for
the lock instead of failing with "database is locked" half-way through.  The writers of one process
take that lock in the order they asked for it (``careflow.store.write_turns``), not in the busy
handler's lottery.  Read transactions use a plain deferred ``BEGIN`` so searches run in parallel with
a writer.  The WAL file is kept small: ``journal_size_limit`` cuts it back after each checkpoint that
empties it, and bulk work (loads, enrolment, the sweep) and closing the store checkpoint it fully
(:func:`checkpoint`), so it never grows to the size of the database beside it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from careflow.errors import CareflowError, TransientStoreError

ENV_URL = "CAREFLOW_DATABASE_URL"
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
SQLITE_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # what an emptied WAL file is cut back to
ENV_WRITE_QUEUE = "CAREFLOW_SQLITE_WRITE_QUEUE"  # "off": the busy handler alone (to measure the queue only)
READ_ONLY = "careflow_read_only"  # execution option: deferred BEGIN on SQLite
_WRITE_TURNS: "weakref.WeakKeyDictionary[Engine, Any]" = weakref.WeakKeyDictionary()
_PG_MIGRATION_LOCK = 0x6361726566  # advisory lock id serialising concurrent upgrades on PostgreSQL


class DatabaseUrlError(CareflowError):
    """The database URL cannot be used (unsupported backend or malformed)."""


def default_url() -> str:
    """SQLite in careflow's data directory: ``$CAREFLOW_DATA_DIR`` (as for Prefect's home), else the user's."""
    import platformdirs

    data_dir = Path(os.environ.get("CAREFLOW_DATA_DIR") or platformdirs.user_data_dir("careflow"))
    return f"sqlite:///{data_dir / 'careflow.db'}"


def resolve_url(url: str | None = None) -> str:
    """The argument, else $CAREFLOW_DATABASE_URL, else the SQLite file in the user's data directory.
    ``postgresql://`` is read as ``postgresql+psycopg://`` (psycopg 3 is the driver careflow ships)."""
    chosen = url or os.environ.get(ENV_URL) or default_url()
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    try:
        backend = make_url(chosen).get_backend_name()
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise DatabaseUrlError(f"cannot read database URL {chosen!r}: {exc}") from None
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite:///path or postgresql+psycopg://...")
    return chosen


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for the store's transaction discipline (see module docstring).

    ``hide_parameters``: a failed statement's error, and so any log line or traceback of it, never
    carries the values bound to it (names, national numbers)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise DatabaseUrlError("an in-memory SQLite database cannot be shared; use a file or MemoryRepository")
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUrlError(f"cannot create the directory of {database}: {exc.strerror or exc}") from None
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=kwargs.pop("pool_size", 8), max_overflow=kwargs.pop("max_overflow", 56), pool_timeout=120,
            hide_parameters=True, **kwargs,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(
        url, pool_size=kwargs.pop("pool_size", 10), max_overflow=kwargs.pop("max_overflow", 40),
        pool_pre_ping=True, pool_timeout=120, hide_parameters=True, **kwargs,
    )


def _tune_sqlite(engine: Engine) -> None:
    from careflow.store.write_turns import WriteTurns

    turns = WriteTurns(SQLITE_BUSY_TIMEOUT_MS / 1000) if os.environ.get(ENV_WRITE_QUEUE, "on") != "off" else None
    if turns is not None:
        _WRITE_TURNS[engine] = turns

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event below emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute(f"PRAGMA journal_size_limit={SQLITE_JOURNAL_SIZE_LIMIT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        holder = conn.connection.dbapi_connection
        if turns is not None:
            turns.acquire(holder)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if turns is not None:
                turns.release(holder)
            raise

    if turns is None:
        return

    # the turn passes on when the transaction ends, however it ends (the pool's reset on return and a
    # connection closed or invalidated mid-transaction included)
    def _end(conn) -> None:  # type: ignore[no-untyped-def]
        try:
            holder = conn.connection.dbapi_connection
        except Exception:  # noqa: BLE001 - an invalidated connection: the pool's event releases it
            return
        turns.release(holder)

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)

    def _pool_end(dbapi_conn, *_args) -> None:  # type: ignore[no-untyped-def]
        turns.release(dbapi_conn)

    for name in ("checkin", "reset", "invalidate", "close"):
        event.listen(engine.pool, name, _pool_end)


def write_turns(engine: Engine) -> "WriteTurns | None":  # noqa: F821
    """The write queue of an SQLite engine (None on PostgreSQL, or with the queue turned off)."""
    return _WRITE_TURNS.get(engine)


def checkpoint(bind: Engine, wait_seconds: float = 5.0) -> bool:
    """Copy SQLite's WAL into the database and empty the WAL file (``wal_checkpoint(TRUNCATE)``).

    SQLite's own checkpoints (every 1000 pages) cannot restart the WAL while a reader or writer of
    another connection is active, so under sustained bulk work the file only grows: a region load
    left a 1.28 GB WAL next to a 935 MB database (issue #13).  Called between bulk batches, when bulk
    work ends and when the store is closed.  It waits up to ``wait_seconds`` for the readers and the
    writer it must outlast (another process serving the same file may never pause: then the WAL is
    copied as far as it can be, and emptied by a later call).  True when the WAL is empty.  A no-op
    (True) on PostgreSQL."""
    if bind.dialect.name != "sqlite":
        return True
    raw = bind.raw_connection()  # the driver's connection: no BEGIN around it (a checkpoint cannot run in one)
    try:
        cursor = raw.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
        try:
            busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()
    finally:
        raw.close()
    return not busy


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations shipped in the package."""
    from alembic import command
    from alembic.config import Config

    engine = url if isinstance(url, Engine) else make_engine(resolve_url(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with _reachable(engine), engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


@contextmanager
def _reachable(engine: Engine) -> Iterator[None]:
    """Opening the store: a database that cannot be reached or opened is one clear, retryable error."""
    from sqlalchemy import exc

    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise TransientStoreError(f"cannot open the database at {where}: {reason}") from error


def open_repository(url: str | None = None, *, migrate: bool = True) -> "SqlRepository":  # noqa: F821
    """The SQL store at ``resolve_url(url)``, migrated to the latest schema unless ``migrate`` is False."""
    from careflow.store.sql import SqlRepository

    engine = make_engine(resolve_url(url))
    if migrate:
        upgrade(engine)
    return SqlRepository(engine)


def with_search_path(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use ``schema``: tests and benchmarks share one database."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def scratch_schema(base_url: str, prefix: str = "cf_scratch") -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema for the block (its URL), dropped afterwards."""
    import uuid

    base = resolve_url(base_url)
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = with_search_path(base, schema)
        upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
