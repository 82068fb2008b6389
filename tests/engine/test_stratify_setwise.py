"""The set-wise stratification gives the same answers as the reference, patient by patient: the
facts read through ``search_many`` (one statement per thousand patients on SQL) equal those of the
paged searches by id lists the engine used before, and so do the groups, the reasons and the
RiskAssessment JSON; the replay of an old rule version at an old date too. Incremental runs
recompute exactly what changed and end where a full refresh would.

On every store (memory twin, SQLite, PostgreSQL when CAREFLOW_TEST_DATABASE_URL is set), over a
generated region plus hand-made edge cases (ties between measurements, medication ids not in
creation order, a deceased, an inactive and a merged-away record, a stale frailty screen)."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from careflow.access.principal import SYSTEM
from careflow.engine import stratify as engine
from careflow.engine.reading import by_ids
from careflow.errors import InvalidSearch
from careflow.fhir.profiles import extension_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.population.assessment import risk_assessment
from careflow.population.evaluate import stratify as place
from careflow.population.facts import MEDICATION_TYPES, inhabitant
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force
from careflow.region.generate import generate_region
from workflows.loading import load_resources, region_resources

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from population.people import belrai, condition, egfr, medicine, patient, stay  # noqa: E402

OLD_DAY, DAY = date(2026, 3, 1), date(2026, 11, 1)
INHABITANTS = 300


def _edge_cases() -> list[dict[str, Any]]:
    tie = [egfr("e1", 25, "2026-09-01", n=1), egfr("e1", 40, "2026-09-01", n=2)]  # same moment: the first by id wins
    meds = [medicine("e2", atc, n=n) for n, atc in ((9, "C03CA01"), (3, "C07AB07"), (5, "C09AA05"), (1, "B01AC06"),
                                                     (7, "C10AA05"), (2, "A10BA02"))]
    return [
        patient("e1", "1950-05-05"), condition("e1", "kidney"), *tie,
        patient("e2", "1966-11-01"), condition("e2", "diabetes"), *meds,  # polypharmacy: complex (B)
        patient("e3", "1939-02-02"), condition("e3", "copd"), belrai("e3", 5, "2025-06-01"),  # stale screen
        patient("e4", "1930-01-01", deceasedDateTime="2026-01-05"), condition("e4", "copd"),
        patient("e5", "1960-01-01", active=False), condition("e5", "diabetes"),
        patient("e6", "1961-01-01", link=[{"other": {"reference": "Patient/e1"}, "type": "replaced-by"}]),
        patient("e7", "1944-04-04"), condition("e7", "dementia"), stay("e7", "2026-06-01", "2026-06-09"),
        stay("e7", "2026-09-01", "2026-09-03", n=1),
    ]


@pytest.fixture()
def world(repo):
    load_resources(repo, region_resources(generate_region(INHABITANTS)))
    with repo.unit_of_work(SYSTEM) as uow:
        for r in _edge_cases():
            uow.create_if_absent(r)
    return repo


@pytest.fixture(scope="module")
def sets():
    return load_rule_sets([default_rules_dir()])


def _reference_inhabitants(repo, ids: list[str], rules) -> dict[str, tuple[dict, Any]]:
    """The engine's reading before the set-wise one: paged searches by lists of 100 ids, in the
    order those return (by ``_id`` within each type)."""
    patients = {s.id: s for s in by_ids(repo, "Patient", ids) if s.resource}
    codes, meds, stays = engine._needs(rules)
    related: dict[str, list[dict]] = {pid: [] for pid in sorted(patients)}
    queries: list[tuple[str, list[tuple[str, str]]]] = [("Condition", [])]
    if codes:
        queries.append(("Observation", [("code", ",".join(codes))]))
    if meds:
        queries += [(t, []) for t in MEDICATION_TYPES]
    if stays:
        queries.append(("Encounter", []))
    for rtype, extra in queries:
        for s in by_ids(repo, rtype, sorted(patients), "patient", extra):
            pid = engine._subject(s.resource or {})
            if pid in related:
                related[pid].append(s.resource or {})
    return {pid: (patients[pid].resource, inhabitant(patients[pid].resource, related[pid])) for pid in related}


def _reference(repo, rules, day) -> dict[str, dict]:
    """patient id -> the RiskAssessment the reference evaluation makes (stratified patients only)."""
    ids = sorted(s.id for page in engine.search_pages(repo, "Patient", []) for s in page.matches)
    out = {}
    for pid, (resource, who) in _reference_inhabitants(repo, ids, rules).items():
        if engine._stratified(resource, who):
            out[pid] = risk_assessment(place(who, rules, day), rules.title)
    return out


def _recorded(repo, rules) -> dict[str, dict]:
    found = {}
    for page in engine.search_pages(repo, "RiskAssessment", [("method", rules.id)]):
        for s in page.matches:
            body = {k: v for k, v in (s.resource or {}).items() if k != "meta"}
            found[body["subject"]["reference"].split("/")[1]] = body
    return found


def _without_day(ra: dict) -> dict:
    return {k: v for k, v in ra.items() if k != "occurrenceDateTime"}


def test_facts_and_assessments_equal_the_reference(world, sets):
    repo = world
    rules = rules_in_force(sets, DAY)
    ids = sorted(s.id for page in engine.search_pages(repo, "Patient", []) for s in page.matches)
    assert len(ids) == INHABITANTS + 7
    new = engine.read_inhabitants(repo, ids, rules)
    old = _reference_inhabitants(repo, ids, rules)
    assert sorted(new) == sorted(old)
    for pid in ids:
        assert new[pid][1] == old[pid][1], pid  # every fact, in the same order
    assert any(who.observations for _r, who in old.values()) and any(who.medicines for _r, who in old.values())

    reference = _reference(repo, rules, DAY)
    strata = {s.patient: risk_assessment(s, rules.title) for s in engine.assess(repo, rules, DAY)}
    assert strata == reference
    counts = engine.stratify(repo, rules, DAY)
    assert counts["assessments-written"] == len(reference) and counts["not-stratified"] == 3
    assert _recorded(repo, rules) == reference
    assert reference["e1"]["note"][0]["text"] == \
        "group B because: chronic kidney disease, eGFR 25 on 2026-09-01, age 76, rule set 2026.2"
    assert reference["e1"]["basis"] == [{"reference": "Condition/e1-kidney"}, {"reference": "Observation/e1-egfr1"}]
    assert reference["e2"]["basis"] == [{"reference": "Condition/e2-diabetes"},
                                        *({"reference": f"MedicationStatement/e2-med{n}"} for n in (1, 2, 3, 5, 7, 9))]
    assert "older than 12 months: not used" in reference["e3"]["note"][0]["text"]

    again = engine.stratify(repo, rules, DAY)
    assert again["assessments-written"] == 0 and again["group-tags-updated"] == 0


def test_replay_of_an_old_rule_version_gives_the_old_groups(world, sets):
    repo = world
    v1, v2 = rules_in_force(sets, OLD_DAY), rules_in_force(sets, DAY)
    assert v1.version != v2.version
    engine.stratify(repo, v1, OLD_DAY)
    recorded_then = _recorded(repo, v1)
    engine.stratify(repo, v2, DAY)
    replayed = {s.patient: risk_assessment(s, v1.title) for s in engine.assess(repo, v1, OLD_DAY)}
    assert replayed == _reference(repo, v1, OLD_DAY)
    assert {p: _without_day(ra) for p, ra in replayed.items()} == \
        {p: _without_day(ra) for p, ra in recorded_then.items()}


def test_incremental_recomputes_what_changed_and_ends_like_a_full_refresh(world, sets):
    repo = world
    rules = rules_in_force(sets, DAY)
    first = engine.refresh(repo, rules, DAY)
    assert not first["incremental"]
    # everything just written is within the look-back: make the watermark the moment after this run
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(engine.run_record(rules, DAY, datetime.now(timezone.utc) + engine.LOOK_BACK))
    healthy = sorted(pid for pid, ra in _recorded(repo, rules).items() if ra["prediction"][0]["outcome"]["coding"][0]["code"] == "D")[:3]
    with repo.unit_of_work(SYSTEM) as uow:
        for pid in healthy:
            uow.create_if_absent(condition(pid, "copd", "2026-10-01"))
        uow.delete("Condition", "e7-dementia")  # a deletion counts
        moved = dict(repo.read("Condition", "e2-diabetes").resource)
        moved["subject"] = {"reference": "Patient/e3"}  # moved to another patient: both recomputed
        uow.update(moved)
    since = engine.watermark(repo, rules, DAY)
    assert since is not None
    assert set(engine.changed_patients(repo, since)) == {*healthy, "e7", "e2", "e3"}  # the tags of none changed
    inc = engine.refresh(repo, rules, DAY, incremental=True)
    assert inc["incremental"] == 1 and inc["recomputed"] == len(healthy) + 3
    assert inc["assessments-written"] == len(healthy) + 3
    assert _recorded(repo, rules) == {p: ra for p, ra in _reference(repo, rules, DAY).items()}

    # another day or another rule version: everyone
    assert engine.watermark(repo, rules, DAY + timedelta(days=1)) is None
    assert engine.watermark(repo, rules_in_force(sets, OLD_DAY), DAY) is None


def test_search_many_finds_what_the_searches_find(world):
    repo = world
    ids = sorted(s.id for page in engine.search_pages(repo, "Patient", []) for s in page.matches)
    for rtype, params, param in (("Patient", [], "_id"), ("Condition", [], "patient"),
                                 ("Observation", [("status", "final")], "patient")):
        wanted = ids[::2] + ["no-such-patient"]
        many = sorted((s.id, s.version) for s in repo.search_many(rtype, params, param, wanted))
        paged = sorted((s.id, s.version) for s in by_ids(repo, rtype, wanted, param, params))
        assert many == paged and (rtype != "Patient" or len(many) == len(ids[::2]))
    with pytest.raises(InvalidSearch, match="reference parameter"):
        repo.search_many("Condition", [], "code", ["x"])


def test_the_run_record_is_valid_r4(sets):
    record = engine.run_record(rules_in_force(sets, DAY), DAY, datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc))
    assert list(r4_errors(record)) == [] and extension_errors(record) == []
    assert record["extension"][0]["valueInstant"] == "2026-11-01T05:50:00Z"
