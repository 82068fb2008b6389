"""Canary through the real flows: a patient's identifying values reach neither Prefect's database,
its result storage and logs, nor careflow's store file, its WAL or its outbox.

The enrolment, sweep and event flows run against the session's Prefect API (a real server on a
temporary SQLite database) over a careflow store holding one patient with made-up, distinctive
values; afterwards every file Prefect wrote and the store's files are searched for them.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import select

from careflow.access.principal import SYSTEM
from careflow.naming import CARE_ROLE_SYSTEM, EXT_NEIGHBOURHOOD, POPULATION_GROUP, SSIN

FAMILY, GIVEN, SSIN_VALUE, BORN = "Oudemeulenbroeck", "Gudrunella", "48111532177", "1948-11-15"
STREET, PHONE = "Ravelinstraat 941", "+32477665544"
CANARIES = [FAMILY, FAMILY.lower(), GIVEN, GIVEN.lower(), SSIN_VALUE, "48.11.15-321.77", BORN, "19481115",
            STREET, "ravelinstraat", PHONE, "477665544"]
HOOD = "binnenstad"


def _leaks(blob: bytes) -> list[str]:
    return [c for c in CANARIES if c.encode() in blob or c.encode("utf-16-le") in blob]


def _load(url: str) -> str:
    from careflow.engine import events
    from careflow.store.database import open_repository

    repo = open_repository(url)
    events.install(repo)
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create_if_absent({"resourceType": "Organization", "id": "team", "name": "Buurtteam"})
            for role in ("gp", "home-nurse", "pharmacist", "care-coach", "physiotherapist", "dietitian"):
                uow.create_if_absent({
                    "resourceType": "PractitionerRole", "id": f"role-{role}", "active": True,
                    "organization": {"reference": "Organization/team"},
                    "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
                    "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": role}]}]})
            uow.create_if_absent({
                "resourceType": "Patient", "id": "canary", "gender": "female", "birthDate": BORN,
                "meta": {"tag": [{"system": POPULATION_GROUP, "code": "B"}]},
                "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": HOOD}],
                "identifier": [{"system": SSIN, "value": SSIN_VALUE}],
                "name": [{"family": FAMILY, "given": [GIVEN]}], "telecom": [{"system": "phone", "value": PHONE}],
                "address": [{"line": [STREET], "city": "Leuven", "postalCode": "3000"}],
                "generalPractitioner": [{"reference": "PractitionerRole/role-gp"}]})
            uow.create_if_absent({
                "resourceType": "Condition", "id": "canary-hf", "subject": {"reference": "Patient/canary"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84114007"}]},
                "onsetDateTime": "2026-10-20"})
    finally:
        repo.close()
    return "canary"


def _observe(url: str) -> None:
    from careflow.engine import events
    from careflow.store.database import open_repository

    repo = open_repository(url)
    events.install(repo)
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create({"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/canary"},
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                        "effectiveDateTime": "2026-11-20T08:00:00Z", "performer": [{"display": f"{GIVEN} {FAMILY}"}],
                        "valueQuantity": {"value": 90, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
    finally:
        repo.close()


def _files(*roots: Path) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(p for p in root.rglob("*") if p.is_file())
    return out


def test_flows_leave_no_identifying_value_behind(tmp_path, prefect_api):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_SERVER_DATABASE_CONNECTION_URL

    from careflow.store.database import open_repository
    from careflow.store.tables import outbox
    from workflows.flows import enrol_region, process_events, sweep_region

    db = tmp_path / "careflow.db"
    url = f"sqlite:///{db}"
    _load(url)
    enrolled = enrol_region(url, start=date(2026, 11, 2), partitions=2, return_state=True)
    assert enrolled.is_completed() and enrolled.result()["total"]["enrolled"] == 1
    _observe(url)
    repo = open_repository(url, migrate=False)
    with repo.engine.connect() as conn:
        payloads = [bytes(p) for p in conn.execute(select(outbox.c.payload)).scalars()]
    repo.close()
    assert payloads and [p for p in payloads if _leaks(p)] == []
    assert process_events(url, return_state=True).is_completed()
    assert sweep_region(url, now=datetime(2027, 3, 1, 6, tzinfo=timezone.utc), partitions=2,
                        return_state=True).is_completed()

    prefect_db = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split("///", 1)[1])
    roots = [Path(os.environ["PREFECT_HOME"]), Path(str(PREFECT_LOCAL_STORAGE_PATH.value())), prefect_db.parent]
    prefect_files = _files(*roots)
    assert any(p.name.startswith(prefect_db.name) for p in prefect_files)  # its database is among them
    leaked = {str(p): found for p in prefect_files if (found := _leaks(p.read_bytes()))}
    assert leaked == {}
    store_files = [p for p in _files(tmp_path) if p.name.startswith("careflow.db")]
    assert len(store_files) >= 2  # the database and its WAL
    assert {str(p): found for p in store_files if (found := _leaks(p.read_bytes()))} == {}
