"""Engine tests run against the in-memory twin and SQLite (PostgreSQL too when
CAREFLOW_TEST_DATABASE_URL is set): the engine must behave the same on every store."""

from __future__ import annotations

import os
import uuid
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
    from sqlalchemy import text

    from careflow.store.database import make_engine, resolve_url, upgrade
    from careflow.store.sql import SqlRepository

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    base = resolve_url(base)
    schema = f"cf_engine_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    try:
        yield repo
    finally:
        repo.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "memory":
        from careflow.store.memory import MemoryRepository

        yield MemoryRepository()
    elif request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres()


@pytest.fixture(scope="session")
def heart_failure():
    """The real heart-failure programme (the test fixture when the programme file is absent)."""
    from careflow.programs.loader import load_program

    root = Path(__file__).resolve().parents[2]
    real = root / "care_programs" / "heart-failure.yaml"
    return load_program(real if real.exists() else root / "tests" / "programs" / "fixtures" / "mini-hf.yaml")


@pytest.fixture(scope="session")
def copd():
    from careflow.programs.loader import load_program

    path = Path(__file__).resolve().parents[2] / "care_programs" / "copd.yaml"
    if not path.exists():
        pytest.skip("care_programs/copd.yaml is not there yet")
    return load_program(path)
