"""Erasure (GDPR art. 17): expunge removes a patient's whole record or one resource for good, on
every store; nothing of it can be read, searched, found in history, claimed again by a
conditional-create key or delivered from the outbox; other patients are untouched; only the system
may; a rollback undoes it."""

from __future__ import annotations

import pytest
from access_world import NURSE, directory, load, patient_resources, scoped

from careflow.access.principal import SYSTEM
from careflow.errors import Forbidden, NotFound
from careflow.fhir.search_query import parse_search


@pytest.fixture
def world(repo):
    load(repo, directory() + patient_resources("p1") + patient_resources("p2"))
    with repo.unit_of_work(SYSTEM) as uow:  # a second version, a conditional create, an outbox event
        uow.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Famp1", "given": ["Jan", "Piet"]}],
                    "generalPractitioner": [{"reference": "PractitionerRole/gp1"}]})
        uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                    "identifier": [{"system": "urn:x", "value": "obs-p1"}], "subject": {"reference": "Patient/p1"}},
                   if_none_exist=parse_search("Observation", [("identifier", "urn:x|obs-p1")]))
        uow.outbox_add("patient.ended", {"patient": "p1", "reference": "Patient/p1"})
        uow.outbox_add("patient.ended", {"patient": "p2", "reference": "Patient/p2"})
    return repo


def _count(repo, rtype: str, params=()) -> int:
    with repo.unit_of_work(SYSTEM) as uow:
        return uow.search(parse_search(rtype, [*params, ("_summary", "count")])).total


def test_expunging_a_patient_erases_their_whole_record_and_nothing_else(world):
    before_p2 = {t: _count(world, t, [("patient" if t != "Patient" else "_id", "p2")])
                 for t in ("Patient", "Observation", "Task", "CarePlan")}
    with world.unit_of_work(SYSTEM) as uow:
        removed = uow.expunge("Patient", "p1")
    assert ("Patient", "p1") in removed and ("Task", "task-p1") in removed and ("CareTeam", "ct-p1") in removed
    assert len(removed) == len(patient_resources("p1")) + 1  # and the conditional create
    with world.unit_of_work(SYSTEM) as uow:
        for rtype, rid in removed:
            with pytest.raises(NotFound):
                uow.read(rtype, rid)
            with pytest.raises(NotFound):
                uow.vread(rtype, rid, 1)
        total, page = uow.history(None, None, since=None, count=1000, offset=0)
        assert not [s for s in page if (s.type, s.id) in set(removed)]
    assert _count(world, "Patient", [("family", "Famp1")]) == 0
    assert _count(world, "Observation", [("identifier", "urn:x|obs-p1")]) == 0
    assert _count(world, "Observation", [("subject", "Patient/p1")]) == 0
    assert {t: _count(world, t, [("patient" if t != "Patient" else "_id", "p2")])
            for t in ("Patient", "Observation", "Task", "CarePlan")} == before_p2
    events = world.outbox_claim(100)
    assert [e.payload["patient"] for e in events] == ["p2"]
    # the conditional-create key is gone with it: the same create makes a new resource
    with world.unit_of_work(SYSTEM) as uow:
        _, created = uow.create({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                                 "identifier": [{"system": "urn:x", "value": "obs-p1"}]},
                                if_none_exist=parse_search("Observation", [("identifier", "urn:x|obs-p1")]))
    assert created


def test_expunging_one_resource_removes_every_version_of_it_only(world):
    with world.unit_of_work(SYSTEM) as uow:
        assert uow.expunge("Observation", "weight-p1") == [("Observation", "weight-p1")]
        with pytest.raises(NotFound):
            uow.vread("Observation", "weight-p1", 1)
        assert uow.read("Patient", "p1").version == 2
        assert uow.expunge("Observation", "never-there") == []


def test_only_the_system_may_expunge_and_a_rollback_undoes_it(world):
    for who in (NURSE, scoped(SYSTEM, "system/*.rs"), scoped(SYSTEM, "system/Patient.cruds")):
        with pytest.raises(Forbidden), world.unit_of_work(who) as uow:
            uow.expunge("Patient", "p1")
    with pytest.raises(RuntimeError), world.unit_of_work(SYSTEM) as uow:
        uow.expunge("Patient", "p1")
        raise RuntimeError("changed my mind")
    assert _count(world, "Task", [("patient", "p1")]) == 1
    with world.unit_of_work(scoped(SYSTEM, "system/*.cruds")) as uow:
        assert uow.expunge("Patient", "p1")
