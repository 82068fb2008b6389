"""Which failures are worth retrying: the flows retry a step on these and fail fast on the rest.

A lost connection, a serialization failure or a deadlock says nothing about the data: the same step
succeeds when run again (every engine write is idempotent). A VersionConflict is not retried here -
the engine already skips and counts the plan, and the next sweep picks it up with fresh data.
"""

from __future__ import annotations

from careflow.errors import TransientStoreError

# DB-API / driver errors by class name, so this module needs neither SQLAlchemy nor psycopg imported
_TRANSIENT_NAMES = frozenset({
    "OperationalError",  # SQLAlchemy / sqlite3 / psycopg: connection lost, database is locked, ...
    "InterfaceError",
    "SerializationFailure",
    "DeadlockDetected",
    "LockNotAvailable",
    "AdminShutdown",
    "ConnectionFailure",
    "ConnectionTimeout",
    "PoolTimeout",
    "TimeoutError",
})


def is_transient(exc: BaseException) -> bool:
    """True for a store failure that a retry of the same step can cure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientStoreError):
            return True
        if getattr(current, "connection_invalidated", False):
            return True
        if type(current).__name__ in _TRANSIENT_NAMES and type(current).__module__.split(".")[0] in (
            "sqlalchemy", "sqlite3", "psycopg", "psycopg_pool", "builtins", "careflow",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
