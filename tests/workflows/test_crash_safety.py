"""A run killed half-way is finished by running it again: no duplicate, no gap.

1. SQLite: ``careflow enrol`` in a subprocess is SIGKILLed once some care plans exist; a rerun must
   leave exactly what an uninterrupted run leaves (same resource ids, no duplicate identifiers).
2. PostgreSQL: a throwaway server (initdb/pg_ctl in a temp dir, never the shared one) is stopped
   with ``pg_ctl stop -m immediate`` in the middle of a sweep, restarted, and the sweep rerun: it must
   end where an uninterrupted sweep ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date, datetime, timezone

import pytest
from flow_helpers import CAREFLOW, ROOT, all_resources, count, duplicates, load_region, plan_resource_ids, reference_plan_ids, subprocess_env

START = date(2026, 11, 2)
SWEEP_AT = datetime(2027, 2, 15, 6, 0, tzinfo=timezone.utc)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str, poll: float = 0.3) -> None:
    """Wait for ``predicate``. The kill tests watch for the first committed batch and kill at once:
    enrolment commits 50 patients per unit of work, and a fast machine finishes a partition between
    two slow polls, so the kill would land after the run rather than in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def region():
    from careflow.region.generate import generate_region

    return generate_region(6000, seed=11)  # ~6,000 patients in the store, ~1,000 of them eligible


def test_sqlite_enrolment_killed_mid_run_then_rerun(tmp_path, prefect_api, region):
    url = f"sqlite:///{tmp_path / 'careflow.db'}"
    load_region(url, region)
    expected = reference_plan_ids(region, START)
    assert len(expected["CarePlan"]) > 300

    env = subprocess_env(prefect_api, CAREFLOW_DATABASE_URL=url)
    args = [*CAREFLOW, "enrol", "--start", START.isoformat(), "--partitions", "4", "--batch-size", "5"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: count(url, "CarePlan") >= 1, proc, 600, "the first care plans were written", poll=0.05)
    finally:
        _kill_group(proc)
    partial = plan_resource_ids(url)
    assert 0 < len(partial["CarePlan"]) < len(expected["CarePlan"]), "the kill must land mid-run"
    assert partial["Task"] <= expected["Task"]  # whatever committed is exactly what the plan says

    rerun = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr

    assert plan_resource_ids(url) == expected
    for rtype in ("CarePlan", "Task", "Goal"):
        assert not duplicates(all_resources(url, rtype)), rtype
    plans = all_resources(url, "CarePlan")
    parts = [p for p in plans if "instantiatesCanonical" in p]
    per_programme = {(p["subject"]["reference"], p["instantiatesCanonical"][0]) for p in parts}
    assert len(per_programme) == len(parts)  # one part per patient and programme
    wholes = [p["subject"]["reference"] for p in plans if "instantiatesCanonical" not in p]
    assert sorted(wholes) == sorted({p["subject"]["reference"] for p in parts})  # and one shared plan per patient


# --- PostgreSQL: the database itself goes away mid-sweep --------------------------------------------

PG_BIN = sorted(__import__("glob").glob("/usr/lib/postgresql/*/bin"))


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir on a free port (run as the postgres user when root)."""

    def __init__(self, base, port: int) -> None:
        self.dir = base / "data" / "pgdata"
        self.port = port
        self.bin = PG_BIN[-1]
        self.log = base / "data" / "pg.log"
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            import shutil

            shutil.chown(self.dir.parent, "postgres")
        self._run(f"{self.bin}/initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bin}/pg_ctl", "-D", str(self.dir), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def throwaway_pg():
    import shutil
    import tempfile
    from pathlib import Path

    from flow_helpers import free_port

    if not PG_BIN:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) to start a throwaway instance")
    base = Path(tempfile.mkdtemp(prefix="careflow-pg-"))  # not under pytest's 0700 tmp: postgres must enter it
    base.chmod(0o755)
    pg = ThrowawayPostgres(base, free_port())
    try:
        pg.init()
        pg.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot start a throwaway PostgreSQL: {getattr(exc, 'stderr', '') or exc}")
    yield pg
    try:
        pg.stop("immediate")
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(base, ignore_errors=True)


def _task_states(url: str) -> set[tuple[str, str]]:
    return {(t["id"], t["status"]) for t in all_resources(url, "Task")}


def test_postgres_stopped_mid_sweep_then_restarted(throwaway_pg, prefect_api):
    from careflow.engine import enrolment
    from careflow.programs.loader import load_directory
    from careflow.region.generate import generate_region
    from careflow.store.database import open_repository

    region = generate_region(4000, seed=5)
    url = throwaway_pg.url
    load_region(url, region)
    repo = open_repository(url)
    programs = load_directory(None)
    enrolment.enrol(repo, programs, enrolment.find_candidates(repo, programs), START)
    repo.close()
    expected = reference_plan_ids(region, START, SWEEP_AT)
    planned = count(url, "Task")
    assert len(expected["Task"]) > planned  # the sweep has work to do

    env = subprocess_env(prefect_api, CAREFLOW_DATABASE_URL=url)
    args = [*CAREFLOW, "sweep", "--now", SWEEP_AT.isoformat(), "--partitions", "4"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: count(url, "Task") >= planned + 20, proc, 600, "the sweep opened its first tasks")
        assert proc.poll() is None, "the sweep must still be running when the database goes"
        throwaway_pg.stop("immediate")  # the database crashes: no checkpoint, open transactions lost
        time.sleep(3)
        throwaway_pg.start()  # back within the flows' retry backoff (2 + 4 + 8 + 16 s)
        out, err = proc.communicate(timeout=900)
    finally:
        _kill_group(proc)
    assert "Traceback" not in err
    # the interrupted run either finished through its retries or failed with one line; both are fine
    assert proc.returncode == 0 or (proc.returncode == 1 and len(err.strip().splitlines()) >= 1), err

    rerun = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    assert plan_resource_ids(url)["Task"] == expected["Task"]
    assert not duplicates(all_resources(url, "Task"))
    # a further sweep at the same moment finds nothing left to do
    again = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and " 0 tasks-opened" in again.stdout, again.stdout + again.stderr
    assert plan_resource_ids(url)["Task"] == expected["Task"]


def test_ctrl_c_mid_enrolment_stops_at_once_and_a_rerun_completes(tmp_path, prefect_api, region):
    url = f"sqlite:///{tmp_path / 'careflow.db'}"
    load_region(url, region)
    env = subprocess_env(prefect_api, CAREFLOW_DATABASE_URL=url)
    # two patients per transaction: hundreds of commits per partition, so the interrupt lands while
    # the partitions are still running even when enrolment is fast and the poll is slow
    args = [*CAREFLOW, "enrol", "--start", START.isoformat(), "--partitions", "4", "--batch-size", "2"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: count(url, "CarePlan") >= 1, proc, 600, "the first care plans were written", poll=0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # a guard against a hang, not a measure of speed
    finally:
        _kill_group(proc)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("careflow: interrupted") and "Traceback" not in err, err
    rerun = subprocess.run([*args, "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    # Ctrl-C did not wait for the running partitions: their patients were left for the rerun
    # (no timed assertion: on a busy machine the stop itself may take a while)
    assert json.loads(rerun.stdout)["total"].get("enrolled", 0) > 0
    assert not duplicates(all_resources(url, "Task"))
