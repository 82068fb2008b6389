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
from careflow.auth.local import LocalIssuer
from careflow.auth.tokens import TokenVerifier
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
    # keys are cached per repository; the audit trail is append-only (PostgreSQL refuses to empty it)
    names = [t.name for t in metadata.sorted_tables if t.name != "data_key" and not t.name.startswith("audit_")]
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


@pytest.fixture(scope="session")
def test_issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    """A local issuer with its own key file: tokens for the tests, trusted by :func:`verifier`."""
    return LocalIssuer(tmp_path_factory.mktemp("issuer") / "keys.json")


@pytest.fixture(scope="session")
def verifier(test_issuer: LocalIssuer) -> TokenVerifier:
    return TokenVerifier([test_issuer.trusted()])


@pytest.fixture(scope="session")
def system_headers(test_issuer: LocalIssuer) -> dict[str, str]:
    """``Authorization`` for a system client with ``system/*.cruds``: every test that is not about
    access control calls the API as that."""
    token = test_issuer.mint({"sub": "tests", "scope": "system/*.cruds"}, minutes=600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served_by_local_issuer(monkeypatch: pytest.MonkeyPatch, test_issuer: LocalIssuer,
                           system_headers: dict[str, str]) -> dict[str, str]:
    """Settings under which ``build_app``/``careflow serve`` trust :func:`test_issuer`; returns the
    system ``Authorization`` header."""
    monkeypatch.setenv("CAREFLOW_AUTH_LOCAL_KEYS", str(test_issuer.path))
    monkeypatch.setenv("CAREFLOW_AUTH_LOCAL_ISSUER", "1")
    return system_headers


@pytest.fixture
def client(repo: Any, programs: Any, verifier: TokenVerifier, system_headers: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(repo, programs, now=lambda: NOW, auth=verifier)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(FHIR_JSON)
        c.headers.update(system_headers)
        yield c


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for r in _ENGINES.values():
        r.close()
    _ENGINES.clear()
