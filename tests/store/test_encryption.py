"""Encryption at rest of the SQL store: what the tables hold, what a moved or altered value does, keys."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from sqlalchemy import select, text, update
from store_backends import isolated_repository

from careflow.access.principal import SYSTEM
from careflow.crypto.envelope import DecryptionError, key_id_of
from careflow.crypto.master import KeyConfigError, load_master_key
from careflow.fhir.search_query import parse_search
from careflow.naming import NIHDI, SSIN
from careflow.store.database import make_engine, upgrade
from careflow.store.keyring import KeyRing, LegacyDatabase
from careflow.store.sql import SqlRepository
from careflow.store.tables import INDEX_TABLES, condition_key, data_key, resource, resource_version

SQL_BACKENDS = ["sqlite", "postgres"]
NAME, GIVEN, NUMBER, BORN = "Vandevoorde", "Hildegard", "51072312345", "1951-07-23"


def patient(pid: str = "p1") -> dict:
    return {"resourceType": "Patient", "id": pid, "identifier": [{"system": SSIN, "value": NUMBER}],
            "name": [{"family": NAME, "given": [GIVEN]}], "birthDate": BORN, "gender": "female",
            "telecom": [{"system": "phone", "value": "+3216123456"}],
            "address": [{"line": ["Kapucijnenvoer 7"], "city": "Leuven", "postalCode": "3000"}]}


@pytest.fixture(params=SQL_BACKENDS)
def sql(request, tmp_path):
    with isolated_repository(request.param, tmp_path) as repo:
        yield repo


def _all_cells(repo: SqlRepository) -> list[str]:
    """Every stored cell of the store's tables as text (bytes decoded leniently)."""
    out = []
    with repo.engine.connect() as conn:
        for table in (resource_version, condition_key, *INDEX_TABLES.values()):
            for row in conn.execute(select(table)):
                for cell in row:
                    out.append(bytes(cell).decode("latin-1") if isinstance(cell, (bytes, memoryview)) else str(cell))
    return out


def test_contents_and_index_rows_hold_no_identifier(sql):
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
        uow.create({"resourceType": "Patient", "name": [{"family": "Other"}]},
                   if_none_exist=parse_search("Patient", [("identifier", f"{SSIN}|{NUMBER}")]))
    cells = "\n".join(_all_cells(sql))
    for secret in (NAME, NAME.lower(), GIVEN.lower(), NUMBER, BORN, "1951-07", "Kapucijnenvoer", "+3216123456",
                   "other"):
        assert secret not in cells
    with sql.engine.connect() as conn:
        contents = [bytes(c) for c in conn.execute(select(resource_version.c.content)).scalars()]
        years = conn.execute(text("SELECT low FROM idx_date WHERE param = 'birthdate'")).scalars().all()
    assert contents and all(key_id_of(c) is not None for c in contents)
    assert {str(y)[:10] for y in years} == {"1951-01-01"}  # the birth year is the one thing kept in clear
    # and every lookup still works through the blind index
    for params in ([("identifier", f"{SSIN}|{NUMBER}")], [("identifier", NUMBER)], [("family", NAME.upper())],
                   [("name", GIVEN)], [("family:exact", NAME)], [("birthdate", BORN)], [("birthdate", "1951-07")],
                   [("birthdate", "lt1952"), ("gender", "female")]):
        assert [s.id for s in sql.search(parse_search("Patient", params)).matches] == ["p1"], params


def test_a_value_moved_to_another_row_does_not_decrypt(sql):
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(patient("p1"))
        uow.update(patient("p2"))
    with sql.engine.begin() as conn:
        pks = dict(conn.execute(select(resource.c.id, resource.c.pk)).all())
        one = conn.execute(select(resource_version.c.content).where(resource_version.c.res_pk == pks["p1"])).scalar()
        conn.execute(update(resource_version).where(resource_version.c.res_pk == pks["p2"]).values(content=one))
    assert sql.read("Patient", "p1").resource["id"] == "p1"
    with pytest.raises(DecryptionError):
        sql.read("Patient", "p2")


def test_an_altered_value_does_not_decrypt(sql):
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
    with sql.engine.begin() as conn:
        blob = bytearray(conn.execute(select(resource_version.c.content)).scalar())
        blob[-1] ^= 1
        conn.execute(update(resource_version).values(content=bytes(blob)))
    with pytest.raises(DecryptionError):
        sql.read("Patient", "p1")


def test_every_version_is_encrypted_and_history_reads(sql):
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
        uow.update({**patient(), "gender": "other"})
        uow.delete("Patient", "p1")
    total, versions = sql.history("Patient", "p1")
    assert total == 3 and versions[1].resource["gender"] == "other" and versions[2].resource["birthDate"] == BORN
    with sql.engine.connect() as conn:
        contents = conn.execute(select(resource_version.c.content)).scalars().all()
    assert sorted(c is None for c in contents) == [False, False, True]
    assert all(key_id_of(bytes(c)) is not None for c in contents if c is not None)


def test_a_practitioners_national_number_is_blinded_their_nihdi_number_is_not(sql):
    pract = {"resourceType": "Practitioner", "id": "pr", "name": [{"family": "Janssens"}],
             "identifier": [{"system": SSIN, "value": NUMBER}, {"system": NIHDI, "value": "19876543210"}]}
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(pract)
    with sql.engine.connect() as conn:
        codes = set(conn.execute(text("SELECT code FROM idx_token WHERE param = 'identifier'")).scalars())
    assert NUMBER not in codes and "19876543210" in codes
    for value in (f"{SSIN}|{NUMBER}", NUMBER, f"{NIHDI}|19876543210", "19876543210"):
        assert [s.id for s in sql.search(parse_search("Practitioner", [("identifier", value)])).matches] == ["pr"]
    # a practitioner's name keeps prefix search (a public register; colleagues look each other up)
    assert [s.id for s in sql.search(parse_search("Practitioner", [("family", "jan")])).matches] == ["pr"]


def test_another_master_key_cannot_open_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
    repo.close()
    other = SqlRepository(make_engine(url), keys=KeyRing(os.urandom(32)))
    with pytest.raises(KeyConfigError, match="another master key"):
        other.read("Patient", "p1")
    other.close()
    plain = SqlRepository(make_engine(url), keys=KeyRing(None))
    with pytest.raises(KeyConfigError, match="encrypted"):
        plain.read("Patient", "p1")
    plain.close()


def test_a_database_from_before_encryption_is_refused_until_converted(tmp_path):
    from careflow.store.rotation import reindex, status

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    legacy = SqlRepository(make_engine(url), keys=KeyRing(None))  # what careflow wrote before this feature
    with legacy.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
    legacy.close()
    repo = SqlRepository(make_engine(url))
    with pytest.raises(LegacyDatabase):
        repo.read("Patient", "p1")
    report = reindex(SqlRepository(make_engine(url)), new_blind_key=False)
    assert report.converted == 1 and report.resources == 1
    repo = SqlRepository(make_engine(url))
    assert repo.read("Patient", "p1").resource["birthDate"] == BORN
    assert [s.id for s in repo.search(parse_search("Patient", [("identifier", NUMBER)])).matches] == ["p1"]
    assert status(repo).plaintext == 0
    assert NUMBER not in "\n".join(_all_cells(repo))
    repo.close()


def test_the_embedded_default_generates_a_private_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CAREFLOW_MASTER_KEY", raising=False)
    monkeypatch.setenv("CAREFLOW_DATA_DIR", str(tmp_path / "data"))
    key = load_master_key(embedded=True)
    path = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(embedded=True) == key and len(key) == 32  # kept, not regenerated
    with pytest.raises(KeyConfigError, match="no master key configured"):
        load_master_key(embedded=False)  # production (PostgreSQL) never gets a generated key
    path.chmod(0o644)
    with pytest.raises(KeyConfigError, match="readable by others"):
        load_master_key(embedded=True)
    monkeypatch.setenv("CAREFLOW_MASTER_KEY", "not base64!")
    with pytest.raises(KeyConfigError, match="base64"):
        load_master_key(embedded=True)
    good = tmp_path / "prod.key"
    good.write_text(base64.b64encode(b"k" * 32).decode())
    good.chmod(0o600)
    monkeypatch.delenv("CAREFLOW_MASTER_KEY")
    monkeypatch.setenv("CAREFLOW_MASTER_KEY_FILE", str(good))
    assert load_master_key(embedded=False) == b"k" * 32


def test_data_keys_are_stored_wrapped_by_the_master_key(sql):
    from careflow.crypto.envelope import unwrap

    with sql.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
    sql.audit.flush()  # the audit trail's key is made at its first append
    with sql.engine.connect() as conn:
        rows = conn.execute(select(data_key)).all()
    assert sorted(r.purpose for r in rows) == ["audit", "blind", "content"]
    for r in rows:
        secret = unwrap(sql.keys.master, r.id, r.purpose, bytes(r.wrapped))
        assert len(secret) == 32 and secret not in bytes(r.wrapped)
        with pytest.raises(DecryptionError):  # bound to its id and purpose
            unwrap(sql.keys.master, r.id + 1, r.purpose, bytes(r.wrapped))


def test_rewrap_moves_every_data_key_to_a_new_master(tmp_path):
    from careflow.store.rotation import rewrap

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(patient())
    new = os.urandom(32)
    assert repo.audit is not None
    repo.audit.flush()  # the audit trail's key is made at its first append
    assert rewrap(repo, new) == 3  # content, blind index, audit
    repo.close()
    with pytest.raises(KeyConfigError):
        SqlRepository(make_engine(url)).read("Patient", "p1")  # the old master no longer opens it
    again = SqlRepository(make_engine(url), keys=KeyRing(new))
    assert again.read("Patient", "p1").resource["identifier"][0]["value"] == NUMBER
    again.close()


def test_stored_resources_are_deflated_before_encryption_and_older_values_still_read(sql):
    from careflow.crypto.envelope import DEFLATED, FORMAT
    from careflow.store.keyring import content_context

    note = "Wandelt dagelijks een half uur; " * 40  # repetitive, as FHIR JSON is
    with sql.unit_of_work(SYSTEM) as uow:
        uow.update({**patient(), "extension": [{"url": "http://example.org/note", "valueString": note}]})
        uow.update(patient("p2"))
    with sql.engine.connect() as conn:
        rows = {r.id: (r.pk, r.version, bytes(r.content)) for r in conn.execute(
            select(resource.c.id, resource_version.c.res_pk.label("pk"), resource_version.c.version,
                   resource_version.c.content).where(resource_version.c.res_pk == resource.c.pk))}
    pk, version, blob = rows["p1"]
    assert blob[0] == DEFLATED and len(blob) < len(note) / 2  # the whole resource, smaller than half its note
    # a value written before deflating (format 1) is read as before
    pk2, version2, _ = rows["p2"]
    old = sql.keys.cipher.encrypt(b'{"resourceType":"Patient","id":"p2","gender":"male"}',
                                  content_context(pk2, version2), key_id_of(blob))
    assert old[0] == FORMAT
    with sql.engine.begin() as conn:
        conn.execute(update(resource_version).where(resource_version.c.res_pk == pk2).values(content=old))
    assert sql.read("Patient", "p2").resource["gender"] == "male"
    assert sql.read("Patient", "p1").resource["extension"][0]["valueString"] == note
    # the format byte is authenticated: relabelling a deflated value as plain fails, it is not misread
    forged = bytes([FORMAT]) + blob[1:]
    with sql.engine.begin() as conn:
        conn.execute(update(resource_version).where(resource_version.c.res_pk == pk).values(content=forged))
    with pytest.raises(DecryptionError):
        sql.read("Patient", "p1")
