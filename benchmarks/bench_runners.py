#!/usr/bin/env python3
"""Enrolment through the thread runner next to the Dask runner, and a partitioned region (shards).

1. Runners: the same demo region (``--inhabitants``, default 2,000) loaded into two fresh stores,
   then ``enrol_region`` with the thread runner (3 threads, the default) and with a local Dask
   cluster (``dask:N`` worker processes, one thread each); prints seconds, patients/s and the ratio,
   and checks both made the same plans.
2. Shards (``--shards K``): what a 1,000-neighbourhood deployment does on a small scale.  K regions
   (one store each, as each group of neighbourhoods would have its own database or schema) enrolled
   at the same time by K ``careflow enrol`` processes (as K Prefect workers, one per work pool,
   would), against the baseline of one such shard enrolled alone: patients per second, and the
   throughput ratio (K on K cores would be Kx).

PostgreSQL with ``--pg-url`` (a schema per store, dropped after); SQLite files otherwise (where the
single writer is the limit, so shards on one SQLite file would only queue).  Usage:

    python benchmarks/bench_runners.py                       # SQLite, 2,000 inhabitants, dask:2
    python benchmarks/bench_runners.py --shards 2 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
Only talks to 127.0.0.1 (the temporary Prefect server, the databases you name).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = Path(tempfile.mkdtemp(prefix="careflow-bench-runners-"))
os.environ.setdefault("CAREFLOW_DATA_DIR", str(DATA))  # one master key for every store of the run
os.environ.setdefault("PREFECT_HOME", str(DATA / "prefect"))
if not os.environ.get("CAREFLOW_MASTER_KEY") and not os.environ.get("CAREFLOW_MASTER_KEY_FILE"):
    import base64

    os.environ["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # a key of this run only

from workflows.prefect_env import configure  # noqa: E402

configure(quiet_console=True)


def fresh(backend: str, pg_url: str | None, tag: str) -> tuple[str, Any]:
    import bench_api

    return bench_api.fresh_database(backend, pg_url, tag)


def load(url: str, inhabitants: int, seed: int) -> int:
    from careflow.region.generate import generate_region
    from careflow.store.database import open_repository
    from workflows.loading import load_resources

    repo = open_repository(url)
    try:
        return load_resources(repo, generate_region(inhabitants, seed, reference_date=date(2026, 3, 2)).resources()).total
    finally:
        repo.close()


def plans(url: str) -> set[str]:
    from careflow.engine.reading import search_all
    from careflow.store.database import open_repository

    repo = open_repository(url, migrate=False)
    try:
        return {s.id for s in search_all(repo, "CarePlan", [])}
    finally:
        repo.close()


def enrol_in_process(url: str, spec: str, partitions: int) -> tuple[float, dict[str, Any]]:
    from workflows import flows
    from workflows.resources import close_all

    os.environ["CAREFLOW_DATABASE_URL"] = url
    started = time.perf_counter()
    result = flows.with_runner(flows.enrol_region, spec)(db_url=None, start=date(2026, 3, 2), partitions=partitions)
    seconds = time.perf_counter() - started
    close_all()
    return seconds, result


def shared_prefect_server() -> None:
    """One temporary Prefect server for the run, its URL exported for every worker and process."""
    from prefect.server.api.server import SubprocessASGIServer

    from workflows import running

    if not os.environ.get("PREFECT_API_URL"):
        running.start_temporary_prefect_server(lambda line: None, "bench").wait()
        os.environ["PREFECT_API_URL"] = SubprocessASGIServer().api_url


def runners(a: argparse.Namespace, backend: str) -> None:
    shared_prefect_server()
    rows = []
    made = []
    for spec in ("threads", f"dask:{a.dask_workers}"):
        url, drop = fresh(backend, a.pg_url, "runner")
        try:
            load(url, a.inhabitants, a.seed)
            seconds, result = enrol_in_process(url, spec, a.partitions)
            made.append(plans(url))
            rows.append((spec, seconds, result["total"].get("enrolled", 0)))
        finally:
            drop()
    assert made[0] == made[1] and made[0], "the runners made different plans"
    base = rows[0][1]
    print(f"{backend}: enrolment of {rows[0][2]:,} patients ({a.inhabitants:,} inhabitants, {a.partitions} partitions)")
    for spec, seconds, enrolled in rows:
        print(f"  {spec:10} {seconds:7.1f}s  {enrolled / seconds:7.1f} patients/s  {seconds / base:5.2f}x the thread runner")
    print(f"  same {len(made[0]):,} CarePlans either way")


def shards(a: argparse.Namespace, backend: str) -> None:
    careflow = [sys.executable, "-P", "-m", "careflow.cli"]
    shared_prefect_server()  # the processes' start-up is measured, a Prefect server's start is not
    env = dict(os.environ)
    one_url, drop_one = fresh(backend, a.pg_url, "whole")
    stores = [fresh(backend, a.pg_url, f"shard{k}") for k in range(a.shards)]
    try:
        for k, (url, _) in enumerate(stores):
            load(url, a.inhabitants, a.seed + k)
        load(one_url, a.inhabitants, a.seed)  # the baseline: one shard, alone
        args = ["enrol", "--start", "2026-03-02", "--partitions", str(a.partitions), "--json"]
        started = time.perf_counter()
        whole = subprocess.run([*careflow, *args, "--db", one_url], env=env, capture_output=True, text=True, timeout=3600)
        whole_s = time.perf_counter() - started
        assert whole.returncode == 0, whole.stderr[-500:]
        started = time.perf_counter()
        procs = [subprocess.Popen([*careflow, *args, "--db", url], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for url, _ in stores]
        outs = [p.communicate(timeout=3600) for p in procs]
        shards_s = time.perf_counter() - started
        assert all(p.returncode == 0 for p in procs), [o[1][-300:] for o in outs]
        enrolled_whole = json.loads(whole.stdout)["total"].get("enrolled", 0)
        enrolled_shards = sum(json.loads(o[0])["total"].get("enrolled", 0) for o in outs)
        alone, together = enrolled_whole / whole_s, enrolled_shards / shards_s
        print(f"{backend}: {a.shards} shards of {a.inhabitants:,} inhabitants, each its own store and enrol process")
        print(f"  baseline, one shard alone: {enrolled_whole:,} patients in {whole_s:6.1f}s ({alone:6.1f}/s)")
        print(f"  {a.shards} shards at once: {enrolled_shards:,} patients in {shards_s:6.1f}s "
              f"({together:6.1f}/s, {together / alone:4.2f}x the throughput)")
    finally:
        drop_one()
        for _, drop in stores:
            drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inhabitants", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=0, help="also run K shards at once (0: skip)")
    ap.add_argument("--only-shards", action="store_true", help="skip the runner comparison")
    ap.add_argument("--pg-url", help="PostgreSQL instead of SQLite files")
    a = ap.parse_args()
    backend = "postgres" if a.pg_url else "sqlite"
    if not a.only_shards:
        runners(a, backend)
    if a.shards:
        shards(a, backend)


if __name__ == "__main__":
    main()
