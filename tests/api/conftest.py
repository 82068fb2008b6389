"""API tests run against every store backend: the in-memory twin, SQLite (temp file) and PostgreSQL
(when CAREFLOW_TEST_DATABASE_URL is set; a private schema per session, tables emptied per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from careflow.api.app import create_app
from careflow.store.database import make_engine, scratch_schema, upgrade
from careflow.store.memory import MemoryRepository
from careflow.store.sql import SqlRepository
from careflow.store.tables import metadata

PG_ENV = "CAREFLOW_TEST_DATABASE_URL"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def api_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'careflow.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def api_pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_schema(base, "cf_api") as url:
        yield url


_ENGINES: dict[str, SqlRepository] = {}


def _empty(repo: SqlRepository) -> None:
    names = [t.name for t in metadata.sorted_tables]
    with repo.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY"))
        else:
            for name in reversed(names):
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def repo(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryRepository()
        return
    url = request.getfixturevalue("api_sqlite_url" if request.param == "sqlite" else "api_pg_url")
    if url not in _ENGINES:
        _ENGINES[url] = SqlRepository(make_engine(url))
    shared = _ENGINES[url]
    _empty(shared)
    yield SqlRepository(shared.engine)


@pytest.fixture
def client(repo: Any, programs: Any) -> Iterator[TestClient]:
    app = create_app(repo, programs, now=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(FHIR_JSON)
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for r in _ENGINES.values():
        r.close()
    _ENGINES.clear()
