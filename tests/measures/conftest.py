"""Quality-indicator tests run against the in-memory twin and SQLite (PostgreSQL too when
CAREFLOW_TEST_DATABASE_URL is set): the engine must behave the same on every store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "CAREFLOW_TEST_DATABASE_URL"


def _sqlite(tmp_path: Path) -> Iterator[object]:
    from careflow.store.database import make_engine, upgrade
    from careflow.store.sql import SqlRepository

    url = f"sqlite:///{tmp_path / 'engine.db'}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    try:
        yield repo
    finally:
        repo.close()


def _postgres() -> Iterator[object]:
    from careflow.store.database import make_engine, scratch_schema
    from careflow.store.sql import SqlRepository

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_schema(base, "cf_engine") as url:
        repo = SqlRepository(make_engine(url))
        try:
            yield repo
        finally:
            repo.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "memory":
        from careflow.store.memory import MemoryRepository

        yield MemoryRepository()
    elif request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres()
