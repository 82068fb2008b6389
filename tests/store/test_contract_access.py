"""The access rules, narrowed inside the store: the same answers on memory, SQLite and PostgreSQL.

Consent, care-team relationship, the GMD, exclusions, the access matrix, granular scopes,
break-the-glass and the write rules; includes, chains and history never show what a search would not.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from access_world import (
    COACH,
    GP,
    NURSE,
    OUTSIDER,
    PHARMACIST,
    consent,
    directory,
    load,
    patient_principal,
    patient_resources,
    scoped,
)

from careflow.access.principal import SYSTEM, Principal
from careflow.errors import Forbidden, InvalidResource, NotFound
from careflow.fhir.search_query import parse_search


def _ids(repo, principal: Principal, rtype: str, params=()) -> list[str]:
    with repo.unit_of_work(principal) as uow:
        return sorted(s.id for s in uow.search(parse_search(rtype, [*params, ("_count", "100")])).matches)


def _total(repo, principal: Principal, rtype: str, params=()) -> int:
    with repo.unit_of_work(principal) as uow:
        return uow.search(parse_search(rtype, [*params, ("_summary", "count")])).total


@pytest.fixture
def world(repo):
    load(repo, directory() + patient_resources("p1") + patient_resources("p2", consented=False))
    return repo


def test_the_gp_of_the_gmd_sees_everything_of_their_patients_consent_or_not(world):
    assert _ids(world, GP, "Observation") == ["egfr-p1", "egfr-p2", "lab-p1", "lab-p2", "weight-p1", "weight-p2"]
    assert _ids(world, GP, "Patient") == ["p1", "p2"]


def test_the_matrix_narrows_each_discipline_and_consent_gates_the_team(world):
    # the nurse sees vital signs of the consenting patient only; the pharmacist also renal function
    assert _ids(world, NURSE, "Observation") == ["weight-p1"]
    assert _ids(world, PHARMACIST, "Observation") == ["egfr-p1", "weight-p1"]
    assert _ids(world, COACH, "Observation") == ["egfr-p1", "lab-p1", "weight-p1"]
    assert _ids(world, NURSE, "Patient") == ["p1"]
    assert _total(world, NURSE, "Observation") == 1
    assert _ids(world, OUTSIDER, "Observation") == [] and _ids(world, OUTSIDER, "Patient") == []
    # directory data is for every signed-in caller
    assert "out1" in _ids(world, OUTSIDER, "PractitionerRole")


def test_a_hidden_resource_reads_as_absent(world):
    for principal in (NURSE, OUTSIDER):
        with world.unit_of_work(principal) as uow:
            with pytest.raises(NotFound) as hidden:
                uow.read("Observation", "lab-p1")
            with pytest.raises(NotFound) as absent:
                uow.read("Observation", "no-such-thing")
            assert str(hidden.value).replace("lab-p1", "X") == str(absent.value).replace("no-such-thing", "X")
            with pytest.raises(NotFound):
                uow.vread("Observation", "lab-p1", 1)
            assert uow.history("Observation", "lab-p1")[0] == 0


def test_withdrawing_consent_counts_on_the_next_request(world):
    assert _ids(world, NURSE, "Task") == ["task-p1"]
    load(world, [consent("p1", status="inactive")])
    assert _ids(world, NURSE, "Task") == []
    assert _ids(world, GP, "Task") == ["task-p1", "task-p2"]  # the GMD holder keeps their patient
    load(world, [consent("p1")])
    assert _ids(world, NURSE, "Task") == ["task-p1"]


def test_an_exclusion_of_a_practitioner_or_their_organisation_wins(world):
    load(world, [consent("p1", deny=["PractitionerRole/pharm1"])])
    assert _ids(world, PHARMACIST, "Observation") == []
    assert _ids(world, NURSE, "Observation") == ["weight-p1"]
    load(world, [consent("p1", deny=["Organization/org-1"])])
    assert _ids(world, NURSE, "Observation") == [] and _ids(world, COACH, "Patient") == []


def test_a_relationship_granted_at_inclusion_expires(repo):
    past = (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat()
    load(repo, directory() + patient_resources("p3", team_end=past))
    assert _ids(repo, NURSE, "Observation") == []
    assert _ids(repo, PHARMACIST, "Observation") == ["egfr-p3", "weight-p3"]


def test_a_patient_sees_their_own_record_only(world):
    me = patient_principal("p1")
    assert _ids(world, me, "Observation") == ["egfr-p1", "lab-p1", "weight-p1"]
    assert _ids(world, me, "Patient") == ["p1"]
    assert "gp1" in _ids(world, me, "PractitionerRole")


def test_granular_scopes_return_exactly_the_matching_resources_over_all_pages(world):
    coach = scoped(COACH, "user/Observation.rs?category=vital-signs", "user/Patient.rs")
    assert _ids(world, coach, "Observation") == ["weight-p1"]
    with world.unit_of_work(coach) as uow:
        page = uow.search(parse_search("Observation", [("_count", "1"), ("_total", "accurate")]))
        assert page.total == 1
    system = scoped(SYSTEM, "system/Observation.rs?category=laboratory")
    assert _ids(world, system, "Observation") == ["egfr-p1", "egfr-p2", "lab-p1", "lab-p2"]
    assert _ids(world, system, "Patient") == []


def test_only_an_unfiltered_all_type_system_scope_is_unlimited(world):
    """``system/*.cruds`` is the engine's reach (the store skips its per-row checks); anything less
    is still narrowed and checked, on reads and on writes."""
    assert SYSTEM.unlimited and scoped(SYSTEM, "system/*.cruds").unlimited
    for partial in ("system/*.rs", "system/Patient.cruds", "system/*.cruds?category=laboratory"):
        assert not scoped(SYSTEM, partial).unlimited, partial
    assert not scoped(NURSE, "user/*.cruds").unlimited
    everything = scoped(SYSTEM, "system/*.cruds")
    assert _ids(world, everything, "Patient") == _ids(world, SYSTEM, "Patient") == ["p1", "p2"]
    with world.unit_of_work(everything) as uow:
        uow.update({"resourceType": "Observation", "id": "by-service", "status": "final", "code": {"text": "x"},
                    "subject": {"reference": "Patient/p2"}})
    reader = scoped(SYSTEM, "system/*.rs")
    with pytest.raises(Forbidden), world.unit_of_work(reader) as uow:
        uow.update({"resourceType": "Observation", "id": "by-reader", "status": "final", "code": {"text": "x"},
                    "subject": {"reference": "Patient/p2"}})


def test_includes_chains_and_history_never_show_more_than_a_search(world):
    with world.unit_of_work(NURSE) as uow:
        res = uow.search(parse_search("Patient", [("_revinclude", "Observation:subject"),
                                                  ("_revinclude:iterate", "Task:based-on"),
                                                  ("_revinclude", "CarePlan:subject")]))
        assert sorted(s.id for s in res.included) == ["cp-p1", "task-p1", "weight-p1"]
        res = uow.search(parse_search("Task", [("_include", "Task:patient"), ("_include", "*")]))
        assert sorted(s.reference for s in res.included) == ["CarePlan/cp-p1", "Patient/p1", "PractitionerRole/nurse1"]
        # a chain is no way to probe: p2 (no consent) is not found through its name
        assert uow.search(parse_search("Observation", [("subject.family", "Famp2")])).total in (0, None)
        assert [s.id for s in uow.search(parse_search("Task", [("patient.family", "Famp2")])).matches] == []
        assert [s.id for s in uow.search(parse_search("Task", [("patient.family", "Famp1")])).matches] == ["task-p1"]
        total, versions = uow.history("Observation")
        assert total == 1 and [v.id for v in versions] == ["weight-p1"]
        total, versions = uow.history()
        assert {v.type for v in versions} <= {"Patient", "Consent", "CareTeam", "Observation", "CarePlan", "Task",
                                              "PractitionerRole"}
        assert all(v.id.endswith("p1") or v.type == "PractitionerRole" for v in versions)


def test_break_the_glass_opens_one_patient_for_a_day_and_tells_the_gp(world):
    assert _ids(world, OUTSIDER, "Observation") == []
    with world.unit_of_work(OUTSIDER) as uow:
        with pytest.raises(InvalidResource):
            uow.grant_emergency("p2", "urgent")
        grant = uow.grant_emergency("p2", "unconscious at home, needs medication list")
    assert grant.full and grant.expires is not None
    assert grant.expires <= (datetime.now(timezone.utc) + timedelta(hours=24, minutes=1)).replace(tzinfo=None)
    assert _ids(world, OUTSIDER, "Observation") == ["egfr-p2", "lab-p2", "weight-p2"]
    with world.unit_of_work(GP) as uow:
        told = uow.search(parse_search("Communication", [("subject", "Patient/p2")])).matches
    assert len(told) == 1 and told[0].resource["recipient"] == [{"reference": "PractitionerRole/gp1"}]
    with world.unit_of_work(patient_principal("p1")) as uow:
        with pytest.raises(Forbidden):
            uow.grant_emergency("p1", "a reason long enough")


def test_writes_follow_the_plan(world):
    task = {"resourceType": "Task", "id": "task-p1", "status": "requested", "intent": "order",
            "for": {"reference": "Patient/p1"}, "basedOn": [{"reference": "CarePlan/cp-p1"}],
            "owner": {"reference": "PractitionerRole/nurse1"}}
    # the owner progresses their Task; someone else may not; nobody changes its content but coordinators
    with world.unit_of_work(PHARMACIST) as uow:
        with pytest.raises(Forbidden):
            uow.update({**task, "status": "accepted"})
    with world.unit_of_work(NURSE) as uow:
        uow.update({**task, "status": "accepted"})
    with world.unit_of_work(NURSE) as uow:
        with pytest.raises(Forbidden):
            uow.update({**task, "status": "accepted", "description": "changed"})
        with pytest.raises(Forbidden):
            uow.update({**task, "status": "cancelled"})
        with pytest.raises(Forbidden):
            uow.create({"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/p1"}})
        # a proposal is open to any team member
        uow.create({"resourceType": "Task", "status": "requested", "intent": "proposal", "for": {"reference": "Patient/p1"}})
    with world.unit_of_work(COACH) as uow:
        uow.update({**task, "status": "cancelled"})
    # nobody edits another discipline's output; writing about a patient one cannot see is refused
    with world.unit_of_work(NURSE) as uow:
        with pytest.raises((Forbidden, NotFound)):
            uow.update({"resourceType": "Observation", "id": "lab-p1", "status": "amended", "code": {"text": "x"},
                        "subject": {"reference": "Patient/p1"}})
        uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                              "code": "vital-signs"}]}],
                    "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "PractitionerRole/nurse1"}]})
    with world.unit_of_work(PHARMACIST) as uow:
        with pytest.raises(Forbidden):
            uow.update({"resourceType": "Observation", "id": "weight-p1", "status": "amended", "code": {"text": "x"},
                        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                  "code": "vital-signs"}]}],
                        "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "PractitionerRole/nurse1"}]})
    with world.unit_of_work(OUTSIDER) as uow:
        with pytest.raises(Forbidden):
            uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "subject": {"reference": "Patient/p1"}})
        with pytest.raises(Forbidden):
            uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "subject": {"reference": "Patient/nobody"}})
    # a patient records measurements about themselves only
    with world.unit_of_work(patient_principal("p1")) as uow:
        uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}})
        with pytest.raises(Forbidden):
            uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                        "subject": {"reference": "Patient/p2"}})
        with pytest.raises(Forbidden):
            uow.update({**task, "status": "completed"})


def test_orphan_patient_data_is_seen_by_nobody_but_the_system(world):
    load(world, [{"resourceType": "Observation", "id": "orphan", "status": "final", "code": {"text": "x"}}])
    for principal in (GP, NURSE, patient_principal("p1")):
        assert "orphan" not in _ids(world, principal, "Observation")
    with world.unit_of_work(SYSTEM) as uow:
        assert uow.read("Observation", "orphan").id == "orphan"


def test_a_shared_view_counts_only_consented_patients_and_reads_summary_reports(world):
    """The dashboard's readers (careflow.population.shared_views): the system and a coach marked
    ``shared`` count only patients whose sharing Consent holds, and read summary MeasureReports
    (no subject), which a practitioner's own view never shows."""
    from dataclasses import replace

    region, coach = replace(SYSTEM, shared=True), replace(COACH, shared=True)
    assert _ids(world, SYSTEM, "Patient") == ["p1", "p2"]
    assert _ids(world, region, "Patient") == ["p1"] and _total(world, region, "Task") == 1
    assert _ids(world, coach, "Patient") == ["p1"]
    summary = {"resourceType": "MeasureReport", "id": "mr-summary", "status": "complete", "type": "summary",
               "measure": "https://careflow.dev/fhir/Measure/x", "period": {"start": "2026-01-01", "end": "2026-01-31"}}
    load(world, [summary, {**summary, "id": "mr-p2", "type": "individual", "subject": {"reference": "Patient/p2"}}])
    assert _ids(world, region, "MeasureReport") == ["mr-summary"] and _ids(world, coach, "MeasureReport") == ["mr-summary"]
    assert _ids(world, COACH, "MeasureReport") == [] and _ids(world, GP, "MeasureReport") == ["mr-p2"]
    load(world, [{"resourceType": "Observation", "id": "orphan", "status": "final", "code": {"text": "x"}}])
    assert "orphan" not in _ids(world, region, "Observation")  # patient data without a patient stays hidden
    load(world, [consent("p1", status="inactive")])
    assert _ids(world, region, "Patient") == [] and _total(world, region, "Task") == 0
    load(world, [consent("p2")])
    assert _ids(world, region, "Patient") == ["p2"]
