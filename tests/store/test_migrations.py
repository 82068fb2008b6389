"""The Alembic migrations and the table models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from careflow.access.principal import SYSTEM
from careflow.errors import CareflowError
from careflow.store.database import open_repository, resolve_url, upgrade
from careflow.store.tables import metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_models_match_migrations(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    repo = open_repository(url)  # migrating an up-to-date schema is a no-op
    try:
        with repo.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [d for d in compare_metadata(ctx, metadata) if not _ignorable(d)]
            assert diff == []
            assert ctx.get_current_revision() == _head()
    finally:
        repo.close()


def _head() -> str:
    """The newest revision in the migrations folder (the chain is linear)."""
    from pathlib import Path

    import careflow.store

    versions = Path(careflow.store.__file__).parent / "migrations" / "versions"
    return max(p.name.split("_", 1)[0] for p in versions.glob("[0-9]*_*.py"))


def _ignorable(diff) -> bool:  # type: ignore[no-untyped-def]
    # SQLite reports no collation, so the PG-only "C" collation variant shows as a type change there
    return isinstance(diff, list) and all(d[0] == "modify_type" for d in diff)


def test_upgrade_creates_every_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'careflow.db'}"
    upgrade(url)
    repo = open_repository(url)
    try:
        assert set(inspect(repo.engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
    finally:
        repo.close()


def test_resolve_url(monkeypatch, tmp_path):
    monkeypatch.delenv("CAREFLOW_DATABASE_URL", raising=False)
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_url().startswith("sqlite:///") and resolve_url().endswith("careflow.db")
    monkeypatch.setenv("CAREFLOW_DATABASE_URL", "postgresql://u@h/db")
    assert resolve_url() == "postgresql+psycopg://u@h/db"
    with pytest.raises(CareflowError):
        resolve_url("mysql://u@h/db")
    with pytest.raises(CareflowError):
        resolve_url("not a url")


def test_unreachable_database_is_a_transient_store_error():
    from careflow.errors import TransientStoreError
    from careflow.store.database import make_engine
    from careflow.store.sql import SqlRepository

    repo = SqlRepository(make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2"))
    try:
        with pytest.raises(TransientStoreError) as info:
            repo.read("Patient", "p1")
        assert info.value.http_status == 503
        with pytest.raises(TransientStoreError):
            with repo.unit_of_work(SYSTEM) as uow:
                uow.create({"resourceType": "Patient"})
    finally:
        repo.close()


def test_unmigrated_sqlite_is_not_reported_as_transient(tmp_path):
    from careflow.errors import TransientStoreError
    from careflow.store.database import make_engine
    from careflow.store.sql import SqlRepository

    repo = SqlRepository(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        with pytest.raises(Exception) as info:
            repo.read("Patient", "p1")
        assert not isinstance(info.value, TransientStoreError)
    finally:
        repo.close()


def test_opening_an_unreachable_database_is_one_clear_error(tmp_path):
    from careflow.errors import TransientStoreError

    with pytest.raises(TransientStoreError) as info:
        open_repository("postgresql+psycopg://postgres:secret@127.0.0.1:9/none?connect_timeout=2")
    assert "127.0.0.1:9" in str(info.value) and "secret" not in str(info.value)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(CareflowError):
        open_repository(f"sqlite:///{blocked / 'sub' / 'careflow.db'}")
