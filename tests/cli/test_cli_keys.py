"""``careflow keys``: status, rotation and re-index from the command line; one line on failure."""

from __future__ import annotations

from careflow.access.principal import SYSTEM
from careflow.cli import main
from careflow.store.database import open_repository


def test_status_rotate_reindex(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cf.db'}"
    repo = open_repository(url)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Cli"}]})
    repo.close()
    assert main(["keys", "status", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "content  active" in out and "1 versions" in out and "blind" in out
    assert main(["keys", "rotate", "--db", url, "--batch", "1"]) == 0
    assert "1 versions re-encrypted" in capsys.readouterr().out
    assert main(["keys", "reindex", "--db", url]) == 0
    assert "1 resources re-indexed" in capsys.readouterr().out
    repo = open_repository(url)
    assert repo.read("Patient", "p1").resource["name"][0]["family"] == "Cli"
    repo.close()


def test_production_refuses_to_start_without_a_master_key(monkeypatch):
    import pytest

    from careflow.crypto.master import KeyConfigError
    from careflow.store.database import make_engine
    from careflow.store.sql import SqlRepository

    monkeypatch.delenv("CAREFLOW_MASTER_KEY", raising=False)
    monkeypatch.delenv("CAREFLOW_MASTER_KEY_FILE", raising=False)
    with pytest.raises(KeyConfigError, match="no master key configured"):
        SqlRepository(make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none"))


def test_new_master_prints_a_key(capsys):
    import base64

    assert main(["keys", "new-master"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32
