"""The engine's commands as a user runs them: one line per outcome, progress on stderr, no traceback,
idempotent reruns, a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from careflow_shared import SYNTHEA_DIR, missing
from flow_helpers import CAREFLOW, ROOT, all_resources, count, duplicates, free_port, run_careflow, subprocess_env


def _one_error_line(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("careflow: error:") and fragment in lines[0], proc.stderr


def test_bad_arguments_are_one_line(tmp_path):
    env = subprocess_env(None)
    _one_error_line(run_careflow(["enrol", "--db", "mysql://nobody@nowhere/db"], env), "unsupported database")
    _one_error_line(run_careflow(["enrol", "--start", "31/01/2026"], env), "is not a date")
    _one_error_line(run_careflow(["sweep", "--now", "tomorrow"], env), "is not a date")
    _one_error_line(run_careflow(["enrol", "--mode", "sometimes"], env), "is not active or proposals")
    _one_error_line(run_careflow(["import", str(tmp_path / "missing"), "--db", f"sqlite:///{tmp_path}/x.db"], env),
                    f"{tmp_path / 'missing'}: no such file or directory")  # the path as given, leading slash too


def test_import_says_one_line_even_when_the_data_dir_does_not_exist_yet(tmp_path):
    # Prefect used to be imported here and warned (two lines) that it could not create its home
    env = subprocess_env(None, CAREFLOW_DATA_DIR=str(tmp_path / "not" / "yet"))
    env.pop("PREFECT_HOME", None)
    _one_error_line(run_careflow(["import", "/nonexistent"], env), "careflow: error: /nonexistent: no such file or directory")


def test_serve_with_an_unusable_database_says_only_the_error(tmp_path):
    proc = run_careflow(["serve", "--db", "mysql://nobody@nowhere/db", "--port", str(free_port())], subprocess_env(None))
    _one_error_line(proc, "unsupported database 'mysql'")
    assert "FHIR API at" not in proc.stdout + proc.stderr


def test_demo_builds_an_enrolled_region_and_reruns_idempotently(tmp_path, prefect_api):
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = subprocess_env(prefect_api)
    args = ["demo", "--inhabitants", "700", "--seed", "4", "--no-serve", "--db", db, "--partitions", "3"]
    first = run_careflow(args, env)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    match = re.match(r"careflow: demo region ready: 700 inhabitants, ([\d,]+) patients enrolled", lines[0])
    assert match, lines[0]
    enrolled = int(match.group(1).replace(",", ""))
    every_plan = all_resources(db, "CarePlan")
    plans = [p for p in every_plan if "instantiatesCanonical" in p]  # each programme's part of a shared plan
    assert enrolled == len({p["subject"]["reference"] for p in plans}) > 0
    assert len(every_plan) - len(plans) == enrolled  # one shared plan per enrolled patient
    assert "enrol: partition 3/3 done" in first.stderr  # progress, one line per partition
    patients = count(db, "Patient")
    assert patients == 700

    assert f"store: SQLite file {tmp_path / 'demo.db'} (to start afresh: careflow demo --reset)" in lines[0]
    # no silent step: the demo says what it is doing at each step, in order (and "still ..." in a long one)
    steps = ["demo: starting", "demo: generating the demo region (700 inhabitants)", "demo: opening the store",
             "demo: loading", "load: ", "demo: enrolling every eligible patient", "enrol: partition 3/3 done",
             "demo: sweeping", "demo: enrolment and sweep done"]
    said = [line.removeprefix("careflow: ") for line in first.stderr.splitlines()]
    at = [next((i for i, line in enumerate(said) if line.startswith(step)), -1) for step in steps]
    assert -1 not in at and at == sorted(at), (steps, said)
    assert not Path(db.removeprefix("sqlite:///") + "-wal").exists() or \
        Path(db.removeprefix("sqlite:///") + "-wal").stat().st_size == 0  # checkpointed at exit

    second = run_careflow([*args, "--json"], env)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["inhabitants"] == 700 and report["enrolled"] == enrolled and report["care_plans"] == len(plans)
    assert report["store"] == f"SQLite file {tmp_path / 'demo.db'}" and report["reset"] == "careflow demo --reset"
    assert count(db, "Patient") == patients and len(all_resources(db, "CarePlan")) == len(every_plan)
    assert not duplicates(all_resources(db, "Task"))

    enrol = run_careflow(["enrol", "--db", db, "--partitions", "2", "--json"], env)
    assert enrol.returncode == 0, enrol.stderr
    assert json.loads(enrol.stdout)["total"]["already-enrolled"] == enrolled
    sweep = run_careflow(["sweep", "--db", db, "--partitions", "2", "--now", "2030-01-01", "--json"], env)
    assert sweep.returncode == 0, sweep.stderr
    swept = json.loads(sweep.stdout)
    assert swept["total"]["plans"] > 0 and len(swept["escalations"]) == swept["total"].get("escalated", 0)

    reset = run_careflow([*args, "--reset", "--inhabitants", "50"], env)
    assert reset.returncode == 0, reset.stderr
    assert count(db, "Patient") == 50  # the old region is gone


def test_demo_serves_the_api_and_stops_cleanly_on_ctrl_c(tmp_path, prefect_api):
    port = free_port()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = subprocess.Popen([*CAREFLOW, "demo", "--inhabitants", "300", "--db", db,
                             "--port", str(port), "--partitions", "2"],
                            env=subprocess_env(prefect_api), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert f"FHIR API at http://127.0.0.1:{port}/fhir" in line and "Ctrl-C to stop" in line, line
        assert "store: SQLite file" in line
        logins = {}
        said = []
        while "system" not in logins:  # one line per role: name, ready URL, token
            said.append(proc.stdout.readline())
            parts = said[-1].split()
            assert parts, "the demo printed no system login"
            if len(parts) == 4 and parts[2] == "token:":
                logins[parts[0]] = (parts[1], parts[3])
        pages = f"http://127.0.0.1:{port}/app/"
        assert any(f"pages at {pages}" in line for line in said)
        sign_in = httpx.get(pages, timeout=30, follow_redirects=True)  # the pages: sign in per role, ready
        assert sign_in.status_code == 200 and "Huisarts" in sign_in.text and "Zorgcoach" in sign_in.text
        assert "gp" in logins and "patient" in logins
        url, token = logins["system"]
        # the ready line comes once the server listens: the very first requests are answered, no retrying
        assert httpx.get(url, timeout=30).status_code == 401  # no token, no data
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        gp_url, gp_token = logins["gp"]
        assert httpx.get(gp_url, headers={"Authorization": f"Bearer {gp_token}"}, timeout=30).status_code == 200
        assert response.status_code == 200
        assert response.json()["resourceType"] == "Bundle"
        # the API answered while enrolment and the sweep go on; a line says when the plans are ready
        assert "enrolling and sweeping in the background" in line
        rest = []
        while not rest or not rest[-1].startswith("careflow: demo region ready"):
            rest.append(proc.stdout.readline())
            assert rest[-1], "the demo never said the care plans were ready"
        assert re.match(r"careflow: demo region ready: 300 inhabitants, [1-9][\d,]* patients enrolled", rest[-1])
        plans = httpx.get(url.split("/fhir")[0] + "/fhir/CarePlan?_count=1",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        assert plans.get("total", 0) > 0 or plans.get("entry")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err, err


def test_demo_refuses_a_taken_port_before_doing_any_work(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_careflow(["demo", "--inhabitants", "50", "--db", f"sqlite:///{tmp_path}/d.db", "--port", str(port)],
                            subprocess_env(None))
    _one_error_line(proc, f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "d.db").exists() or count(f"sqlite:///{tmp_path}/d.db", "Patient") == 0


@pytest.mark.skipif(not SYNTHEA_DIR.is_dir(), reason=missing(SYNTHEA_DIR))
def test_import_synthea_bundles_twice(tmp_path):
    db = f"sqlite:///{tmp_path / 'synthea.db'}"
    files = sorted(SYNTHEA_DIR.glob("*.json"))[:3]
    folder = tmp_path / "bundles"
    folder.mkdir()
    for f in files:
        (folder / f.name).symlink_to(f)
    first = run_careflow(["import", str(folder), "--db", db], subprocess_env(None))
    assert first.returncode == 0, first.stderr
    assert re.match(r"careflow: imported 3 file\(s\): [\d,]+ resources created, 0 already present", first.stdout)
    patients = count(db, "Patient")
    assert patients == 3
    second = run_careflow(["import", str(folder), "--db", db], subprocess_env(None))
    assert second.returncode == 0, second.stderr
    assert ": 0 resources created," in second.stdout
    assert count(db, "Patient") == patients
