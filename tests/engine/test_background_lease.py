"""The store's lease: one holder across every process sharing the store, handed over when it goes.

A second repository on the same store stands for a second worker process (its own engine, so its
own PostgreSQL sessions; its own file descriptor for SQLite's lock file)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from careflow.engine import subscriptions
from careflow.engine.background import LeaderRunner
from careflow.store.leader import BACKGROUND, lock_key


@pytest.fixture
def other(repo: Any) -> Iterator[Any]:
    """Another process's repository on the same store (the memory twin is one process: itself)."""
    from careflow.store.database import make_engine
    from careflow.store.sql import SqlRepository

    if not hasattr(repo, "engine"):
        yield repo
        return
    twin = SqlRepository(make_engine(repo.engine.url.render_as_string(hide_password=False)))
    try:
        yield twin
    finally:
        twin.close()


def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_one_holder_at_a_time_and_the_next_one_after_release(repo: Any, other: Any) -> None:
    first = repo.try_lead("lease-a")
    assert first is not None and first.alive()
    assert other.try_lead("lease-a") is None
    second_name = other.try_lead("lease-b")  # another name is another lease
    assert second_name is not None
    first.release()
    assert not first.alive()
    taken = other.try_lead("lease-a")
    assert taken is not None and taken.alive()
    assert repo.try_lead("lease-a") is None
    taken.release()
    second_name.release()


def test_lock_keys_differ_per_schema_and_name() -> None:
    assert lock_key(BACKGROUND, "public") == lock_key(BACKGROUND, "public")
    assert len({lock_key(BACKGROUND, "public"), lock_key(BACKGROUND, "cf_a"), lock_key("x", "public")}) == 3
    assert -(2**63) <= lock_key(BACKGROUND, "public") < 2**63


class Counting:
    """A background service that records whether it runs."""

    running: list["Counting"] = []
    lock = threading.Lock()

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def start(self) -> "Counting":
        with Counting.lock:
            Counting.running.append(self)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with Counting.lock:
            Counting.running.remove(self)


def test_only_the_lease_holder_runs_the_background_and_another_takes_over(repo: Any, other: Any) -> None:
    Counting.running = []
    a = LeaderRunner(repo, [lambda: Counting("a")], interval=0.05).start()
    b = LeaderRunner(other, [lambda: Counting("b")], interval=0.05).start()
    try:
        _until(lambda: a.leading or b.leading, "a leader")
        time.sleep(0.3)  # several more rounds of both asking
        assert [a.leading, b.leading].count(True) == 1
        leader, follower = (a, b) if a.leading else (b, a)
        assert [s.owner for s in Counting.running] == (["a"] if leader is a else ["b"])
        leader.stop()
        _until(lambda: follower.leading, "the other runner to take over")
        assert [s.owner for s in Counting.running] == (["b"] if follower is b else ["a"])
    finally:
        a.stop()
        b.stop()
    assert Counting.running == []


def test_a_worker_round_of_subscriptions_is_skipped_while_a_server_delivers(repo: Any, other: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[datetime] = []
    monkeypatch.setattr(subscriptions.Notifier, "run_once",
                        lambda self, now, limit=200: rounds.append(now) or subscriptions.Round())
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    held = other.try_lead(BACKGROUND)
    assert held is not None
    subscriptions.process_subscriptions(repo, now)
    assert rounds == []
    held.release()
    subscriptions.process_subscriptions(repo, now)
    assert rounds == [now]
    back = repo.try_lead(BACKGROUND)
    assert back is not None  # the round gave the lease back
    back.release()


def test_a_lease_whose_connection_died_is_not_held_any_more(repo: Any, other: Any) -> None:
    """PostgreSQL drops a session's advisory locks with the session: the holder notices (and its
    runner stops the loops), and another process gets the lease."""
    if getattr(getattr(repo, "engine", None), "dialect", None) is None or repo.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL session's lock")
    lease = repo.try_lead("lease-c")
    assert lease is not None and lease.alive()
    pid = lease._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with other.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        conn.commit()
    assert not lease.alive()
    taken = other.try_lead("lease-c")
    assert taken is not None
    taken.release()
    lease.release()  # on a dead connection: nothing to do, and no error
