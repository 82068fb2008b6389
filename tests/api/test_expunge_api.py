"""``POST Patient/[id]/$expunge`` and ``careflow purge``: erasure over the API and the command line,
audited as an event that names the target and nothing of what was removed."""

from __future__ import annotations

import subprocess
import sys


def _record(client, pid: str) -> None:
    assert client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                                    "name": [{"family": "Vermeulen"}]}).status_code in (200, 201)
    for n in range(3):
        assert client.post("/fhir/Observation", json={"resourceType": "Observation", "status": "final",
                                                      "code": {"text": "weight"}, "subject": {"reference": f"Patient/{pid}"},
                                                      "valueQuantity": {"value": 80 + n, "unit": "kg"}}).status_code == 201


def test_expunge_over_the_api_erases_the_record(client, test_issuer):
    _record(client, "erase-1")
    _record(client, "keep-1")
    assert client.get("/fhir/Patient/erase-1/$expunge").status_code == 405  # erasing is never a GET
    r = client.post("/fhir/Patient/erase-1/$expunge")
    assert r.status_code == 200, r.text
    assert "4 resources" in r.json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient/erase-1").status_code == 404
    assert client.get("/fhir/Patient/erase-1/_history").status_code == 404
    assert client.get("/fhir/Observation", params={"subject": "Patient/erase-1"}).json()["total"] == 0
    assert client.get("/fhir/Observation", params={"subject": "Patient/keep-1"}).json()["total"] == 3
    assert client.post("/fhir/Patient/erase-1/$expunge").status_code == 404
    reader = {"Authorization": "Bearer " + test_issuer.mint({"sub": "r", "scope": "system/*.rs"}, minutes=5)}
    assert client.post("/fhir/Patient/keep-1/$expunge", headers=reader).status_code == 403
    assert client.get("/fhir/Patient/keep-1").status_code == 200


def test_careflow_purge_on_the_command_line(tmp_path):
    from careflow.access.principal import SYSTEM
    from careflow.store.database import open_repository

    url = f"sqlite:///{tmp_path / 'purge.db'}"
    repo = open_repository(url)
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Patient", "id": "cli-1"})
        uow.update({"resourceType": "Task", "id": "t-cli-1", "status": "requested", "intent": "order",
                    "for": {"reference": "Patient/cli-1"}})
    repo.close()
    run = [sys.executable, "-c", "from careflow.cli import run; run()"]
    done = subprocess.run([*run, "purge", "Patient/cli-1", "--db", url, "--yes"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "erased Patient/cli-1: 2 resources" in done.stdout
    again = subprocess.run([*run, "purge", "Patient/cli-1", "--db", url, "--yes"], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "not in the store" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([*run, "purge", "nonsense", "--db", url, "--yes"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "TYPE/ID" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    repo = open_repository(url)
    with repo.unit_of_work(SYSTEM) as uow:
        assert uow.history(None, None, since=None, count=10, offset=0)[0] == 0
    repo.close()
