"""Contract: create/read/update/delete, versions, history, atomicity, listeners, outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest

from careflow.access.principal import SYSTEM
from careflow.errors import (
    Gone,
    InvalidResource,
    NotFound,
    PreconditionFailed,
    ResourceConflict,
    VersionConflict,
)
from careflow.fhir.search_query import parse_search


def patient(**extra):
    return {"resourceType": "Patient", "name": [{"family": "Peeters", "given": ["Jan"]}], **extra}


def test_create_assigns_server_id_and_meta(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        stored, created = uow.create(patient(id="client-chosen", meta={"profile": ["p"]}))
    assert created and stored.version == 1 and not stored.deleted
    assert stored.id != "client-chosen" and len(stored.id) == 36
    body = stored.resource
    assert body["id"] == stored.id
    assert body["meta"] == {"profile": ["p"], "versionId": "1", "lastUpdated": body["meta"]["lastUpdated"]}
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert stored.last_updated.tzinfo is not None
    again = repo.read("Patient", stored.id)
    assert again == stored


def test_input_dict_is_not_mutated(repo):
    original = patient(id="p1")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(original)
    assert original == patient(id="p1")


def test_read_unknown_is_not_found(repo):
    with pytest.raises(NotFound) as info:
        repo.read("Patient", "nope")
    assert info.value.http_status == 404


def test_update_creates_with_client_id_then_versions(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        first, created = uow.update(patient(id="p1"))
    assert created and first.version == 1 and first.id == "p1"
    with repo.unit_of_work(SYSTEM) as uow:
        second, created = uow.update(patient(id="p1", gender="male"))
    assert not created and second.version == 2 and second.resource["meta"]["versionId"] == "2"
    assert second.last_updated >= first.last_updated
    assert repo.read("Patient", "p1").resource["gender"] == "male"
    assert "gender" not in repo.vread("Patient", "p1", 1).resource
    with pytest.raises(NotFound):
        repo.vread("Patient", "p1", 3)


def test_if_match(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="p1"))
    with repo.unit_of_work(SYSTEM) as uow:
        s, _ = uow.update(patient(id="p1", gender="female"), if_match=1)
    assert s.version == 2
    with pytest.raises(VersionConflict) as info:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(patient(id="p1", gender="male"), if_match=1)
    assert info.value.current == 2 and info.value.http_status == 412
    with pytest.raises(NotFound):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(patient(id="absent"), if_match=1)


def test_soft_delete_keeps_history_and_read_is_gone(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="p1"))
    with repo.unit_of_work(SYSTEM) as uow:
        deleted = uow.delete("Patient", "p1")
    assert deleted is not None and deleted.deleted and deleted.version == 2 and deleted.resource is None
    with pytest.raises(Gone) as info:
        repo.read("Patient", "p1")
    assert info.value.http_status == 410
    assert repo.vread("Patient", "p1", 2).deleted
    assert repo.vread("Patient", "p1", 1).resource["id"] == "p1"
    with repo.unit_of_work(SYSTEM) as uow:
        assert uow.delete("Patient", "p1") is None  # idempotent
        assert uow.delete("Patient", "never") is None
    assert repo.search(parse_search("Patient", [("family", "peeters")])).total == 0
    with repo.unit_of_work(SYSTEM) as uow:
        revived, created = uow.update(patient(id="p1"))
    assert created and revived.version == 3
    assert repo.search(parse_search("Patient", [("family", "peeters")])).total == 1


def test_delete_with_stale_if_match(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="p1"))
        uow.update(patient(id="p1"))
    with pytest.raises(VersionConflict):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.delete("Patient", "p1", if_match=1)
    assert repo.read("Patient", "p1").version == 2


def test_history_newest_first_with_since_and_paging(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="p1"))
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="p1", gender="male"))
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active"})
    with repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Patient", "p1")
    total, versions = repo.history("Patient", "p1")
    assert total == 3 and [v.version for v in versions] == [3, 2, 1]
    total, page = repo.history("Patient", "p1", count=1, offset=1)
    assert total == 3 and [v.version for v in page] == [2]
    total, everything = repo.history()
    assert total == 4 and [(v.type, v.version) for v in everything] == [
        ("Patient", 3), ("Goal", 1), ("Patient", 2), ("Patient", 1)]
    assert repo.history("Goal")[0] == 1
    since = versions[1].last_updated
    total, recent = repo.history("Patient", "p1", since=since)
    assert [v.version for v in recent] == [3, 2]
    assert repo.history("Patient", "p1", since=versions[0].last_updated + timedelta(seconds=1))[0] == 0
    with pytest.raises(NotFound):
        repo.history("Patient", "nobody")


def test_unit_of_work_is_atomic(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="keep"))
    with pytest.raises(RuntimeError):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(patient(id="keep", gender="male"))
            uow.create(patient())
            uow.update({"resourceType": "Goal", "id": "g1"})
            uow.delete("Patient", "keep")
            uow.outbox_add("t", {"x": 1})
            raise RuntimeError("boom")
    assert repo.read("Patient", "keep").version == 1
    assert repo.search(parse_search("Patient", [])).total == 1
    with pytest.raises(NotFound):
        repo.read("Goal", "g1")
    assert repo.history()[0] == 1
    assert repo.outbox_claim(10) == []


def test_reads_inside_a_unit_of_work_see_its_writes(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        s, _ = uow.create(patient(identifier=[{"system": "s", "value": "1"}]))
        assert uow.read("Patient", s.id).version == 1
        assert uow.search(parse_search("Patient", [("identifier", "s|1")])).total == 1
        uow.update({**s.resource, "gender": "male"})
        assert uow.search(parse_search("Patient", [("gender", "male")])).total == 1
        assert uow.search(parse_search("Patient", [("identifier", "s|1")])).total == 1
        assert uow.history("Patient", s.id)[0] == 2


def test_create_if_absent_leaves_existing_untouched(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        first, created = uow.create_if_absent({"resourceType": "Task", "id": "t1", "status": "requested"})
    assert created and first.version == 1
    with repo.unit_of_work(SYSTEM) as uow:
        again, created = uow.create_if_absent({"resourceType": "Task", "id": "t1", "status": "cancelled"})
    assert not created and again.resource["status"] == "requested" and again.version == 1
    with repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Task", "t1")
        gone, created = uow.create_if_absent({"resourceType": "Task", "id": "t1", "status": "ready"})
    assert not created and gone.deleted and gone.version == 2


def test_conditional_create(repo):
    q = parse_search("Patient", [("identifier", "https://ssin|123")], strict=True)
    body = patient(identifier=[{"system": "https://ssin", "value": "123"}])
    with repo.unit_of_work(SYSTEM) as uow:
        first, created = uow.create(body, if_none_exist=q)
    assert created
    with repo.unit_of_work(SYSTEM) as uow:
        again, created = uow.create(body, if_none_exist=q)
    assert not created and again.id == first.id
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create(body)  # an unconditional duplicate
    with pytest.raises(PreconditionFailed) as info:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create(body, if_none_exist=q)
    assert info.value.matches == 2


def test_conditional_create_after_match_was_deleted(repo):
    q = parse_search("Patient", [("identifier", "s|9")], strict=True)
    body = patient(identifier=[{"system": "s", "value": "9"}])
    with repo.unit_of_work(SYSTEM) as uow:
        first, _ = uow.create(body, if_none_exist=q)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Patient", first.id)
    with repo.unit_of_work(SYSTEM) as uow:
        second, created = uow.create(body, if_none_exist=q)
    assert created and second.id != first.id


def test_conditional_update(repo):
    q = parse_search("Patient", [("identifier", "s|1")], strict=True)
    body = patient(identifier=[{"system": "s", "value": "1"}])
    with repo.unit_of_work(SYSTEM) as uow:
        made, created = uow.conditional_update(body, q)
    assert created and made.version == 1
    with repo.unit_of_work(SYSTEM) as uow:
        changed, created = uow.conditional_update({**body, "gender": "male"}, q)
    assert not created and changed.id == made.id and changed.version == 2
    with pytest.raises(ResourceConflict):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.conditional_update({**body, "id": "other"}, q)
    with pytest.raises(VersionConflict):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.conditional_update(body, q, if_match=1)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create(body)
    with pytest.raises(PreconditionFailed):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.conditional_update(body, q)
    with repo.unit_of_work(SYSTEM) as uow:
        withid, created = uow.conditional_update(
            patient(id="given", identifier=[{"system": "s", "value": "2"}]),
            parse_search("Patient", [("identifier", "s|2")]),
        )
    assert created and withid.id == "given"


def test_conditional_delete(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="a", gender="male"))
        uow.update(patient(id="b", gender="male"))
        uow.update(patient(id="c", gender="female"))
    male = parse_search("Patient", [("gender", "male")])
    with pytest.raises(PreconditionFailed):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.conditional_delete("Patient", male)
    with repo.unit_of_work(SYSTEM) as uow:
        deleted = uow.conditional_delete("Patient", male, multiple=True)
    assert sorted(d.id for d in deleted) == ["a", "b"]
    with repo.unit_of_work(SYSTEM) as uow:
        assert [d.id for d in uow.conditional_delete("Patient", parse_search("Patient", [("gender", "female")]))] == ["c"]
        assert uow.conditional_delete("Patient", male) == []


@pytest.mark.parametrize(
    "bad",
    [{"name": "x"}, {"resourceType": "not a type"}, {"resourceType": "Patient", "id": "bad id!"}, ["list"]],
)
def test_invalid_resources_are_refused(repo, bad):
    with pytest.raises(InvalidResource):
        with repo.unit_of_work(SYSTEM) as uow:
            if isinstance(bad, dict) and "id" in bad:
                uow.update(bad)
            else:
                uow.create(bad)


def test_update_without_id_is_refused(repo):
    with pytest.raises(InvalidResource):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(patient())


def test_any_resource_type_can_be_stored_and_searched_by_id(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "MedicationRequest", "id": "m1", "status": "active"})
    assert repo.read("MedicationRequest", "m1").resource["status"] == "active"
    assert [s.id for s in repo.search(parse_search("MedicationRequest", [("_id", "m1")])).matches] == ["m1"]


def test_listeners_run_inside_the_transaction(repo):
    seen = []

    def on_write(action, stored, uow):
        seen.append((action, stored.type, stored.version))
        if stored.type == "Observation" and action == "create":
            uow.outbox_add("observation.created", {"id": stored.id})

    repo.add_listener(on_write)
    with repo.unit_of_work(SYSTEM) as uow:
        obs, _ = uow.create({"resourceType": "Observation", "status": "final"})
        uow.update(patient(id="p1"))
        uow.update(patient(id="p1"))
        uow.delete("Patient", "p1")
    assert seen == [("create", "Observation", 1), ("create", "Patient", 1), ("update", "Patient", 2),
                    ("delete", "Patient", 3)]
    events = repo.outbox_claim(10)
    assert [(e.topic, e.payload) for e in events] == [("observation.created", {"id": obs.id})]

    def veto(action, stored, uow):
        raise PermissionError("not allowed")

    repo.add_listener(veto)
    with pytest.raises(PermissionError):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create({"resourceType": "Observation", "status": "final"})
    assert repo.search(parse_search("Observation", [])).total == 1
    assert repo.outbox_claim(10) == []  # the first event is leased, the vetoed one never existed


def test_outbox_claim_and_done(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        for i in range(5):
            uow.outbox_add("topic", {"n": i})
    first = repo.outbox_claim(3)
    assert [e.payload["n"] for e in first] == [0, 1, 2]
    assert first[0].created.tzinfo is not None
    second = repo.outbox_claim(10)
    assert [e.payload["n"] for e in second] == [3, 4]
    assert repo.outbox_claim(10) == []
    repo.outbox_done([e.id for e in first + second])
    assert repo.outbox_claim(10) == []


def test_history_since_accepts_naive_utc(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.update(patient(id="p1"))
    naive = stored.last_updated.replace(tzinfo=None)
    assert repo.history("Patient", "p1", since=naive)[0] == 1
    assert repo.history("Patient", "p1", since=naive + timedelta(seconds=1))[0] == 0


def test_stored_is_immutable_and_offers_raw_json(repo):
    import orjson

    with repo.unit_of_work(SYSTEM) as uow:
        made, _ = uow.update(patient(id="p1"))
    read = repo.read("Patient", "p1")
    assert orjson.loads(read.raw) == read.resource == made.resource
    assert orjson.loads(made.raw) == made.resource
    with pytest.raises(AttributeError):
        read.version = 9
    with repo.unit_of_work(SYSTEM) as uow:
        gone = uow.delete("Patient", "p1")
    assert gone.raw is None and gone.resource is None


def test_repeated_writes_in_one_unit_of_work_leave_only_the_last_index(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient(id="a", gender="male"))
        uow.update(patient(id="b", gender="male"))
        uow.update(patient(id="a", gender="female"))
        assert uow.read("Patient", "a").version == 2
        uow.update(patient(id="a", gender="other"))
        uow.update(patient(id="b", gender="unknown"))
    def ids(gender):
        return sorted(s.id for s in repo.search(parse_search("Patient", [("gender", gender)])).matches)

    assert ids("male") == [] and ids("female") == [] and ids("other") == ["a"] and ids("unknown") == ["b"]
    assert [v.version for v in repo.history("Patient", "a")[1]] == [3, 2, 1]
