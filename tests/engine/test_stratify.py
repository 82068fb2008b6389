"""Stratification over the store (memory twin, SQLite, PostgreSQL): RiskAssessments written once and
rewritten only on change, the Patient's group tag kept in step, the replay of an old rule version at
an old date giving the groups recorded then, and group / neighbourhood / practice searchable alike
in every store."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

from careflow.access.principal import SYSTEM
from careflow.engine.stratify import assess, population_ids, stratify
from careflow.fhir.search_query import parse_search
from careflow.naming import POPULATION_GROUP
from careflow.population.assessment import assessment_id, group_of
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from population.people import belrai, condition, patient, stay  # noqa: E402

OLD_DAY, DAY = date(2026, 3, 1), date(2026, 11, 1)
GP1, GP2 = "PractitionerRole/role-gp-1", "PractitionerRole/role-gp-2"


def _population() -> list[dict]:
    """Hand-counted: at 2026-03-01 (2026.1) p1 B, p2 C, p3 D, p4 C, p5 A; at 2026-11-01 (2026.2)
    p1 B, p2 A (fresh BelRAI 4), p3 C (COPD since May), p4 B (a stay in August), p5 A; p6 is dead."""
    return [
        patient("p1", "1945-03-01", hood="Heverlee", gp=GP1), condition("p1", "copd"), condition("p1", "heart-failure"),
        patient("p2", "1960-01-01", hood="Heverlee", gp=GP2), condition("p2", "diabetes"), belrai("p2", 4, "2026-08-01"),
        patient("p3", "1980-01-01", hood="Kessel-Lo", gp=GP2), condition("p3", "copd", "2026-05-01"),
        patient("p4", "1970-06-01", hood="Kessel-Lo", gp=GP1), condition("p4", "asthma"),
        stay("p4", "2026-08-01", "2026-08-04"),
        patient("p5", "1940-01-01", hood="Wilsele", gp=GP1), condition("p5", "dementia"), condition("p5", "copd"),
        patient("p6", "1930-01-01", deceasedDateTime="2026-01-05"), condition("p6", "copd"),
    ]


def _load(repo) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        for r in _population():
            uow.create_if_absent(r)


def _ids(repo, rtype: str, params: list[tuple[str, str]]) -> list[str]:
    return sorted(s.id for s in repo.search(parse_search(rtype, params, strict=True)).matches)


@pytest.fixture()
def sets():
    return load_rule_sets([default_rules_dir()])


def test_stratify_records_replays_and_is_searchable(repo, sets):
    _load(repo)
    v1, v2 = rules_in_force(sets, OLD_DAY), rules_in_force(sets, DAY)
    first = stratify(repo, v1, OLD_DAY)
    assert first["assessments-written"] == 5 and first["not-stratified"] == 1
    assert {g: first[f"group-{g}"] for g in "ABCD"} == {"A": 1, "B": 1, "C": 2, "D": 1}
    assert first["group-tags-updated"] == 5  # none carried a group tag yet
    old = {pid: group_of(repo.read("RiskAssessment", assessment_id(pid, "pyramid")).resource) for pid in
           ("p1", "p2", "p3", "p4", "p5")}
    assert old == {"p1": "B", "p2": "C", "p3": "D", "p4": "C", "p5": "A"}

    again = stratify(repo, v1, OLD_DAY)
    assert again["unchanged"] == 5 and again["assessments-written"] == 0 and again["group-tags-updated"] == 0

    now = stratify(repo, v2, DAY)
    assert now["assessments-written"] == 5  # the rule version changed for every one
    assert now["group-tags-updated"] == 3  # p2 C->A, p3 D->C, p4 C->B
    current = {pid: group_of(repo.read("RiskAssessment", assessment_id(pid, "pyramid")).resource) for pid in old}
    assert current == {"p1": "B", "p2": "A", "p3": "C", "p4": "B", "p5": "A"}
    p2 = repo.read("RiskAssessment", assessment_id("p2", "pyramid")).resource
    assert p2["note"][0]["text"] == "group A because: diabetes, BelRAI screener 4 on 2026-08-01, age 66, rule set 2026.2"
    assert p2["method"]["coding"][0]["version"] == "2026.2"
    assert {"reference": "Observation/p2-belrai0"} in p2["basis"]
    tags = [t for t in repo.read("Patient", "p2").resource["meta"]["tag"] if t["system"] == POPULATION_GROUP]
    assert [t["code"] for t in tags] == ["A"]

    # the replay of 2026.1 at 2026-03-01 gives exactly what was recorded then (version 1 of each)
    replay = {s.patient: s.group for s in assess(repo, v1, OLD_DAY)}
    assert replay == old
    for pid, g in old.items():
        total, versions = repo.history("RiskAssessment", assessment_id(pid, "pyramid"))
        assert group_of(versions[-1].resource) == g and versions[-1].resource["method"]["coding"][0]["version"] == "2026.1"
    assert population_ids(repo) == ["p1", "p2", "p3", "p4", "p5", "p6"]

    # searchable: the group (on Patient and RiskAssessment), the neighbourhood, the practice
    assert _ids(repo, "Patient", [("population-group", "A")]) == ["p2", "p5"]
    assert _ids(repo, "Patient", [("population-group", f"{POPULATION_GROUP}|B"), ("neighbourhood", "Kessel-Lo")]) == ["p4"]
    assert _ids(repo, "Patient", [("neighbourhood", "Heverlee"), ("general-practitioner", GP2)]) == ["p2"]
    assert _ids(repo, "RiskAssessment", [("population-group", "A")]) == [assessment_id("p2", "pyramid"),
                                                                          assessment_id("p5", "pyramid")]
    assert _ids(repo, "RiskAssessment", [("population-group", "A,B"), ("patient.neighbourhood", "Kessel-Lo")]) == \
        [assessment_id("p4", "pyramid")]
    assert _ids(repo, "RiskAssessment", [("method", "pyramid")]) == sorted(assessment_id(p, "pyramid") for p in old)


def test_memory_twin_and_sql_agree(tmp_path, sets):
    from careflow.store.database import make_engine, upgrade
    from careflow.store.memory import MemoryRepository
    from careflow.store.sql import SqlRepository

    url = f"sqlite:///{tmp_path / 'agree.db'}"
    upgrade(url)
    sql, memory = SqlRepository(make_engine(url)), MemoryRepository()
    try:
        for repo in (sql, memory):
            _load(repo)
            stratify(repo, rules_in_force(sets, DAY), DAY)
        queries = [("Patient", [("population-group", g)]) for g in "ABCD"] + [
            ("Patient", [("neighbourhood", h)]) for h in ("Heverlee", "Kessel-Lo", "Wilsele", "Leuven")] + [
            ("RiskAssessment", [("population-group", "B,C")]), ("Patient", [("population-group:not", "A")]),
            ("RiskAssessment", [("patient.general-practitioner", GP1)])]
        for rtype, params in queries:
            assert _ids(sql, rtype, params) == _ids(memory, rtype, params), (rtype, params)
    finally:
        sql.close()
