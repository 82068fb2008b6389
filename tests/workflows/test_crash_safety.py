"""A run killed half-way is finished by running it again: no duplicate, no gap.

1. SQLite: ``careflow enrol`` in a subprocess is SIGKILLed once some care plans exist; a rerun must
   leave exactly what an uninterrupted run leaves (same resource ids, no duplicate identifiers).
2. PostgreSQL: a throwaway server (initdb/pg_ctl in a temp dir, never the shared one) is stopped
   with ``pg_ctl stop -m immediate`` in the middle of a sweep, restarted, and the sweep rerun: it must
   end where an uninterrupted sweep ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date, datetime, timezone

import pytest

from flow_helpers import (PYTHON, ROOT, count, duplicates, all_resources, load_region, plan_resource_ids,
                          reference_plan_ids, subprocess_env)

START = date(2026, 11, 2)
SWEEP_AT = datetime(2027, 2, 15, 6, 0, tzinfo=timezone.utc)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.3)
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
    args = [PYTHON, "-m", "careflow.cli", "enrol", "--start", START.isoformat(), "--partitions", "4"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: count(url, "CarePlan") >= 40, proc, 600, "the first care plans were written")
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
    per_programme = {(p["subject"]["reference"], p["instantiatesCanonical"][0]) for p in plans}
    assert len(per_programme) == len(plans)  # one CarePlan per patient and programme
