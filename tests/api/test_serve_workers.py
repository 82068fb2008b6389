"""``careflow serve --workers 2`` for real: a subprocess on PostgreSQL, spoken to over HTTP.

Proves what running several processes must not break: a token of the local issuer is accepted by
every worker (they share the key file, made once by the parent), every worker publishes the same
notification keys, and a Subscription gets each event once although both workers run the app (only
the holder of the store's lease delivers). SQLite refuses more than one worker, in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from subscription_receiver import Receiver, event_numbers, free_port, notification_type

from careflow.auth.local import LocalIssuer
from careflow.fhir import backport

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "CAREFLOW_TEST_DATABASE_URL"
FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from careflow.store.database import scratch_schema

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_schema(base, "cf_workers") as url:
        port = free_port()
        env = {**os.environ, "CAREFLOW_DATA_DIR": str(tmp_path / "data"),
               "CAREFLOW_AUTH_LOCAL_KEYS": str(tmp_path / "issuer.json"),
               "CAREFLOW_NOTIFICATION_KEYS": str(tmp_path / "notification.json"),
               "CAREFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}/fhir",
               "CAREFLOW_SUBSCRIPTION_PRIVATE_ENDPOINTS": "127.0.0.1/32"}  # the receiver runs here
        proc = subprocess.Popen([sys.executable, "-P", "-m", "careflow.cli", "serve", "--db", url, "--port", str(port),
                                 "--workers", "2", "--local-issuer"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # the ready line comes once every worker listens
            while line and "FHIR API at" not in line:
                line = proc.stderr.readline()
            assert "2 worker processes" in line, (line, proc.poll())
            yield {"proc": proc, "base": f"http://127.0.0.1:{port}/fhir", "root": f"http://127.0.0.1:{port}",
                   "issuer": LocalIssuer(tmp_path / "issuer.json")}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _wait(condition: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_workers_share_keys_and_deliver_each_notification_once(server: dict[str, Any]) -> None:
    proc = server["proc"]
    workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
    assert len(workers) == 2
    token = server["issuer"].mint({"sub": "tests", "scope": "system/*.cruds"}, minutes=30)
    auth = {**FHIR, "Authorization": f"Bearer {token}"}
    base = server["base"]

    # a new connection per request, so the kernel hands them to both workers: every one is accepted
    jwks = set()
    for _ in range(24):
        with httpx.Client(timeout=30) as fresh:
            assert fresh.get(f"{base}/Patient?_count=1", headers=auth).status_code == 200
            jwks.add(fresh.get(f"{server['root']}/.well-known/jwks.json").text)
    assert len(jwks) == 1

    receiver = Receiver().start()
    try:
        with httpx.Client(timeout=30, headers=auth) as http:
            assert http.put(f"{base}/Patient/p1", json={"resourceType": "Patient", "id": "p1"}).status_code in (200, 201)
            sub = {"resourceType": "Subscription", "meta": {"profile": [backport.SUBSCRIPTION_PROFILE]},
                   "status": "requested", "reason": "tell the GP system", "criteria": backport.TASK_TOPIC,
                   "_criteria": {"extension": [{"url": backport.FILTER_EXT, "valueString": "Task?patient=Patient/p1"}]},
                   "channel": {"type": "rest-hook", "endpoint": receiver.url, "payload": "application/fhir+json"}}
            created = http.post(f"{base}/Subscription", json=sub)
            assert created.status_code == 201, created.text
            _wait(lambda: receiver.of_type("handshake"), "the handshake")
            for n in range(5):
                task = {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order",
                        "for": {"reference": "Patient/p1"}, "description": f"change {n}"}
                assert http.put(f"{base}/Task/t1", json=task).status_code in (200, 201)
            numbers = lambda: [n for b in receiver.of_type("event-notification") for n in event_numbers(b)]  # noqa: E731
            _wait(lambda: len(set(numbers())) >= 5, "five events")
            # both workers keep running their rounds meanwhile; a second deliverer would post again
            time.sleep(5)
            counted = Counter(numbers())
            assert sorted(counted) == [1, 2, 3, 4, 5]
            assert set(counted.values()) == {1}, counted
            assert [notification_type(b) for b in receiver.bundles()].count("handshake") == 1
    finally:
        receiver.stop()


def test_sqlite_refuses_more_than_one_worker_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CAREFLOW_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-P", "-m", "careflow.cli", "serve", "--db", f"sqlite:///{tmp_path / 'c.db'}",
                          "--port", str(free_port()), "--workers", "2", "--insecure-no-auth"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("careflow: error:")]
    assert len(errors) == 1 and "needs PostgreSQL" in errors[0] and "Traceback" not in out.stderr
