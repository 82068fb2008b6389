"""One contract suite, three backends: the in-memory twin, SQLite (a temp file) and PostgreSQL.

PostgreSQL runs when CAREFLOW_TEST_DATABASE_URL is set: the session gets a fresh schema (dropped at
the end) so runs never see each other's rows; tables are emptied between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from store_backends import BACKENDS, PG_ENV, empty_tables

from careflow.store.database import make_engine, scratch_schema, upgrade
from careflow.store.memory import MemoryRepository
from careflow.store.sql import SqlRepository


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'careflow.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_schema(base, "cf_test") as url:
        yield url


_ENGINES: dict[str, SqlRepository] = {}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def repo(backend: str, request: pytest.FixtureRequest) -> Iterator[MemoryRepository | SqlRepository]:
    if backend == "memory":
        yield MemoryRepository()
        return
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    if url not in _ENGINES:
        _ENGINES[url] = SqlRepository(make_engine(url))
    shared = _ENGINES[url]
    empty_tables(shared)
    # a fresh repository object (own listeners) on the shared engine
    yield SqlRepository(shared.engine)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for r in _ENGINES.values():
        r.close()
    _ENGINES.clear()
