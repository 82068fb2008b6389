"""Case finding over the store (memory twin, SQLite, PostgreSQL), on a small population counted by
hand: who each rule proposes (exactly 40, exactly three months apart, two months apart, a CKD
diagnosis present, deceased, consent withdrawn, already enrolled), that a rerun writes nothing, that
a rejected proposal is not made again for the same evidence but is for new evidence, that accepting
one takes the inclusion path, and that every Task written is valid R4."""

from __future__ import annotations

import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from careflow.access.principal import SYSTEM
from careflow.engine.case_finding import candidates, evaluate, find_cases
from careflow.engine.counts import Counts
from careflow.engine.events import handle_task
from careflow.fhir.r4_schema import r4_errors
from careflow.fhir.search_query import parse_search
from careflow.naming import CARE_ROLE_SYSTEM, TASK_KIND
from careflow.planning import ids
from careflow.population.case_finding import CASE_FINDING, CASE_FINDING_RULE, evidence_of, rule_of
from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, rules_in_force
from careflow.programs.codes import ICD10, LOINC, SNOMED
from careflow.programs.loader import load_directory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from population.people import condition, egfr, medicine, patient  # noqa: E402

DAY = date(2026, 11, 1)
GP = "PractitionerRole/role-gp-1"


def _obs(pid: str, code: str, day: str, *, value: float | None = None, coded: str | None = None, n: int = 0) -> dict:
    r = {"resourceType": "Observation", "id": f"{pid}-{code}-{n}", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": f"Patient/{pid}"},
         "effectiveDateTime": f"{day}T10:00:00+01:00"}
    if value is not None:
        r["valueQuantity"] = {"value": value, "unit": "pg/mL", "system": "http://unitsofmeasure.org", "code": "pg/mL"}
    if coded is not None:
        r["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": coded}]}
    return r


def smoker(pid: str, day: str = "2026-06-01", *, status: str = "77176002", n: int = 0) -> dict:
    return _obs(pid, "72166-2", day, coded=status, n=n)


def fev1(pid: str, day: str) -> dict:
    r = _obs(pid, "20150-9", day)
    r["valueQuantity"] = {"value": 2.9, "unit": "L", "system": "http://unitsofmeasure.org", "code": "L"}
    return r


def insulin(pid: str, per_day: int, *, atc: str = "A10AE04", n: int = 0) -> dict:
    r = medicine(pid, atc, start="2026-02-01", n=n)
    r["dosage"] = [{"timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}}]
    return r


def consent(pid: str, status: str) -> dict:
    return {"resourceType": "Consent", "id": f"{pid}-consent", "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"}, "dateTime": "2025-01-01",
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit"}}


def population() -> list[dict]:
    """Hand-counted on 2026-11-01 (rule set 2026.1):

    smoker-without-spirometry: s1 (exactly 40 today) and s4 (last spirometry more than five years ago);
      not s2 (39), s3 (spirometry in 2023), s5 (latest status: ex-smoker), s6 (has COPD).
    suspected-heart-failure: h1 (NT-proBNP 300) and h3 (furosemide); not h2 (NT-proBNP 100), h4 (has
      heart failure), h5 (deceased), h6 (withdrew sharing consent).
    egfr-low-without-ckd: k1 (55 then 52 exactly three months later) and k4 (55, 52 two months later,
      50 three months after the first); not k2 (two months apart only), k3 (a CKD diagnosis).
    diabetes-care-pathway: d1 (insulin once a day) and d3 (GLP-1 agonist); not d2 (insulin four times a
      day), d4 (already in the diabetes programme), d5 (metformin only), d6 (type 1 recorded too).
    Eight proposals; one already enrolled, one consent withdrawn, one deceased."""
    people: list[dict] = [
        {"resourceType": "PractitionerRole", "id": "role-gp-1", "active": True,
         "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": "gp"}]}]},
        patient("s1", "1986-11-01"), smoker("s1"),
        patient("s2", "1986-11-02"), smoker("s2"),
        patient("s3", "1966-01-01"), smoker("s3"), fev1("s3", "2023-01-01"),
        patient("s4", "1966-01-01"), smoker("s4"), fev1("s4", "2021-10-31"),
        patient("s5", "1966-01-01"), smoker("s5", "2025-06-01"), smoker("s5", "2026-06-01", status="8517006", n=1),
        patient("s6", "1966-01-01"), smoker("s6"), condition("s6", "copd"),
        patient("h1", "1950-01-01"), _obs("h1", "33762-6", "2026-09-01", value=300),
        patient("h2", "1950-01-01"), _obs("h2", "33762-6", "2026-09-01", value=100),
        patient("h3", "1950-01-01"), medicine("h3", "C03CA01"),
        patient("h4", "1950-01-01"), medicine("h4", "C03CA01"), condition("h4", "heart-failure"),
        patient("h5", "1950-01-01", deceasedDateTime="2026-10-01"), _obs("h5", "33762-6", "2026-09-01", value=400),
        patient("h6", "1950-01-01"), _obs("h6", "33762-6", "2026-09-01", value=400), consent("h6", "inactive"),
        patient("k1", "1950-01-01"), egfr("k1", 55, "2026-01-10"), egfr("k1", 52, "2026-04-10", n=1),
        patient("k2", "1950-01-01"), egfr("k2", 55, "2026-01-10"), egfr("k2", 52, "2026-03-10", n=1),
        patient("k3", "1950-01-01"), egfr("k3", 55, "2026-01-10"), egfr("k3", 52, "2026-05-10", n=1),
        condition("k3", "kidney"),
        patient("k4", "1950-01-01"), egfr("k4", 55, "2026-01-10"), egfr("k4", 52, "2026-03-10", n=1),
        egfr("k4", 50, "2026-04-10", n=2),
        patient("d1", "1960-01-01"), condition("d1", "diabetes"), insulin("d1", 1),
        patient("d2", "1960-01-01"), condition("d2", "diabetes"), insulin("d2", 4),
        patient("d3", "1960-01-01"), condition("d3", "diabetes"), medicine("d3", "A10BJ06"),
        patient("d4", "1960-01-01"), condition("d4", "diabetes"), medicine("d4", "A10BJ06"),
        {"resourceType": "CarePlan", "id": ids.careplan_id("d4", "diabetes-type-2"), "status": "active",
         "intent": "plan", "subject": {"reference": "Patient/d4"}},
        patient("d5", "1960-01-01"), condition("d5", "diabetes"), medicine("d5", "A10BA02"),
        patient("d6", "1960-01-01"), condition("d6", "diabetes"), insulin("d6", 2),
        {**condition("d6", "diabetes", n=1), "code": {"coding": [{"system": ICD10, "code": "E10.9"}]}},
    ]
    return people


PROPOSED = {"s1": "smoker-without-spirometry", "s4": "smoker-without-spirometry",
            "h1": "suspected-heart-failure", "h3": "suspected-heart-failure",
            "k1": "egfr-low-without-ckd", "k4": "egfr-low-without-ckd",
            "d1": "diabetes-care-pathway", "d3": "diabetes-care-pathway"}


def load(repo, resources=None) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        for r in resources or population():
            uow.create_if_absent(r)


def proposals(repo) -> dict[str, list[dict]]:
    q = parse_search("Task", [("code", f"{TASK_KIND}|{CASE_FINDING}"), ("_count", "100")], strict=True)
    out: dict[str, list[dict]] = {}
    for s in repo.search(q).matches:
        out.setdefault(s.resource["for"]["reference"].split("/")[1], []).append(s.resource)
    return out


@pytest.fixture(scope="module")
def rules():
    return rules_in_force(load_case_rule_sets([default_case_rules_dir()]), DAY)


@pytest.fixture(scope="module")
def programs():
    return load_directory(Path(__file__).resolve().parents[2] / "care_programs")


def test_each_rule_proposes_the_hand_counted_patients(repo, rules, programs):
    load(repo)
    assert {m.patient: m.rule.id for m in evaluate(repo, rules, DAY)} == \
        {**PROPOSED, "d4": "diabetes-care-pathway", "h6": "suspected-heart-failure"}
    done = find_cases(repo, rules, programs, DAY)
    assert done["proposed"] == 8
    assert done["already-enrolled"] == 1 and done["consent-withdrawn"] == 1 and done["not-in-use"] == 1
    assert {k: v["proposed"] for k, v in done.by_program.items() if v.get("proposed")} == {
        "smoker-without-spirometry": 2, "suspected-heart-failure": 2, "egfr-low-without-ckd": 2, "diabetes-care-pathway": 2}
    found = proposals(repo)
    assert {pid: [rule_of(t) for t in ts] for pid, ts in found.items()} == {p: [r] for p, r in PROPOSED.items()}
    for pid, (task,) in found.items():
        assert r4_errors(task) == [], (pid, r4_errors(task))
        assert task["owner"] == {"reference": GP} and task["intent"] == "proposal" and task["status"] == "requested"
        assert task["focus"] == task["for"] == {"reference": f"Patient/{pid}"}
        coding = task["reasonCode"]["coding"][0]
        assert coding["system"] == CASE_FINDING_RULE and coding["version"] == "2026.1"
    k1 = found["k1"][0]
    assert evidence_of(k1) == {"Observation/k1-egfr0", "Observation/k1-egfr1"}
    assert "eGFR 55 on 2026-01-10 and 52 on 2026-04-10" in k1["reasonCode"]["text"]
    assert evidence_of(found["k4"][0]) == {"Observation/k4-egfr0", "Observation/k4-egfr2"}
    s1 = found["s1"][0]
    assert s1["reasonCode"]["text"] == ("Smoker aged 40 or over without a spirometry in 5 years: age 40, smoking status "
                                        "Smoker on 2026-06-01, no spirometry in 5 years, no COPD diagnosis "
                                        "(rule set case-finding 2026.1)")
    assert evidence_of(s1) == {"Observation/s1-72166-2-0"}
    d1 = found["d1"][0]
    assert {"type": {"text": "programme"}, "valueCanonical": programs["diabetes-type-2"].canonical} in d1["input"]
    assert evidence_of(d1) == {"Condition/d1-diabetes", "MedicationStatement/d1-med0"}


def test_candidates_come_from_searches_not_the_whole_population(repo, rules):
    load(repo)
    found = candidates(repo, rules, DAY)
    assert "s2" in found  # a smoker: read, then too young
    assert "d5" in found  # ATC classes cover sub-codes: the system is searched, the class tested after reading
    assert set(PROPOSED) <= set(found)
    no_facts = patient("z1", "1950-01-01")
    load(repo, [no_facts])
    assert "z1" not in candidates(repo, rules, DAY)


def test_a_rerun_writes_nothing_and_a_rejection_stands_for_the_same_evidence(repo, rules, programs):
    load(repo)
    find_cases(repo, rules, programs, DAY)
    again = find_cases(repo, rules, programs, DAY)
    assert again["proposed"] == 0 and again["already-proposed"] == 8
    (s1,) = proposals(repo)["s1"]
    _move(repo, s1["id"], "rejected")
    after = find_cases(repo, rules, programs, DAY)
    assert after["proposed"] == 0 and after["seen-before"] == 1 and after["already-proposed"] == 7
    load(repo, [smoker("s1", "2026-10-01", n=1)])  # a newer smoking status: new evidence
    newer = find_cases(repo, rules, programs, DAY)
    assert newer["proposed"] == 1
    tasks = sorted(proposals(repo)["s1"], key=lambda t: t["status"])
    assert [t["status"] for t in tasks] == ["rejected", "requested"]
    assert evidence_of(tasks[1]) == {"Observation/s1-72166-2-1"}


def _move(repo, task_id: str, *statuses: str) -> None:
    """Along the FHIR Task state machine, one legal step at a time, as the worklist's buttons do."""
    for status in statuses:
        with repo.unit_of_work(SYSTEM) as uow:
            stored = uow.read("Task", task_id)
            uow.update({**stored.resource, "status": status}, if_match=stored.version)


def test_accepting_a_proposal_takes_the_inclusion_path(repo, rules, programs):
    load(repo)
    find_cases(repo, rules, programs, DAY)
    (d1,) = proposals(repo)["d1"]
    _move(repo, d1["id"], "accepted", "in-progress", "completed")
    counts = Counts()
    handle_task(repo, programs, d1["id"], datetime(2026, 11, 2, 9, tzinfo=timezone.utc), counts)
    assert counts["included"] == 1
    plan = repo.read("CarePlan", ids.careplan_id("d1", "diabetes-type-2")).resource
    assert plan["status"] == "draft"
    rerun = find_cases(repo, rules, programs, DAY)
    assert rerun["already-enrolled"] == 2 and rerun["proposed"] == 0  # d1 now, d4 from the start
    (h1,) = proposals(repo)["h1"]  # suspected heart failure, no diagnosis yet: accepted, nothing to enrol
    _move(repo, h1["id"], "accepted", "in-progress", "completed")
    counts = Counts()
    handle_task(repo, programs, h1["id"], datetime(2026, 11, 2, 9, tzinfo=timezone.utc), counts)
    assert counts["not-included"] == 1


def test_an_open_proposal_that_no_longer_stands_is_withdrawn(repo, rules, programs):
    load(repo)
    find_cases(repo, rules, programs, DAY)
    found = proposals(repo)
    with repo.unit_of_work(SYSTEM) as uow:
        h1 = uow.read("Patient", "h1")
        uow.update({**h1.resource, "deceasedDateTime": "2026-10-20"}, if_match=h1.version)
        uow.create_if_absent(consent("h3", "inactive"))
        uow.create_if_absent({"resourceType": "CarePlan", "id": ids.careplan_id("k1", "chronic-kidney-disease"),
                              "status": "active", "intent": "plan", "subject": {"reference": "Patient/k1"}})
    again = find_cases(repo, rules, programs, DAY)
    assert again["withdrawn-not-in-use"] == 1 and again["withdrawn-consent"] == 1 and again["withdrawn-enrolled"] == 1
    assert again["proposed"] == 0 and again["already-proposed"] == 5
    for pid, why in (("h1", "no longer in use"), ("h3", "withdrew their consent"), ("k1", "already in the chronic-kidney")):
        task = repo.read("Task", found[pid][0]["id"]).resource
        assert task["status"] == "cancelled" and why in task["statusReason"]["text"], task
        assert r4_errors(task) == []
    assert find_cases(repo, rules, programs, DAY)["withdrawn-consent"] == 0  # cancelled once
