"""Planner statistics of the store, refreshed after bulk work.

After a bulk load the planners work from statistics of a smaller (or empty) store: PostgreSQL's
autovacuum catches up only minutes later and estimated one row where an owner had 8,000 Tasks
(issue #13); SQLite has no statistics at all until ``ANALYZE`` runs.  Bulk ingest, enrolment and the
demo load call :func:`analyze` when they end.  On SQLite ``analysis_limit`` bounds the work per index
(a sample, as PostgreSQL does), so this costs well under a second even on a large file.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from careflow.store.tables import metadata

# the tables the search planner reasons about (the audit tables are append-only and scanned by seq)
SEARCH_TABLES = ("resource", "resource_version", "access_grant",
                 "idx_token", "idx_reference", "idx_date", "idx_string", "idx_quantity", "idx_uri",
                 "task_worklist", "task_performer")
SQLITE_ANALYSIS_LIMIT = 2000


def analyze(bind: Engine | Connection) -> None:
    """Refresh the planner statistics of the search tables (committed on its own connection when
    given an engine)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            analyze(conn)
            conn.commit()
        return
    conn = bind
    assert all(name in metadata.tables for name in SEARCH_TABLES)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
        for name in SEARCH_TABLES:
            conn.exec_driver_sql(f"ANALYZE {name}")
    else:
        conn.execute(text(f"ANALYZE {', '.join(SEARCH_TABLES)}"))
