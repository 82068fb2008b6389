"""Contract: uniqueness and version checks hold under concurrent writers (threads), on every backend.

The database decides, not a search followed by an insert: these fail if a check-then-write race exists.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from condition_spellings import query_of, spelling

from careflow.access.principal import SYSTEM
from careflow.errors import VersionConflict
from careflow.fhir.search_query import parse_search


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released at the same moment; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each writer got
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_identical_conditional_creates_make_one_resource(repo):
    query = parse_search("Patient", [("identifier", "https://ssin|85073100123")], strict=True)
    body = {"resourceType": "Patient", "identifier": [{"system": "https://ssin", "value": "85073100123"}]}

    def create(_: int):
        with repo.unit_of_work(SYSTEM) as uow:
            return uow.create(body, if_none_exist=query)

    results = run_together(20, create)
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert Counter(created for _, created in results) == Counter({True: 1, False: 19})
    assert len({stored.id for stored, _ in results}) == 1
    assert repo.search(parse_search("Patient", [])).total == 1


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_conditional_creates_spelled_differently_make_one_resource(repo, round_):
    """21 writers, 21 spellings of one condition (order, %7C, escaping, case, repeated values): one
    Patient, because the claimed key is the canonical form of the parsed criteria."""
    spellings = [spelling(round_ * 100 + i) for i in range(21)]
    assert len(set(spellings)) > 15  # they really are written differently
    body = {"resourceType": "Patient", "gender": "male", "name": [{"family": "Peeters", "given": ["Jan", "Piet"]}],
            "identifier": [{"system": "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin",
                            "value": "85073100123"}]}

    def create(i: int):
        with repo.unit_of_work(SYSTEM) as uow:
            return uow.create(body, if_none_exist=query_of(spellings[i]))

    results = run_together(21, create)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert Counter(created for _, created in results) == Counter({True: 1, False: 20})
    assert len({stored.id for stored, _ in results}) == 1
    assert repo.search(parse_search("Patient", [])).total == 1


def test_concurrent_if_match_updates_exactly_one_wins(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order"})

    def update(i: int):
        with repo.unit_of_work(SYSTEM) as uow:
            return uow.update({"resourceType": "Task", "id": "t1", "status": "accepted", "intent": "order",
                               "note": [{"text": f"writer {i}"}]}, if_match=1)

    results = run_together(50, update)
    wins = [r for r in results if not isinstance(r, Exception)]
    conflicts = [r for r in results if isinstance(r, VersionConflict)]
    assert len(wins) == 1 and len(conflicts) == 49, Counter(type(r).__name__ for r in results)
    current = repo.read("Task", "t1")
    assert current.version == 2 and current.resource["note"] == wins[0][0].resource["note"]
    assert repo.history("Task", "t1")[0] == 2


def test_concurrent_puts_of_a_new_id_serialise(repo):
    def put(i: int):
        with repo.unit_of_work(SYSTEM) as uow:
            return uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
                               "description": {"text": str(i)}})

    results = run_together(12, put)
    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(s.version for s, _ in results) == list(range(1, 13))
    assert sum(created for _, created in results) == 1
    assert repo.read("Goal", "g1").version == 12


def test_concurrent_create_if_absent_creates_once(repo):
    def plan(_: int):
        with repo.unit_of_work(SYSTEM) as uow:
            return uow.create_if_absent({"resourceType": "CarePlan", "id": "cp-det", "status": "active",
                                         "intent": "plan", "subject": {"reference": "Patient/p"}})

    results = run_together(16, plan)
    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(created for _, created in results) == 1
    assert {s.version for s, _ in results} == {1}


def test_concurrent_outbox_consumers_never_share_an_event(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        for i in range(60):
            uow.outbox_add("observation.created", {"n": i})

    def consume(_: int):
        got = []
        while batch := repo.outbox_claim(7):
            got.extend(e.payload["n"] for e in batch)
            repo.outbox_done([e.id for e in batch])
        return got

    results = run_together(4, consume)
    assert not [r for r in results if isinstance(r, Exception)]
    seen = [n for r in results for n in r]
    assert sorted(seen) == list(range(60))


def test_a_reading_unit_of_work_does_not_block_writers(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active"})
    done = threading.Event()

    def writer():
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "completed"})
        done.set()

    with repo.unit_of_work(SYSTEM) as reading:
        assert reading.read("Goal", "g1").version == 1
        t = threading.Thread(target=writer)
        t.start()
        assert done.wait(10), "a read-only unit of work held the write lock"
        # the first write after reads works against the latest state
        stored, _ = reading.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "cancelled"})
        assert stored.version == 3
    t.join()
    assert repo.read("Goal", "g1").resource["lifecycleStatus"] == "cancelled"


def test_if_match_after_a_read_still_detects_a_concurrent_write(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active"})
    with pytest.raises(VersionConflict):
        with repo.unit_of_work(SYSTEM) as uow:
            seen = uow.read("Goal", "g1")
            t = threading.Thread(target=lambda: _bump(repo))
            t.start()
            t.join(10)
            uow.update({**seen.resource, "lifecycleStatus": "completed"}, if_match=seen.version)
    assert repo.read("Goal", "g1").version == 2


def _bump(repo) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "on-hold"})
