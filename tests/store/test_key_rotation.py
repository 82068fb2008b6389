"""``careflow keys rotate`` under load: readers and a writer keep working while every version is
re-encrypted, and afterwards the old key is gone and everything still reads and searches."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import select
from store_backends import isolated_repository

from careflow.access.principal import SYSTEM
from careflow.crypto.envelope import key_id_of
from careflow.fhir.search_query import parse_search
from careflow.naming import SSIN
from careflow.store.database import make_engine
from careflow.store.rotation import reindex, rotate, status
from careflow.store.sql import SqlRepository
from careflow.store.tables import data_key, resource_version

PATIENTS = 120


def patient(i: int, **extra) -> dict:
    return {"resourceType": "Patient", "id": f"p{i}", "identifier": [{"system": SSIN, "value": f"{i:011d}"}],
            "name": [{"family": f"Fam{i}", "given": ["Rota"]}], "birthDate": f"19{40 + i % 50}-0{1 + i % 9}-1{i % 10}",
            **extra}


@pytest.fixture(params=["sqlite", "postgres"])
def loaded(request, tmp_path):
    with isolated_repository(request.param, tmp_path) as repo:
        with repo.unit_of_work(SYSTEM) as uow:
            for i in range(PATIENTS):
                uow.update(patient(i))
        with repo.unit_of_work(SYSTEM) as uow:  # a second version of some, so history is rotated too
            for i in range(0, PATIENTS, 3):
                uow.update(patient(i, gender="female"))
        yield repo


def _content_keys(repo: SqlRepository) -> list[int]:
    with repo.engine.connect() as conn:
        return list(conn.execute(select(data_key.c.id).where(data_key.c.purpose == "content")).scalars())


def _versions_by_key(repo: SqlRepository) -> set[int | None]:
    with repo.engine.connect() as conn:
        return {key_id_of(bytes(c)) for c in conn.execute(select(resource_version.c.content)).scalars() if c is not None}


def test_rotation_while_reading_and_writing(loaded):
    server = loaded  # the running server's repository (its own cached keys)
    [old] = _content_keys(server)
    errors: list[BaseException] = []
    reads = [0]
    written: list[int] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            i = rnd.randrange(PATIENTS)
            try:
                assert server.read("Patient", f"p{i}").resource["name"][0]["family"] == f"Fam{i}"
                found = server.search(parse_search("Patient", [("identifier", f"{SSIN}|{i:011d}")]))
                assert [s.id for s in found.matches] == [f"p{i}"]
                assert server.search(parse_search("Patient", [("family", f"fam{i}")])).total == 1
                total, versions = server.history("Patient", f"p{i}")
                assert total == len(versions) and all(v.resource for v in versions)
                reads[0] += 1
            except BaseException as exc:  # noqa: BLE001 - every failure is reported below
                errors.append(exc)
                return

    def writer() -> None:
        n = PATIENTS
        while not stop.is_set():
            try:
                with server.unit_of_work(SYSTEM) as uow:
                    uow.update(patient(n))
                    uow.update(patient(n % PATIENTS, active=True))
                written.append(n)
                n += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    batches = [0]

    def progress(_line: str) -> None:
        """After each of the first batches, let the others make progress: reads and writes
        provably interleave with the rotation (no timing involved)."""
        batches[0] += 1
        if batches[0] <= 3:
            want_reads, want_writes = reads[0] + 5, len(written) + 1
            while (reads[0] < want_reads or len(written) < want_writes) and not errors:
                stop.wait(0.01)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        rotation = SqlRepository(make_engine(str(server.engine.url.render_as_string(hide_password=False))))
        report = rotate(rotation, batch=40, progress=progress)
        rotation.close()
        # and a little more after the switch: the readers meet values under a key they have not loaded
        want = reads[0] + 10
        while reads[0] < want and not errors:
            stop.wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert batches[0] > 3 and written
    assert report.retired == [old] and report.remaining == {}
    assert _content_keys(server) == [report.new_key]
    assert _versions_by_key(server) == {report.new_key}
    st = status(server)
    assert st.plaintext == 0 and st.unknown == {}
    for n in [*range(PATIENTS), *written]:
        assert server.read("Patient", f"p{n}").resource["identifier"][0]["value"] == f"{n:011d}"
        assert [s.id for s in server.search(parse_search("Patient", [("identifier", f"{n:011d}")])).matches] == [f"p{n}"]


def test_a_second_rotation_and_a_fresh_process_read_everything(loaded):
    first = rotate(loaded)
    second = rotate(loaded, batch=7)
    assert first.retired and second.retired == [first.new_key]
    fresh = SqlRepository(make_engine(loaded.engine.url.render_as_string(hide_password=False)))
    assert fresh.read("Patient", "p3").resource["gender"] == "female"
    assert fresh.search(parse_search("Patient", [("birthdate", "1943-04-13")])).total == 1
    fresh.close()


def test_blind_index_reindex_offline(loaded):
    with loaded.engine.connect() as conn:
        before = set(conn.execute(select(data_key.c.id).where(data_key.c.purpose == "blind")).scalars())
        codes_before = set(conn.exec_driver_sql("SELECT code FROM idx_token WHERE param = 'identifier'").scalars())
    report = reindex(loaded)
    assert report.resources == PATIENTS and report.converted == 0
    with loaded.engine.connect() as conn:
        after = set(conn.execute(select(data_key.c.id).where(data_key.c.purpose == "blind")).scalars())
        codes_after = set(conn.exec_driver_sql("SELECT code FROM idx_token WHERE param = 'identifier'").scalars())
    assert after == {report.blind_key} and not after & before
    assert len(codes_after) == PATIENTS and not codes_after & codes_before  # every blind value changed
    # this process re-read its keys; a process started now uses the new key too
    for repo in (loaded, SqlRepository(make_engine(loaded.engine.url.render_as_string(hide_password=False)))):
        assert [s.id for s in repo.search(parse_search("Patient", [("identifier", f"{7:011d}")])).matches] == ["p7"]
        assert repo.search(parse_search("Patient", [("name", "rota")])).total == PATIENTS
