"""Backends of the store contract suite, shared by conftest and the tests (a module name no other test
directory uses, so imports do not depend on collection order)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from careflow.store.database import make_engine, scratch_schema, upgrade
from careflow.store.memory import MemoryRepository
from careflow.store.sql import SqlRepository
from careflow.store.tables import metadata

PG_ENV = "CAREFLOW_TEST_DATABASE_URL"
BACKENDS = ["memory", "sqlite", "postgres"]


def empty_tables(repo: SqlRepository) -> None:
    """Delete every row but the data keys (a repository object caches them for its lifetime) and the
    append-only audit trail."""
    names = [t.name for t in metadata.sorted_tables if t.name != "data_key" and not t.name.startswith("audit_")]
    with repo.engine.begin() as conn:
        for name in names:  # DELETE beats TRUNCATE on tables this small
            conn.execute(text(f"DELETE FROM {name}"))


@contextmanager
def isolated_repository(backend: str, tmp_dir: Path) -> Iterator[MemoryRepository | SqlRepository]:
    """A store of its own (fresh SQLite file / fresh PostgreSQL schema), removed afterwards."""
    if backend == "memory":
        yield MemoryRepository()
        return
    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir / f'{uuid.uuid4().hex}.db'}"
        upgrade(url)
        repo = SqlRepository(make_engine(url))
        try:
            yield repo
        finally:
            repo.close()
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_schema(base, "cf_test") as url:
        repo = SqlRepository(make_engine(url))
        try:
            yield repo
        finally:
            repo.close()
