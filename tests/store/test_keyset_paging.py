"""Keyset paging (``_cursor``) while the store changes between pages, on every backend."""

from __future__ import annotations

import pytest

from careflow.access.principal import SYSTEM
from careflow.errors import InvalidSearch
from careflow.fhir.search_query import parse_search


def put(repo, *tasks):
    with repo.unit_of_work(SYSTEM) as uow:
        for body in tasks:
            uow.update(body)


def task(tid, due=None, owner="PractitionerRole/a", status="requested"):
    body = {"resourceType": "Task", "id": tid, "intent": "order", "status": status, "owner": {"reference": owner}}
    if due:
        body["restriction"] = {"period": {"end": due}}
    return body


def page(repo, params, cursor=None):
    extra = [("_cursor", cursor)] if cursor else []
    return repo.search(parse_search("Task", [*params, ("_count", "3"), *extra], strict=True))


@pytest.mark.parametrize("params", [
    [("owner", "PractitionerRole/a"), ("status", "requested")],  # creation order, driven by the owner index
    [("owner", "PractitionerRole/a"), ("_sort", "due-date")],
    [("status", "requested"), ("_sort", "-due-date")],
])
def test_additions_between_pages_neither_repeat_nor_skip(repo, params):
    put(repo, *[task(f"t{i}", due=f"2026-01-{10 + i:02d}") for i in range(7)], task("other", owner="PractitionerRole/b"))
    first = page(repo, params)
    seen = [s.id for s in first.matches]
    assert len(seen) == 3 and first.next_cursor
    # between pages: one that sorts before the cursor, one after it, and an unseen one is edited
    put(repo, task("early", due="2026-01-01"), task("late", due="2026-01-30"), task("t6", due="2026-01-17"))
    cursor = first.next_cursor
    while cursor:
        result = page(repo, params, cursor)
        seen += [s.id for s in result.matches]
        cursor = result.next_cursor
    originals = [f"t{i}" for i in range(7)]
    assert sorted(i for i in seen if i in originals) == sorted(originals)  # every match there before, once
    assert len(seen) == len(set(seen))
    # "early" sorts before the cursor by due date, after it in creation order and by descending due date
    assert ("early" in seen) == (params[-1] != ("_sort", "due-date"))
    assert ("late" in seen) == (params[-1] != ("_sort", "-due-date"))  # ... and "late" the other way round
    assert ("other" in seen) == (params[0][0] == "status")  # another owner's Task matches only there


def test_a_cursor_of_a_resource_gone_or_hidden_is_refused(repo):
    put(repo, *[task(f"t{i}") for i in range(5)])
    first = page(repo, [("owner", "PractitionerRole/a")])
    with repo.unit_of_work(SYSTEM) as uow:
        uow.expunge("Task", first.matches[-1].id)
    with pytest.raises(InvalidSearch):
        page(repo, [("owner", "PractitionerRole/a")], first.next_cursor)


def test_a_deleted_last_match_still_continues(repo):
    put(repo, *[task(f"t{i}") for i in range(5)])
    first = page(repo, [("owner", "PractitionerRole/a")])
    with repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Task", first.matches[-1].id)
    rest = page(repo, [("owner", "PractitionerRole/a")], first.next_cursor)
    assert [s.id for s in rest.matches] == ["t3", "t4"] and rest.next_cursor is None
