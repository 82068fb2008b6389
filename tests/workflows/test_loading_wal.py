"""Bulk loads keep SQLite's WAL small: checkpointed between batches, emptied at the end and at close
(issue #13: a region load left a 1.28 GB WAL next to the database, still there after exit)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from careflow.region.generate import generate_region
from careflow.store.database import SQLITE_JOURNAL_SIZE_LIMIT, open_repository
from careflow.store.memory import MemoryRepository
from workflows import loading


def _wal(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_bulk_load_checkpoints_between_batches_and_leaves_an_empty_wal(tmp_path, monkeypatch):
    db = tmp_path / "bulk.db"
    repo = open_repository(f"sqlite:///{db}")
    calls: list[int] = []
    real = repo.checkpoint

    def counted() -> None:
        calls.append(_wal(db))
        real()

    monkeypatch.setattr(repo, "checkpoint", counted)
    monkeypatch.setattr(loading, "CHECKPOINT_EVERY", 2)
    reader = sqlite3.connect(db)  # a reader that comes and goes, as the API's searches do
    try:
        resources = list(generate_region(120, seed=3).resources())
        counts = loading.load_resources(repo, resources, batch=50)
        assert counts.created == len(resources) > 300
        batches = -(-len(resources) // 50)
        assert len(calls) == batches // 2 + 1  # every second batch, and once at the end
        assert max(calls) > 0  # there was something to fold in each time
        assert _wal(db) == 0  # TRUNCATE: nothing left in the WAL after the load
        assert reader.execute("SELECT count(*) FROM resource").fetchone()[0] == len(resources)
    finally:
        reader.close()
        repo.close()


def test_closing_the_store_empties_the_wal(tmp_path):
    db = tmp_path / "close.db"
    repo = open_repository(f"sqlite:///{db}")
    loading.load_resources(repo, generate_region(60, seed=5).resources(), batch=10_000)
    from careflow.access.principal import SYSTEM

    with repo.unit_of_work(SYSTEM) as uow:  # work after the load's own checkpoint
        uow.create({"resourceType": "Patient", "name": [{"family": "Later"}]})
    assert _wal(db) > 0
    repo.close()
    assert _wal(db) == 0


def test_every_connection_caps_the_emptied_wal_file(tmp_path):
    repo = open_repository(f"sqlite:///{tmp_path / 'limit.db'}")
    try:
        with repo.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == SQLITE_JOURNAL_SIZE_LIMIT
    finally:
        repo.close()


def test_the_memory_twin_has_nothing_to_checkpoint():
    repo = MemoryRepository()
    loading.load_resources(repo, generate_region(20, seed=2).resources())
    repo.checkpoint()
