"""The Dask task runner (the ``careflow[dask]`` extra): chosen by ``--runner`` / ``$CAREFLOW_TASK_RUNNER``,
it enrols through a local cluster of worker processes exactly as the thread runner does."""

from __future__ import annotations

import json

import pytest
from flow_helpers import load_region, plan_resource_ids, run_careflow, subprocess_env

from careflow.errors import EngineError

prefect_dask = pytest.importorskip("prefect_dask", reason="the dask extra is not installed: pip install 'careflow[dask]'")


def test_runner_specs_name_the_runner_and_its_size():
    from prefect.task_runners import ThreadPoolTaskRunner

    from workflows.flows import MAX_WORKERS, task_runner

    assert isinstance(task_runner("threads"), ThreadPoolTaskRunner)
    assert task_runner("threads")._max_workers == MAX_WORKERS and task_runner("threads:5")._max_workers == 5
    local = task_runner("dask:3")
    assert isinstance(local, prefect_dask.DaskTaskRunner)
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"] is True
    assert local.cluster_kwargs["threads_per_worker"] == 1
    remote = task_runner("dask:tcp://127.0.0.1:8786")
    assert remote.address == "tcp://127.0.0.1:8786"
    assert isinstance(task_runner("dask:"), prefect_dask.DaskTaskRunner)  # as plain dask: a worker per core
    for bad in ("threads:many", "celery"):
        with pytest.raises(EngineError):
            task_runner(bad)


def test_enrolment_through_a_local_dask_cluster_matches_the_thread_runner(tmp_path, prefect_api):
    from careflow.region.generate import generate_region

    region = generate_region(300, seed=11)
    threads_db, dask_db = (f"sqlite:///{tmp_path / name}" for name in ("threads.db", "dask.db"))
    env = subprocess_env(prefect_api, CAREFLOW_DATA_DIR=str(tmp_path / "data"))
    import os

    os.environ["CAREFLOW_DATA_DIR"] = env["CAREFLOW_DATA_DIR"]  # the same master key for the loads here
    try:
        assert load_region(threads_db, region) == load_region(dask_db, region) > 0
    finally:
        os.environ.pop("CAREFLOW_DATA_DIR", None)
    args = ["enrol", "--partitions", "4", "--start", "2026-03-02", "--json"]
    by_threads = run_careflow([*args, "--db", threads_db, "--runner", "threads"], env)
    assert by_threads.returncode == 0, by_threads.stderr
    by_dask = run_careflow([*args, "--db", dask_db, "--runner", "dask:2"], env)
    assert by_dask.returncode == 0, by_dask.stderr
    assert "Traceback" not in by_dask.stderr
    assert "enrol: partition 4/4 done" in by_dask.stderr
    threads_result, dask_result = json.loads(by_threads.stdout), json.loads(by_dask.stdout)
    assert dask_result["total"] == threads_result["total"] and threads_result["total"]["enrolled"] > 0
    assert dask_result["by_program"] == threads_result["by_program"]
    planned = plan_resource_ids(dask_db)
    assert planned == plan_resource_ids(threads_db) and planned["CarePlan"]  # the same deterministic plans


def test_a_missing_runner_package_is_one_line(tmp_path):
    proc = run_careflow(["enrol", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--runner", "ray"], subprocess_env(None))
    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "pip install prefect-ray" in lines[0], proc.stderr
