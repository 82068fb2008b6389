"""The audit log itself: every port call is recorded, the MAC chain finds any altered, removed,
inserted or moved entry (``careflow audit verify``), PostgreSQL refuses to change audit rows, nothing
queued is lost on close, and recording a read never waits for the write lock (SQLite)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from store_backends import isolated_repository

from careflow.access.principal import SYSTEM
from careflow.audit.chain import entry_mac
from careflow.fhir.search_query import parse_search
from careflow.store.sql import SqlRepository


def _fill(repo: Any, n: int = 6) -> list[str]:
    ids = []
    with repo.unit_of_work(SYSTEM) as uow:
        for i in range(n):
            ids.append(uow.create({"resourceType": "Patient", "gender": "female", "id": str(i)})[0].id)
    return ids


def _rows(repo: Any) -> list[tuple[Any, ...]]:
    with repo.engine.connect() as conn:
        return list(conn.execute(text("SELECT seq, content, prev_mac, mac FROM audit_event ORDER BY seq")))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def own_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with isolated_repository(request.param, tmp_path) as repo:
        yield repo


def test_each_port_call_outside_an_interaction_is_an_event_of_its_own(own_repo: Any) -> None:
    ids = _fill(own_repo, 3)
    own_repo.read("Patient", ids[0])
    own_repo.search(parse_search("Patient", [("gender", "female")]))
    with own_repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Patient", ids[1])
        uow.history("Patient", ids[1])
    own_repo.audit.flush()
    report = own_repo.audit.verify()
    assert report.ok and report.entries == 3 + 4
    from careflow.audit.query import AuditQuery

    total, events = own_repo.audit.search(AuditQuery(patients=[f"Patient/{ids[1]}"]))
    import orjson

    codes = [orjson.loads(e)["subtype"][0]["code"] for e in events]
    assert codes == ["history-instance", "delete", "search-type", "create"]  # newest first


def _tamper(repo: SqlRepository, *statements: str) -> None:
    with repo.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # what a superuser could do: switch the triggers off
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for s in statements:
            conn.execute(text(s))


@pytest.fixture(params=["sqlite", "postgres"])
def sql_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with isolated_repository(request.param, tmp_path) as repo:
        _fill(repo, 8)
        repo.audit.flush()
        assert repo.audit.verify().ok
        yield repo


def test_an_altered_entry_is_found(sql_repo: SqlRepository) -> None:
    _tamper(sql_repo, "UPDATE audit_event SET outcome = '4', content = content || content WHERE seq = 3")
    assert sql_repo.audit is not None
    assert sql_repo.audit.verify().problems == [
        "entry 3 is not authentic: altered, or written without the audit key (inserted)"]


def test_altered_search_columns_are_found(sql_repo: SqlRepository) -> None:
    _tamper(sql_repo, "UPDATE audit_event SET agent = 'PractitionerRole/someone-else' WHERE seq = 2")
    assert sql_repo.audit is not None
    assert sql_repo.audit.verify().problems == [
        "entry 2: its search columns were altered (they differ from its authentic content)"]


def test_a_removed_entry_is_found(sql_repo: SqlRepository) -> None:
    _tamper(sql_repo, "DELETE FROM audit_event WHERE seq IN (4, 5)")
    assert sql_repo.audit is not None
    assert sql_repo.audit.verify().problems == ["entries 4-5 are missing (removed)"]


def test_removed_newest_entries_are_found_against_the_head(sql_repo: SqlRepository) -> None:
    assert sql_repo.audit is not None
    report = sql_repo.audit.verify()
    _tamper(sql_repo, f"DELETE FROM audit_event WHERE seq = {report.head_seq}")
    problems = sql_repo.audit.verify(expect_head=(report.head_seq, report.head_mac)).problems
    assert len(problems) == 1 and "newest entries were removed" in problems[0]


def test_an_inserted_entry_is_found(sql_repo: SqlRepository) -> None:
    rows = _rows(sql_repo)
    seq, content, prev, mac = rows[2]
    forged = bytes(content).replace(b'"outcome":"0"', b'"outcome":"4"')
    fake_mac = entry_mac(b"not the key" * 3, 99, forged, bytes(mac))
    # make room after entry 3 (renumber the later ones) and insert a forged entry there
    statements = [f"UPDATE audit_event SET seq = seq + 1000 WHERE seq > {seq}",
                  "UPDATE audit_event SET seq = seq - 999 WHERE seq > 1000"]
    _tamper(sql_repo, *statements)
    with sql_repo.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_event (seq, id, recorded, action, subtype, outcome, agent, content, "
                          "prev_mac, mac) SELECT :seq, 'forged', recorded, action, subtype, '4', agent, :content, "
                          ":prev, :mac FROM audit_event WHERE seq = :src"),
                     {"seq": seq + 1, "content": forged, "prev": bytes(mac), "mac": fake_mac, "src": seq})
    assert sql_repo.audit is not None
    assert sql_repo.audit.verify().problems == [
        f"entry {seq + 1} is not authentic: altered, or written without the audit key (inserted)",
        f"entries {seq + 2}-{len(rows) + 1} hold entries {seq + 1}-{len(rows)} (renumbered by +1: an entry was "
        "inserted or removed before them)",
    ]


def test_swapped_entries_are_found(sql_repo: SqlRepository) -> None:
    _tamper(sql_repo, "UPDATE audit_event SET seq = 100 WHERE seq = 4", "UPDATE audit_event SET seq = 4 WHERE seq = 6",
            "UPDATE audit_event SET seq = 6 WHERE seq = 100")
    assert sql_repo.audit is not None
    assert sql_repo.audit.verify().problems == [
        "entry 4 holds entry 6 (moved: entries were swapped or reordered)",
        "entry 6 holds entry 4 (moved: entries were swapped or reordered)",
    ]


def test_careflow_audit_verify_reports_each_problem_and_exits_1(sql_repo: SqlRepository,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from careflow.cli import main

    url = sql_repo.engine.url.render_as_string(hide_password=False)
    assert main(["audit", "verify", "--db", url]) == 0
    assert "8 entries verified" in capsys.readouterr().out
    _tamper(sql_repo, "DELETE FROM audit_event WHERE seq = 2",
            "UPDATE audit_event SET content = content || ' ' WHERE seq = 5")
    assert main(["audit", "verify", "--db", url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["entry 2 is missing (removed)",
                   "entry 5 is not authentic: altered, or written without the audit key (inserted)"]


def test_postgres_refuses_to_update_or_delete_audit_rows(tmp_path: Path) -> None:
    with isolated_repository("postgres", tmp_path) as repo:
        _fill(repo, 2)
        assert repo.audit is not None
        repo.audit.flush()
        for statement in ("UPDATE audit_event SET outcome = '4'", "DELETE FROM audit_event",
                          "TRUNCATE audit_event", "UPDATE audit_entity SET ref = 'Patient/x'", "DELETE FROM audit_entity"):
            with pytest.raises(Exception, match="append-only"):
                with repo.engine.begin() as conn:
                    conn.execute(text(statement))
        assert repo.audit.verify().ok and repo.audit.verify().entries == 2


def test_nothing_queued_is_lost_on_close(tmp_path: Path) -> None:
    with isolated_repository("sqlite", tmp_path) as repo:
        url = repo.engine.url
        for _ in range(50):
            repo.search(parse_search("Patient", []))
    again = SqlRepository(__import__("careflow.store.database", fromlist=["make_engine"]).make_engine(str(url)))
    try:
        assert again.audit is not None
        report = again.audit.verify()
        assert report.ok and report.entries == 50
    finally:
        again.close()


def test_recording_a_read_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock: reads go on and are recorded once it is free."""
    with isolated_repository("sqlite", tmp_path) as repo:
        ids = _fill(repo, 1)
        assert repo.audit is not None
        repo.audit.flush()
        blocker = sqlite3.connect(str(repo.engine.url.database), isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            for _ in range(20):
                repo.read("Patient", ids[0])
            assert time.monotonic() - started < 2.0
        finally:
            threading.Timer(0.5, blocker.rollback).start()
        time.sleep(0.7)
        blocker.close()
        repo.audit.flush()
        assert repo.audit.verify().entries == 1 + 20
