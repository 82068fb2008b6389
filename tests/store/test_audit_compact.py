"""The log stores compact records and serves AuditEvents: what is chained is short, what an auditor
reads is the full BALP event, the patient of each returned resource is read with its row (not by
parsing the resource again), and entries written in the earlier full form are still served and
verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from store_backends import isolated_repository

from careflow.access.principal import SYSTEM
from careflow.audit.chain import entry_mac
from careflow.audit.query import AuditQuery
from careflow.audit.record import expand
from careflow.fhir.search_query import parse_search
from careflow.store.port import UNKNOWN


@pytest.fixture(params=["sqlite", "postgres"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with isolated_repository(request.param, tmp_path) as r:
        yield r


def _load(repo: Any, tasks: int) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create({"resourceType": "Patient", "id": "p1", "gender": "male"})
        for i in range(tasks):
            uow.create({"resourceType": "Task", "status": "requested", "intent": "order",
                        "for": {"reference": "Patient/p1"}, "description": f"t{i}"})


def test_a_search_is_stored_short_and_served_as_a_full_audit_event(repo: Any) -> None:
    _load(repo, 30)
    found = repo.search(parse_search("Task", [("status", "requested"), ("_count", "50")]))
    assert len(found.matches) == 30
    assert all(s.compartment == "p1" for s in found.matches)  # read with the row
    repo.audit.flush()
    with repo.engine.connect() as conn:
        content = bytes(conn.execute(text("SELECT content FROM audit_event ORDER BY seq DESC LIMIT 1")).scalar())
    stored = orjson.loads(content)
    assert "resourceType" not in stored and stored["s"] == "search-type" and stored["pt"] == ["p1"]
    assert len(content) < 60 * 30  # about 40 bytes per returned Task
    total, events = repo.audit.search(AuditQuery(patients=["Patient/p1"]))
    event = orjson.loads(events[0])
    assert event["resourceType"] == "AuditEvent" and event["subtype"][0]["code"] == "search-type"
    whats = [e["what"]["reference"] for e in event["entity"] if "what" in e]
    assert whats[0] == "Patient/p1" and len(whats) == 31 and all("/_history/1" in w for w in whats[1:])
    assert event["meta"]["profile"][0].endswith("PatientQuery")
    assert repo.audit.verify().ok


def test_an_older_version_read_from_history_is_not_given_the_current_patient(repo: Any) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        task = uow.create({"resourceType": "Task", "status": "requested", "intent": "order",
                           "for": {"reference": "Patient/a"}})[0]
        uow.update({**task.resource, "for": {"reference": "Patient/b"}})
    with repo.unit_of_work(SYSTEM) as uow:
        versions = {s.version: s for s in uow.history("Task", task.id)[1]}
    assert versions[2].compartment == "b" and versions[1].compartment is UNKNOWN


def test_an_entry_in_the_earlier_full_form_is_served_and_verified(repo: Any) -> None:
    _load(repo, 1)
    repo.audit.flush()
    with repo.engine.connect() as conn:
        seq, content, prev = conn.execute(text(
            "SELECT seq, content, prev_mac FROM audit_event ORDER BY seq DESC LIMIT 1")).one()
    full = orjson.dumps(expand(orjson.loads(bytes(content))), option=orjson.OPT_SORT_KEYS)
    key = repo.audit._key
    with repo.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE audit_event SET content = :c, mac = :m WHERE seq = :s"),
                     {"c": full, "m": entry_mac(key, seq, full, bytes(prev)), "s": seq})
    assert repo.audit.verify().ok
    _total, events = repo.audit.search(AuditQuery(patients=["Patient/p1"]))
    assert orjson.loads(events[0]) == orjson.loads(full)
