"""The production set-up, for real: a separate ``prefect server start`` on PostgreSQL, a flow run
through ``PREFECT_API_URL``, and a ``careflow worker`` that picks up a deployment run.

Uses two databases of its own on the shared PostgreSQL server (one for Prefect, one for the store),
named uniquely per run and dropped at the end, so two runs at once never touch each other's.
Skipped only when PostgreSQL is not reachable (CI always has it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from flow_helpers import CAREFLOW, PYTHON, ROOT, count, free_port, load_region, subprocess_env

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:8]
PREFECT_DB = f"prefect_test_{RUN}"
STORE_DB = f"careflow_prod_test_{RUN}"


def _server_url() -> str:
    """The shared PostgreSQL server (from CAREFLOW_TEST_DATABASE_URL, else the local default)."""
    from sqlalchemy.engine import make_url

    raw = os.environ.get("CAREFLOW_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    return make_url(raw.replace("postgresql://", "postgresql+psycopg://", 1)).set(drivername="postgresql+psycopg")


def _admin():
    import psycopg

    url = _server_url()
    try:
        return psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                               dbname=url.database, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")


@pytest.fixture
def databases():
    """This run's two databases, created empty and dropped afterwards (even when the test fails)."""
    with _admin() as conn:
        for name in (PREFECT_DB, STORE_DB):
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        from workflows import resources

        resources.close_all()
        with _admin() as conn:
            for name in (PREFECT_DB, STORE_DB):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url_for(database: str, driver: str) -> str:
    return _server_url().set(database=database, drivername=driver).render_as_string(hide_password=False)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[str, str]:
    """Ask the process group to stop (Ctrl-C), escalate to SIGKILL if it will not; return its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    return out or "", err or ""


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout}s")


def _poll(fn, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def test_prefect_server_on_postgres_with_a_careflow_worker(tmp_path, databases):
    from careflow.region.generate import generate_region

    store = _url_for(STORE_DB, "postgresql+psycopg")
    load_region(store, generate_region(800, seed=3))

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    server_env = subprocess_env(None, PREFECT_HOME=str(home),
                                PREFECT_SERVER_DATABASE_CONNECTION_URL=_url_for(PREFECT_DB, "postgresql+asyncpg"))
    server = subprocess.Popen([PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=server_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    worker = None
    try:
        _wait_http(f"{api}/health", 240, server)
        client_env = subprocess_env(api, PREFECT_HOME=str(home), CAREFLOW_DATABASE_URL=store)

        # 1. a flow run from the CLI goes through PREFECT_API_URL to the PostgreSQL-backed server
        enrol = subprocess.run([*CAREFLOW, "enrol", "--start", "2026-11-02", "--partitions", "2"],
                               env=client_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert enrol.returncode == 0, enrol.stderr
        assert count(store, "CarePlan") > 0
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["enrol-region"]}}}).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
        assert "postgres" not in str(runs[0]["parameters"])  # the store URL is not a flow parameter

        # 2. a worker serves the deployments and runs one on request
        worker = subprocess.Popen([*CAREFLOW, "worker"], env=client_env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

        wanted = {"careflow-enrol", "careflow-sweep", "careflow-events"}

        def sweep_deployment():
            # the worker registers its deployments one after another: wait until all are there
            found = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
            return found["careflow-sweep"] if wanted <= set(found) else None

        deployment = _poll(sweep_deployment, 240, "the worker registered its three deployments", worker)
        assert deployment["schedules"] and deployment["schedules"][0]["schedule"].get("cron")
        now = datetime(2027, 2, 1, 6, tzinfo=timezone.utc).isoformat()
        run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run",
                         json={"parameters": {"now": now, "partitions": 2}}).json()

        def finished():
            state = httpx.get(f"{api}/flow_runs/{run['id']}").json()["state_type"]
            return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        assert _poll(finished, 300, "the worker ran the sweep", worker) == "COMPLETED"
        artifacts = httpx.post(f"{api}/artifacts/filter",
                               json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
        assert {a["key"] for a in artifacts} == {"sweep-summary", "sweep-escalations"}

        # 3. Ctrl-C stops the worker cleanly: no traceback
        _, worker_err = _stop(worker)
        assert "Traceback" not in worker_err, worker_err
        assert worker.returncode in (0, 130), worker_err
    finally:
        if worker is not None:
            _stop(worker, signal.SIGKILL)
        _, server_err = _stop(server, signal.SIGINT)
    assert server.returncode is not None
