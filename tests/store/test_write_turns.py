"""Concurrent writers take turns in arrival order (SQLite's one write lock, issue #13), and every
concurrent transaction bundle commits with the right result on every backend."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from careflow.access.principal import SYSTEM
from careflow.api.headers import Prefer
from careflow.api.interactions import Context
from careflow.api.transactions import process_bundle
from careflow.fhir.search_query import parse_search
from careflow.store.database import write_turns
from careflow.store.write_turns import WriteTurns


def _wait_until(predicate, what: str) -> None:
    event = threading.Event()
    for _ in range(2000):  # up to ~20 s on a busy machine; no timing is asserted
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError(f"never happened: {what}")


def test_turns_are_given_in_the_order_they_were_asked_for():
    turns = WriteTurns(timeout=60)
    order: list[int] = []
    first = object()
    assert turns.acquire(first)
    holders = [object() for _ in range(5)]
    threads = []
    for i, holder in enumerate(holders):
        def take(i: int = i, holder: object = holder) -> None:
            assert turns.acquire(holder)
            order.append(i)
            turns.release(holder)

        threads.append(threading.Thread(target=take))
        threads[-1].start()
        _wait_until(lambda n=i + 1: turns.waiting == n, f"{i + 1} writers queued")
    turns.release(first)
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3, 4]
    assert turns.given == 6 and turns.waiting == 0


def test_a_turn_that_never_comes_is_given_up_and_the_queue_goes_on():
    turns = WriteTurns(timeout=0.05)
    stuck, late, after = object(), object(), object()
    assert turns.acquire(stuck)
    assert turns.acquire(late) is False  # the busy handler decides then, as without the queue
    assert turns.waiting == 0 and turns.timed_out == 1
    turns.release(late)  # not the holder: nothing happens
    turns.release(stuck)
    assert turns.acquire(after)


def test_releasing_twice_or_without_a_turn_changes_nothing():
    turns = WriteTurns(timeout=1)
    a, b = object(), object()
    assert turns.acquire(a) and turns.acquire(a)  # the holder asking again keeps its turn
    turns.release(b)
    turns.release(a)
    turns.release(a)
    assert turns.acquire(b)


def _bundle(writer: int, n: int, patients: int) -> tuple[dict, list[str]]:
    """A transaction of ``patients`` patients with ``n`` Tasks each, linked by urn:uuid."""
    entries = []
    names = []
    for p in range(patients):
        pat = f"urn:uuid:{uuid.uuid4()}"
        family = f"Writer{writer}x{p}"
        names.append(family)
        entries.append({"fullUrl": pat, "request": {"method": "POST", "url": "Patient"},
                        "resource": {"resourceType": "Patient", "name": [{"family": family}]}})
        for t in range(n):
            entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Task"},
                            "resource": {"resourceType": "Task", "status": "requested", "intent": "order",
                                         "description": f"{family} task {t}", "for": {"reference": pat}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}, names


def test_concurrent_transaction_bundles_all_commit_with_their_own_results(repo, backend):
    writers, rounds, patients, tasks = 4, 3, 5, 9
    ctx = Context(base="http://test/fhir")
    prefer = Prefer(return_="minimal")
    barrier = threading.Barrier(writers)

    def ingest(w: int) -> list[tuple[list[str], dict]]:
        barrier.wait()
        out = []
        for r in range(rounds):
            bundle, names = _bundle(w * 10 + r, tasks, patients)
            out.append((names, process_bundle(repo, bundle, ctx, prefer, SYSTEM)))
        return out

    turns = write_turns(repo.engine) if backend == "sqlite" else None
    given_before = turns.given if turns is not None else 0
    with ThreadPoolExecutor(writers) as pool:
        results = [item for chunk in pool.map(ingest, range(writers)) for item in chunk]

    assert len(results) == writers * rounds
    for names, response in results:
        assert response["type"] == "transaction-response"
        statuses = {e["response"]["status"] for e in response["entry"]}
        assert statuses == {"201 Created"}
        assert len(response["entry"]) == patients * (1 + tasks)
        # each bundle's Tasks point at the Patient of the same bundle, under its server id
        patient_ids = [e["response"]["location"].split("/")[1] for e in response["entry"][::1 + tasks]]
        for family, pid in zip(names, patient_ids):
            found = repo.search(parse_search("Patient", [("family", family)]))
            assert [s.id for s in found.matches] == [pid]
            mine = repo.search(parse_search("Task", [("patient", f"Patient/{pid}"), ("_count", "100")]))
            assert mine.total == tasks
            assert {s.resource["description"] for s in mine.matches} == {f"{family} task {t}" for t in range(tasks)}
    assert repo.search(parse_search("Patient", [("_summary", "count")])).total == writers * rounds * patients
    assert repo.search(parse_search("Task", [("_summary", "count")])).total == writers * rounds * patients * tasks
    if turns is not None:
        assert turns.given - given_before >= writers * rounds  # every bundle went through the queue
        assert turns.waiting == 0 and turns.timed_out == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_failed_write_hands_the_turn_on(repo, backend):
    turns = write_turns(repo.engine)
    assert turns is not None
    with pytest.raises(RuntimeError):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create({"resourceType": "Patient", "name": [{"family": "Rolled"}]})
            raise RuntimeError("the caller fails half-way")
    done = threading.Event()

    def write() -> None:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create({"resourceType": "Patient", "name": [{"family": "Next"}]})
        done.set()

    t = threading.Thread(target=write)
    t.start()
    t.join(60)
    assert done.is_set() and turns.timed_out == 0
    assert repo.search(parse_search("Patient", [("family", "Rolled")])).total == 0
    assert repo.search(parse_search("Patient", [("family", "Next")])).total == 1
