"""The in-memory search (pure matcher) and the SQL translation answer random queries identically."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careflow.access.principal import SYSTEM
from careflow.fhir.search_query import parse_search
from careflow.store.memory import MemoryRepository

STATUSES = ["requested", "ready", "completed"]
OWNERS = ["Practitioner/a", "Practitioner/b", "PractitionerRole/a"]
DATES = ["2024", "2024-05", "2024-05-10", "2024-05-10T10:00:00Z", "2024-06-01T12:00:00+02:00", "2023-12-31"]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
FAMILIES = ["Peeters", "Peetersen", "Müller", "Claes", "de Smet"]


@st.composite
def task(draw, i: int) -> dict:
    body: dict = {"resourceType": "Task", "id": f"t{i}", "intent": "order", "status": draw(st.sampled_from(STATUSES))}
    if draw(st.booleans()):
        body["owner"] = {"reference": draw(st.sampled_from(OWNERS))}
    if draw(st.booleans()):
        body["for"] = {"reference": f"Patient/p{draw(st.integers(0, 3))}"}
    if draw(st.booleans()):
        body["restriction"] = {"period": {"end": draw(st.sampled_from(DATES))}}
    if draw(st.booleans()):
        body["priority"] = draw(st.sampled_from(["routine", "urgent"]))
    if draw(st.booleans()):  # the worklist's other filters
        body["requester"] = {"reference": draw(st.sampled_from(OWNERS))}
    if draw(st.booleans()):
        body["businessStatus"] = {"coding": [{"system": "bs", "code": draw(st.sampled_from(["overdue", "escalated"]))}]}
    if draw(st.booleans()):
        body["executionPeriod"] = {k: draw(st.sampled_from(DATES))
                                   for k in draw(st.sampled_from([("start",), ("end",), ("start", "end")]))}
    if draw(st.booleans()):
        body["performerType"] = [{"coding": [{"system": "sct", "code": draw(st.sampled_from(["nurse", "gp"]))}]}]
    if draw(st.booleans()):
        body["partOf"] = [{"reference": f"Task/t{draw(st.integers(0, 3))}"}]
    return body


@st.composite
def patient(draw, i: int) -> dict:
    body: dict = {"resourceType": "Patient", "id": f"p{i}", "gender": draw(st.sampled_from(["male", "female"]))}
    if draw(st.booleans()):
        body["name"] = [{"family": draw(st.sampled_from(FAMILIES))}]
    if draw(st.booleans()):
        body["identifier"] = [{"system": "s", "value": str(draw(st.integers(0, 2)))}]
    if draw(st.booleans()):
        body["birthDate"] = draw(st.sampled_from(["1950", "1950-03", "1962-11-04", "1971"]))
    return body


@st.composite
def world(draw) -> list[dict]:
    return [draw(patient(i)) for i in range(4)] + [draw(task(i)) for i in range(draw(st.integers(0, 8)))]


task_param = st.one_of(
    st.tuples(st.just("status"), st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2).map(",".join)),
    st.tuples(st.just("status:not"), st.sampled_from(STATUSES)),
    st.tuples(st.just("owner"), st.sampled_from(OWNERS + ["a", "b", "http://x/fhir/Practitioner/a"])),
    st.tuples(st.just("owner:missing"), st.sampled_from(["true", "false"])),
    st.tuples(st.just("patient"), st.sampled_from(["p0", "p1", "Patient/p2"])),
    st.tuples(st.just("due-date"), st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES), st.sampled_from(DATES))),
    st.tuples(st.just("priority"), st.sampled_from(["routine", "urgent"])),
    st.tuples(st.just("patient.family"), st.sampled_from(["peet", "muller", "claes"])),
    st.tuples(st.just("patient.identifier"), st.sampled_from(["s|0", "s|1", "2"])),
    st.tuples(st.just("patient.birthdate"), st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES),
                                                      st.sampled_from(["1950", "1962-11", "1971-01-01"]))),
    st.tuples(st.just("_sort"), st.sampled_from(["due-date", "-due-date", "priority,-_id", "status", "-period"])),
    st.tuples(st.just("requester"), st.sampled_from(OWNERS + ["a"])),
    st.tuples(st.just("business-status"), st.sampled_from(["overdue", "bs|escalated", "overdue,escalated"])),
    st.tuples(st.just("business-status:not"), st.sampled_from(["overdue"])),
    st.tuples(st.just("period"), st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES), st.sampled_from(DATES))),
    st.tuples(st.just("performer"), st.sampled_from(["nurse", "sct|gp", "x|nurse"])),
    st.tuples(st.just("part-of"), st.sampled_from(["t0", "Task/t1"])),
    st.tuples(st.just("part-of:missing"), st.sampled_from(["true", "false"])),
)


def outcome(repo, query):
    """What a search answers: ids and total, or the error it raises (both stores must refuse alike)."""
    from careflow.errors import InvalidSearch

    try:
        result = repo.search(query)
    except InvalidSearch as exc:
        return ("refused", str(exc))
    return ([s.id for s in result.matches], result.total)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sql_repo(request):
    from careflow.store.database import make_engine
    from careflow.store.sql import SqlRepository

    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    repo = SqlRepository(make_engine(url))
    yield repo
    repo.close()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=world(), params=st.lists(task_param, min_size=1, max_size=3))
def test_memory_and_sql_agree(sql_repo, resources, params):
    from store_backends import empty_tables

    empty_tables(sql_repo)
    memory = MemoryRepository()
    for repo in (memory, sql_repo):
        with repo.unit_of_work(SYSTEM) as uow:
            for body in resources:
                uow.update(body)
    query = parse_search("Task", params, strict=True)
    assert outcome(sql_repo, query) == outcome(memory, query)


VALUES = [5, 5.4, 5.45, 72, 82.5, 100]
EFFECTIVE = [{"effectiveDateTime": "2024-05-01T08:30:00Z"}, {"effectiveDateTime": "2024-05"},
             {"effectivePeriod": {"start": "2024-05-02", "end": "2024-05-03"}}, {"effectivePeriod": {"start": "2024-04-30"}}]


@st.composite
def observations(draw) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 8))):
        body: dict = {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": draw(st.sampled_from(["a", "b"]))}]}}
        if draw(st.booleans()):
            body["valueQuantity"] = {"value": draw(st.sampled_from(VALUES)), "system": "http://unitsofmeasure.org",
                                     "code": draw(st.sampled_from(["kg", "/min"])), "unit": "u"}
        body.update(draw(st.sampled_from(EFFECTIVE)))
        out.append(body)
    return out


observation_param = st.one_of(
    st.tuples(st.just("value-quantity"), st.builds(lambda p, v, u: f"{p}{v}{u}", st.sampled_from(PREFIXES),
                                                   st.sampled_from(["5", "5.4", "5.40", "72", "80", "100.0"]),
                                                   st.sampled_from(["", "||kg", "|http://unitsofmeasure.org|/min"]))),
    st.tuples(st.just("date"), st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES),
                                         st.sampled_from(["2024-05", "2024-05-01", "2024-05-02T12:00", "2024"]))),
    st.tuples(st.just("code"), st.sampled_from(["a", "http://loinc.org|b", "http://loinc.org|"])),
    st.tuples(st.just("value-quantity:missing"), st.sampled_from(["true", "false"])),
    st.tuples(st.just("_sort"), st.sampled_from(["value-quantity", "-value-quantity", "-date", "date"])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=observations(), params=st.lists(observation_param, min_size=1, max_size=3))
def test_memory_and_sql_agree_on_quantities_and_periods(sql_repo, resources, params):
    from store_backends import empty_tables

    empty_tables(sql_repo)
    memory = MemoryRepository()
    for repo in (memory, sql_repo):
        with repo.unit_of_work(SYSTEM) as uow:
            for body in resources:
                uow.update(body)
    query = parse_search("Observation", params, strict=True)
    assert outcome(sql_repo, query) == outcome(memory, query)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=world(), params=st.lists(st.one_of(
    st.tuples(st.sampled_from(["family", "name", "family:contains", "family:exact"]),
              st.sampled_from(["peet", "PEETERS", "Müller", "muller", "ter", "de s", "de", "smet", "de smet", "Claes"])),
    st.tuples(st.just("birthdate"), st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES),
                                              st.sampled_from(["1950", "1962-11", "1971-01-01", "1962-11-04"]))),
    st.tuples(st.just("identifier"), st.sampled_from(["s|0", "1", "s|", "|2"])),
    st.tuples(st.just("_sort"), st.sampled_from(["family", "-family", "birthdate", "-birthdate,_id"])),
), min_size=1, max_size=2))
def test_memory_and_sql_agree_on_strings(sql_repo, resources, params):
    from store_backends import empty_tables

    empty_tables(sql_repo)
    memory = MemoryRepository()
    for repo in (memory, sql_repo):
        with repo.unit_of_work(SYSTEM) as uow:
            for body in resources:
                uow.update(body)
    query = parse_search("Patient", params, strict=True)
    assert outcome(sql_repo, query) == outcome(memory, query)


def all_pages(repo, rtype, params, count):
    """Every page of a search by following next cursors: (ids per page, totals per page)."""
    from careflow.fhir.search_query import parse_search as parse

    pages, totals, cursor = [], [], None
    while True:
        extra = [("_cursor", cursor)] if cursor else []
        result = repo.search(parse(rtype, [*params, ("_count", str(count)), *extra], strict=True))
        pages.append([s.id for s in result.matches])
        totals.append(result.total)
        cursor = result.next_cursor
        if cursor is None:
            return pages, totals
        assert len(pages) < 50, "paging does not end"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resources=world(), params=st.lists(task_param, min_size=0, max_size=2), count=st.integers(1, 3),
       total=st.sampled_from([None, "none", "accurate", "estimate"]))
def test_keyset_pages_cover_every_match_once_in_order(sql_repo, resources, params, count, total):
    """Following next cursors returns the one-page answer, each match once and in order, on both
    engines alike, whatever the sort (missing values, descending keys, ties) and _total."""
    from store_backends import empty_tables

    empty_tables(sql_repo)
    memory = MemoryRepository()
    for repo in (memory, sql_repo):
        with repo.unit_of_work(SYSTEM) as uow:
            for body in resources:
                uow.update(body)
    params = [*params, *([("_total", total)] if total else [])]
    whole = outcome(memory, parse_search("Task", [*params, ("_count", "1000")], strict=True))
    if whole[0] == "refused":
        return
    paged = {}
    for name, repo in (("memory", memory), ("sql", sql_repo)):
        pages, totals = all_pages(repo, "Task", params, count)
        assert [i for page in pages for i in page] == whole[0], name
        assert all(len(page) == count for page in pages[:-1]) and (len(pages) == 1 or pages[-1])
        expected_first = None if total == "none" else len(whole[0])
        assert totals[0] == expected_first
        assert all(t == (len(whole[0]) if total in ("accurate", "estimate") else None) for t in totals[1:])
        paged[name] = pages
    assert paged["memory"] == paged["sql"]
