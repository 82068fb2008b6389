"""Contract: every supported search feature, on every backend, against the same small network."""

from __future__ import annotations

import time

import pytest
from search_data import COPD, HF, LOINC, NIHDI, SCT, SSIN, TASK_SID, UCUM, load
from store_backends import BACKENDS, isolated_repository

from careflow.access.principal import SYSTEM
from careflow.fhir.search_query import parse_search


@pytest.fixture
def net(repo):
    load(repo)
    return repo


@pytest.fixture(scope="module", params=BACKENDS)
def shared_net(request, tmp_path_factory):
    """The network loaded once per backend for the read-only cases below."""
    with isolated_repository(request.param, tmp_path_factory.mktemp("net")) as repo:
        load(repo)
        yield repo


def ids(repo, rtype, params, **kw):
    result = repo.search(parse_search(rtype, params, strict=True))
    return sorted(s.id for s in result.matches)


CASES = [
    # token
    ("Patient", [("identifier", f"{SSIN}|111")], ["pat-a"]),
    ("Patient", [("identifier", "111")], ["pat-a"]),
    ("Patient", [("identifier", f"{SSIN}|")], ["pat-a", "pat-b"]),
    ("Patient", [("identifier", "|111")], []),
    ("Patient", [("gender", "male,female")], ["pat-a", "pat-b"]),
    ("Patient", [("gender:not", "male")], ["pat-b", "pat-c"]),
    ("Patient", [("gender:missing", "true")], []),
    ("Patient", [("identifier:missing", "true")], ["pat-c"]),
    ("Patient", [("identifier:missing", "false")], ["pat-a", "pat-b"]),
    ("Patient", [("_id", "pat-a,pat-c")], ["pat-a", "pat-c"]),
    # string (a patient's name is blinded: whole name parts or words, case- and accent-folded)
    ("Patient", [("name", "peeters")], ["pat-a"]),
    ("Patient", [("name", "peet")], []),
    ("Patient", [("name", "jan,anna")], ["pat-a", "pat-b"]),
    ("Patient", [("family", "PEETERS")], ["pat-a"]),
    ("Patient", [("family", "peetersen")], ["pat-c"]),
    ("Patient", [("family:exact", "Peeters")], ["pat-a"]),
    ("Patient", [("family:exact", "peeters")], []),
    ("Patient", [("family", "muller")], ["pat-b"]),
    ("Patient", [("family:exact", "Müller")], ["pat-b"]),
    ("Patient", [("given", "maria")], ["pat-b"]),
    ("Patient", [("family", "peeters"), ("gender", "male")], ["pat-a"]),
    ("Patient", [("name:missing", "true")], []),
    ("Practitioner", [("name", "dr")], ["pr-1"]),
    ("Practitioner", [("family", "jans")], ["pr-1"]),
    ("Practitioner", [("family:contains", "sen")], ["pr-1"]),
    ("Organization", [("name", "wijk")], ["org-1"]),
    ("Location", [("name", "leuven")], ["loc-1"]),
    # date (day/month/year precision, prefixes); a birth date compares by year, or exactly by month/day
    ("Patient", [("birthdate", "1950")], ["pat-a"]),
    ("Patient", [("birthdate", "1950-03")], ["pat-a"]),
    ("Patient", [("birthdate", "1950-03-04")], ["pat-a"]),
    ("Patient", [("birthdate", "eq1950-03-04")], ["pat-a"]),
    ("Patient", [("birthdate", "1950-03-05")], []),
    ("Patient", [("birthdate", "1962-11")], ["pat-b"]),
    ("Patient", [("birthdate", "1962-11-15")], []),
    ("Patient", [("birthdate", "1962-11,1950-03-04")], ["pat-a", "pat-b"]),
    ("Patient", [("birthdate", "ge1962")], ["pat-b", "pat-c"]),
    ("Patient", [("birthdate", "lt1962")], ["pat-a"]),
    ("Patient", [("birthdate", "gt1962")], ["pat-c"]),
    ("Patient", [("birthdate", "le1950")], ["pat-a"]),
    ("Patient", [("birthdate", "sa1960")], ["pat-b", "pat-c"]),
    ("Patient", [("birthdate", "eb1962")], ["pat-a"]),
    ("Patient", [("birthdate", "ne1950")], ["pat-b", "pat-c"]),
    ("Patient", [("birthdate", "ge1950"), ("birthdate", "lt1971")], ["pat-a", "pat-b"]),
    ("Patient", [("birthdate", "1950-03"), ("gender", "male")], ["pat-a"]),
    ("Task", [("due-date", "2024-05-10")], ["t1"]),
    ("Task", [("due-date", "le2024-05-31")], ["t1"]),
    ("Task", [("due-date", "2024-06-01")], ["t2"]),
    ("Task", [("due-date", "2024-06-01T10:00:00Z")], ["t2"]),
    ("Task", [("due-date", "2024-06-01T12:00:00+02:00")], ["t2"]),
    ("Task", [("due-date", "gt2024-05-10")], ["t2"]),
    ("Task", [("due-date:missing", "true")], ["t3"]),
    ("Observation", [("date", "2024-05-01")], ["o1"]),
    ("Observation", [("date", "2024-05")], ["o1", "o2"]),
    ("Observation", [("date", "ge2024-05-02T12:00")], ["o2"]),
    ("Observation", [("date", "lt2024-05-01")], ["o3"]),
    ("Observation", [("date", "gt2024-05-02")], ["o2"]),
    ("Observation", [("date", "ap2024-05-02")], ["o2"]),
    # quantity
    ("Observation", [("value-quantity", "82.5")], ["o1"]),
    ("Observation", [("value-quantity", f"gt80|{UCUM}|kg")], ["o1"]),
    ("Observation", [("value-quantity", "5.4||kg")], ["o3"]),
    ("Observation", [("value-quantity", "5")], ["o3"]),
    ("Observation", [("value-quantity", "5.40")], ["o3"]),
    ("Observation", [("value-quantity", "5.41")], []),
    ("Observation", [("value-quantity", "lt10")], ["o3"]),
    ("Observation", [("value-quantity", "le72")], ["o2", "o3"]),
    ("Observation", [("value-quantity", "ge72")], ["o1", "o2"]),
    ("Observation", [("value-quantity", "ne82.5")], ["o2", "o3"]),
    ("Observation", [("value-quantity", "ap80")], ["o1", "o2"]),
    ("Observation", [("value-quantity", f"gt5.4|{UCUM}|kg")], ["o1"]),
    ("Observation", [("value-quantity", "gt1|http://other|kg")], []),
    ("Observation", [("code", f"{LOINC}|29463-7")], ["o1", "o3"]),
    ("Observation", [("category", "vital-signs")], ["o1", "o2"]),
    ("Observation", [("patient", "pat-a"), ("code", "29463-7")], ["o1"]),
    # reference
    ("Task", [("owner", "Practitioner/pr-1"), ("status", "requested")], ["t1", "t3"]),
    ("Task", [("owner", "pr-1")], ["t1", "t3"]),
    ("Task", [("owner:Practitioner", "pr-1")], ["t1", "t3"]),
    ("Task", [("owner", "http://example.org/fhir/Practitioner/pr-1")], ["t1", "t3"]),
    ("Task", [("owner", "Organization/pr-1")], []),
    ("Task", [("owner", "pr-1,pr-2")], ["t1", "t2", "t3"]),
    ("Task", [("patient", "pat-a")], ["t1", "t2"]),
    ("Task", [("subject", "Patient/pat-b")], ["t3"]),
    ("Task", [("based-on", "CarePlan/cp-a")], ["t1", "t2"]),
    ("Task", [("focus", "Goal/goal-a")], ["t1"]),
    ("Task", [("patient:missing", "false")], ["t1", "t2", "t3"]),
    # Task tokens
    ("Task", [("code", "https://tasks|spiro")], ["t1", "t3"]),
    ("Task", [("priority", "urgent")], ["t2"]),
    ("Task", [("business-status", "on-time")], ["t1"]),
    ("Task", [("identifier", f"{TASK_SID}|cp-a/1/1")], ["t1"]),
    ("Task", [("status", "requested,completed"), ("priority", "routine")], ["t1", "t3"]),
    # the worklist parameters (R4 Task search parameters)
    ("Task", [("performer", f"{SCT}|158965000")], ["t1"]),
    ("Task", [("performer", "106292003")], ["t2"]),
    ("Task", [("performer:missing", "true")], ["t3"]),
    ("Task", [("requester", "Practitioner/pr-2")], ["t2"]),
    ("Task", [("requester", "pr-1")], ["t1"]),
    ("Task", [("requester.identifier", f"{NIHDI}|2")], ["t2"]),
    ("Task", [("business-status", "overdue")], ["t3"]),
    ("Task", [("business-status:not", "overdue")], ["t1", "t2"]),
    ("Task", [("period", "ge2024-05-15")], ["t2"]),
    ("Task", [("period", "le2024-05-01")], ["t1"]),
    ("Task", [("period:missing", "true")], ["t3"]),
    ("Task", [("part-of", "Task/t1")], ["t2"]),
    ("Task", [("part-of", "t1")], ["t2"]),
    ("Task", [("authored-on", "2024-05")], ["t1", "t2"]),
    ("Task", [("authored-on", "lt2024-05-10")], ["t1"]),
    ("Task", [("authored-on", "2024-05-20")], ["t2"]),
    ("Task", [("modified", "ge2024-06-01")], ["t2"]),
    ("Task", [("intent", "order")], ["t1", "t2", "t3"]),
    ("Task", [("owner", "Practitioner/pr-1"), ("status", "requested"), ("due-date", "le2024-05-31")], ["t1"]),
    ("Task", [("instantiates-canonical", "ActivityDefinition/copd-spiro")], ["t1"]),
    ("Task", [("instantiates-canonical", f"{COPD.replace('PlanDefinition', 'ActivityDefinition')}-spiro")], ["t1"]),
    # chained
    ("Task", [("patient.identifier", f"{SSIN}|111")], ["t1", "t2"]),
    ("Task", [("patient.family", "muller")], ["t3"]),
    ("Task", [("patient.birthdate", "1962-11")], ["t3"]),
    ("Task", [("patient.identifier", "222")], ["t3"]),
    ("Task", [("owner:Practitioner.identifier", f"{NIHDI}|1")], ["t1", "t3"]),
    ("Task", [("subject:Patient.gender", "female")], ["t3"]),
    ("Task", [("subject.birthdate", "lt1960")], ["t1", "t2"]),
    ("CarePlan", [("patient.identifier", f"{SSIN}|222")], ["cp-b"]),
    # other types
    ("Condition", [("patient", "pat-a"), ("clinical-status", "active")], ["c1"]),
    ("Condition", [("code", "R95"), ("subject", "Patient/pat-a")], ["c1"]),
    ("CarePlan", [("patient", "pat-a")], ["cp-a"]),
    ("CarePlan", [("status", "active")], ["cp-a"]),
    ("CarePlan", [("instantiates-canonical", COPD)], ["cp-a"]),
    ("CarePlan", [("instantiates-canonical", f"{COPD}|1.0")], ["cp-a"]),
    ("CarePlan", [("instantiates-canonical:below", "https://careflow.dev/fhir/PlanDefinition/")], ["cp-a", "cp-b"]),
    # R4: instantiates-canonical is a reference parameter, so Type/id finds the canonical's tail
    ("CarePlan", [("instantiates-canonical", "PlanDefinition/copd")], ["cp-a"]),
    ("CarePlan", [("instantiates-canonical", HF)], ["cp-b"]),
    ("CarePlan", [("instantiates-canonical", "https://elsewhere.example/fhir/PlanDefinition/copd")], []),
    ("CarePlan", [("instantiates-canonical:missing", "true")], ["cp-c"]),
    ("CarePlan", [("based-on", "CarePlan/cp-a")], ["cp-c"]),
    ("CarePlan", [("part-of", "cp-a")], ["cp-c"]),
    ("CarePlan", [("replaces", "CarePlan/cp-b")], ["cp-c"]),
    ("CarePlan", [("condition", "Condition/c1")], ["cp-c"]),
    ("CarePlan", [("encounter", "Encounter/enc-1")], ["cp-c"]),
    ("CarePlan", [("activity-code", "https://act|walk")], ["cp-c"]),
    ("CarePlan", [("activity-date", "2024-07")], ["cp-c"]),
    ("CarePlan", [("activity-date", "lt2024-07-01")], []),
    ("CarePlan", [("activity-reference", "Task/t3")], ["cp-c"]),
    ("CarePlan", [("performer", "Practitioner/pr-2")], ["cp-c"]),
    ("CarePlan", [("date", "ge2024-06")], ["cp-c"]),
    ("CarePlan", [("instantiates-uri", "https://example.org/protocol")], ["cp-c"]),
    ("CarePlan", [("intent", "plan")], ["cp-a", "cp-b", "cp-c"]),
    ("CarePlan", [("subject", "Group/grp-1")], ["cp-c"]),
    ("CarePlan", [("patient", "grp-1")], []),  # R4: patient is subject.where(resolve() is Patient)
    ("CarePlan", [("subject", "grp-1")], ["cp-c"]),
    # ContactPoint filters (where(system='email')), address parts, Resource-level _tag
    ("Patient", [("email", "jan@example.org")], ["pat-a"]),
    ("Patient", [("phone", "jan@example.org")], []),
    ("Patient", [("telecom", "phone|016 12 34 56")], ["pat-a"]),
    ("Patient", [("address-city", "kessel-lo")], ["pat-a"]),  # identifying: whole parts, blinded
    ("Patient", [("address", "3010")], ["pat-a"]),
    ("Patient", [("_tag", "https://tags|vip")], ["pat-a"]),
    ("Patient", [("_tag:not", "vip")], ["pat-b", "pat-c"]),
    ("CarePlan", [("care-team", "CareTeam/ct-a")], ["cp-a"]),
    ("CarePlan", [("goal", "goal-a")], ["cp-a"]),
    ("CarePlan", [("category", "https://cat|copd")], ["cp-a"]),
    ("Goal", [("patient", "pat-a"), ("lifecycle-status", "active")], ["goal-a"]),
    ("CareTeam", [("participant", "Practitioner/pr-1")], ["ct-a"]),
    ("CareTeam", [("participant", "PractitionerRole/role-1"), ("status", "active"), ("patient", "pat-a")], ["ct-a"]),
    ("PractitionerRole", [("role", "gp"), ("practitioner", "pr-1"), ("organization", "Organization/org-1")], ["role-1"]),
    ("Practitioner", [("identifier", f"{NIHDI}|1")], ["pr-1"]),
    ("Organization", [("identifier", "https://org|o1")], ["org-1"]),
    ("PlanDefinition", [("url", COPD), ("version", "1.0"), ("status", "active"), ("name", "copd")], ["pd-copd"]),
    ("ActivityDefinition", [("status", "draft"), ("name", "spiro")], ["ad-1"]),
    ("ActivityDefinition", [("url:below", COPD.replace("PlanDefinition", "ActivityDefinition"))], ["ad-1"]),
]


@pytest.mark.parametrize("rtype,params,expected", CASES, ids=[f"{t}?{p}" for t, p, _ in CASES])
def test_search(shared_net, rtype, params, expected):
    result = shared_net.search(parse_search(rtype, params, strict=True))
    assert sorted(s.id for s in result.matches) == expected
    assert result.total == len(expected)


def test_last_updated(net):
    stamp = net.read("Patient", "pat-a").resource["meta"]["lastUpdated"]
    assert ids(net, "Patient", [("_lastUpdated", "ge2000")]) == ["pat-a", "pat-b", "pat-c"]
    assert ids(net, "Patient", [("_lastUpdated", "lt2000")]) == []
    assert ids(net, "Task", [("_lastUpdated", stamp[:10])]) == ["t1", "t2", "t3"] or stamp[:10] != stamp  # same day
    time.sleep(0.01)
    with net.unit_of_work(SYSTEM) as uow:
        updated, _ = uow.update({**net.read("Patient", "pat-b").resource, "gender": "unknown"})
    after = updated.resource["meta"]["lastUpdated"]
    assert ids(net, "Patient", [("_lastUpdated", f"ge{after}")]) == ["pat-b"]
    assert ids(net, "Patient", [("_lastUpdated", f"lt{after}")]) == ["pat-a", "pat-c"]


def test_sort(net):
    def order(rtype, params):
        return [s.id for s in net.search(parse_search(rtype, params, strict=True)).matches]

    assert order("Task", [("_sort", "due-date")]) == ["t1", "t2", "t3"]
    assert order("Task", [("_sort", "-due-date")]) == ["t2", "t1", "t3"]
    assert order("Patient", [("_sort", "birthdate")]) == ["pat-a", "pat-b", "pat-c"]
    assert order("Patient", [("_sort", "-birthdate")]) == ["pat-c", "pat-b", "pat-a"]
    assert order("Practitioner", [("_sort", "family")]) == ["pr-2", "pr-1"]
    assert order("Patient", [("_sort", "-_id")]) == ["pat-c", "pat-b", "pat-a"]
    assert order("Task", [("_sort", "priority,-due-date")]) == ["t1", "t3", "t2"]
    assert order("Observation", [("_sort", "-value-quantity")]) == ["o1", "o2", "o3"]
    time.sleep(0.01)
    with net.unit_of_work(SYSTEM) as uow:
        uow.update({**net.read("Patient", "pat-a").resource, "active": True})
    assert order("Patient", [("_sort", "-_lastUpdated")])[0] == "pat-a"
    assert order("Patient", [("_sort", "_lastUpdated")])[-1] == "pat-a"


def test_paging_and_totals(net):
    page1 = net.search(parse_search("Task", [("_count", "2")]))
    page2 = net.search(parse_search("Task", [("_count", "2"), ("_offset", "2")]))
    assert page1.total == page2.total == 3
    assert [s.id for s in page1.matches] == ["t1", "t2"] and [s.id for s in page2.matches] == ["t3"]
    summary = net.search(parse_search("Task", [("status", "requested"), ("_summary", "count")]))
    assert summary.total == 2 and summary.matches == []
    zero = net.search(parse_search("Task", [("_count", "0")]))
    assert zero.total == 3 and zero.matches == []
    no_total = net.search(parse_search("Task", [("_total", "none")]))
    assert no_total.total is None and len(no_total.matches) == 3


def _included(repo, rtype, params):
    result = repo.search(parse_search(rtype, params, strict=True))
    return sorted(s.id for s in result.matches), sorted(f"{s.type}/{s.id}" for s in result.included)


def test_revinclude_tasks_of_careplans(net):
    assert _included(net, "CarePlan", [("patient", "pat-a"), ("_revinclude", "Task:based-on")]) == (
        ["cp-a"], ["Task/t1", "Task/t2"])


def test_includes(net):
    assert _included(net, "CarePlan", [("_id", "cp-a"), ("_include", "CarePlan:care-team"),
                                        ("_include", "CarePlan:goal")]) == (["cp-a"], ["CareTeam/ct-a", "Goal/goal-a"])
    assert _included(net, "Task", [("_id", "t1"), ("_include", "Task:patient")]) == (["t1"], ["Patient/pat-a"])
    assert _included(net, "Task", [("_id", "t1,t2"), ("_include", "Task:owner:Practitioner")]) == (
        ["t1", "t2"], ["Practitioner/pr-1", "Practitioner/pr-2"])
    assert _included(net, "Task", [("_id", "t1"), ("_include", "Task:owner:Organization")]) == (["t1"], [])
    assert _included(net, "Task", [("_id", "t1"), ("_include", "*")]) == (
        ["t1"], ["CarePlan/cp-a", "Goal/goal-a", "Patient/pat-a", "Practitioner/pr-1"])
    assert _included(net, "Patient", [("_id", "pat-b"), ("_revinclude", "*")]) == (
        ["pat-b"], ["CarePlan/cp-b", "Observation/o3", "Task/t3"])
    assert _included(net, "Patient", [("_id", "pat-a"), ("_revinclude", "*:subject")])[1] == [
        "CarePlan/cp-a", "CareTeam/ct-a", "Condition/c1", "Goal/goal-a", "Observation/o1", "Observation/o2",
        "Task/t1", "Task/t2"]


def test_include_iterate(net):
    assert _included(net, "CarePlan", [("_id", "cp-a"), ("_include", "CarePlan:care-team"),
                                        ("_include:iterate", "CareTeam:participant")]) == (
        ["cp-a"], ["CareTeam/ct-a", "Practitioner/pr-1", "PractitionerRole/role-1"])
    assert _included(net, "CarePlan", [("_id", "cp-a"), ("_include", "CarePlan:care-team"),
                                        ("_include", "CareTeam:participant")]) == (["cp-a"], ["CareTeam/ct-a"])


def test_included_resources_are_live_and_not_repeated(net):
    with net.unit_of_work(SYSTEM) as uow:
        uow.delete("Task", "t2")
    assert _included(net, "CarePlan", [("patient", "pat-a"), ("_revinclude", "Task:based-on")]) == (
        ["cp-a"], ["Task/t1"])
    # a Task that is both a match and included is only a match
    assert _included(net, "Task", [("_id", "t1"), ("_include", "Task:part-of")]) == (["t1"], [])


def test_search_ignores_deleted_and_reindexes_updates(net):
    with net.unit_of_work(SYSTEM) as uow:
        for status in ("accepted", "in-progress", "completed"):  # along the Task state machine
            uow.update({**uow.read("Task", "t1").resource, "status": status})
        uow.delete("Task", "t3")
    assert ids(net, "Task", [("status", "requested")]) == []
    assert ids(net, "Task", [("status", "completed")]) == ["t1", "t2"]
    assert ids(net, "Task", [("_id", "t3")]) == []
    # chains only follow live targets
    with net.unit_of_work(SYSTEM) as uow:
        uow.delete("Patient", "pat-a")
    assert ids(net, "Task", [("patient.identifier", f"{SSIN}|111")]) == []


def test_sort_is_code_point_order_on_every_backend(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        for rid, code in (("a", "b-x"), ("B", "B"), ("c", "a"), ("-x", "Z"), ("1", "_")):
            uow.update({"resourceType": "Task", "id": rid, "status": "ready", "intent": "order",
                        "code": {"coding": [{"system": "s", "code": code}]}})
    def order(sort):
        return [s.id for s in repo.search(parse_search("Task", [("_sort", sort)])).matches]

    assert order("_id") == ["-x", "1", "B", "a", "c"]
    assert order("code") == ["B", "-x", "1", "c", "a"]  # B < Z < _ < a < b-x
