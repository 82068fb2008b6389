#!/usr/bin/env python3
"""Transaction ingest under concurrent ingesters: is the write lock shared fairly? (issue #13)

For each backend (SQLite file; PostgreSQL with ``--pg-url``) and, on SQLite, with and without the
in-process write queue (``CAREFLOW_SQLITE_WRITE_QUEUE=off``: SQLite's busy handler alone, as before):

1. start ``python -m careflow.api.server`` (what ``careflow serve`` runs) over a fresh database, with a
   system token, encryption at rest and the audit trail on, as in production;
2. post ``--bundles`` transaction Bundles of ``--bundle-size`` entries (care-plan shaped: patient,
   condition, care team, goals, plan, ten Tasks each, urn:uuid references) with 1 ingester: the
   baseline, a bundle with the lock to itself;
3. the same again with 2 and 4 concurrent ingesters (each posts its next bundle when the last one
   is answered) and print p50 / p99 / max latency per bundle and resources per second.

Fair queueing means the p99 at 4 ingesters is about 4x the single-ingester p50 (each bundle waits
for the three ahead of it), not a lottery.  Usage:

    python benchmarks/bench_ingest.py                      # SQLite, 12 bundles of 500 per level
    python benchmarks/bench_ingest.py --bundles 40 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
Only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from typing import Any

import httpx
import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_api  # noqa: E402  (the same server start, data and fresh databases as the API benchmark)


def post_all(base: str, groups: list[list[tuple[str, dict[str, Any]]]], ids: dict[str, str],
             ingesters: int) -> tuple[list[float], float, int]:
    """Post every group with ``ingesters`` concurrent clients; (latencies, seconds, errors)."""
    todo: queue.Queue[list[tuple[str, dict[str, Any]]]] = queue.Queue()
    for g in groups:
        todo.put(g)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    headers = {"Content-Type": "application/fhir+json", **bench_api.AUTH}

    def worker() -> None:
        with httpx.Client(timeout=900, headers=headers) as client:
            while True:
                try:
                    group = todo.get_nowait()
                except queue.Empty:
                    return
                body = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"fullUrl": u, "resource": bench_api._resolve(r, ids), "request": {"method": "POST", "url": r["resourceType"]}}
                    for u, r in group]})
                t = time.perf_counter()
                response = client.post(base, content=body)
                took = time.perf_counter() - t
                with lock:
                    latencies.append(took)
                    if response.status_code != 200:
                        errors[0] += 1
                        print(f"bundle failed: {response.status_code} {response.text[:200]}", file=sys.stderr)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(ingesters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started, errors[0]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return 1000 * s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


def run(backend: str, a: argparse.Namespace, queue_on: bool) -> list[dict[str, Any]]:
    url, drop = bench_api.fresh_database(backend, a.pg_url, "ingest")
    if queue_on:
        os.environ.pop("CAREFLOW_SQLITE_WRITE_QUEUE", None)
    else:
        os.environ["CAREFLOW_SQLITE_WRITE_QUEUE"] = "off"
    levels = [int(x) for x in a.ingesters.split(",")]
    groups, _ = bench_api.bundles(a.bundle_size * a.bundles * len(levels) + 40, a.bundle_size)
    roles, rest = groups[0], groups[1:]
    proc, base = bench_api.start_server(url)
    rows = []
    try:
        ids: dict[str, str] = {}
        with httpx.Client(timeout=600, headers={"Content-Type": "application/fhir+json", **bench_api.AUTH}) as client:
            r = client.post(base, content=orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"fullUrl": u, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
                for u, res in roles]}))
            r.raise_for_status()
            for (u, _), e in zip(roles, r.json()["entry"]):
                loc = e["response"]["location"].split("/")
                ids[u] = f"{loc[0]}/{loc[1]}"
        for i, n in enumerate(levels):
            part = rest[i * a.bundles:(i + 1) * a.bundles]
            latencies, seconds, errors = post_all(base, part, ids, n)
            resources = sum(len(g) for g in part)
            rows.append({"backend": backend, "queue": "on" if queue_on else "off (busy handler)", "ingesters": n,
                         "bundles": len(part), "errors": errors, "p50_ms": pct(latencies, 0.5),
                         "p99_ms": pct(latencies, 0.99), "max_ms": 1000 * max(latencies),
                         "res_per_s": resources / seconds})
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        os.environ.pop("CAREFLOW_SQLITE_WRITE_QUEUE", None)
        drop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=int, default=12, help="bundles per concurrency level")
    ap.add_argument("--bundle-size", type=int, default=500)
    ap.add_argument("--ingesters", default="1,2,4", help="concurrency levels, comma-separated (the first is the baseline)")
    ap.add_argument("--pg-url", help="also measure PostgreSQL (a schema of this run, dropped after)")
    ap.add_argument("--no-before", action="store_true", help="skip the SQLite run without the write queue")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    a = ap.parse_args()
    rows: list[dict[str, Any]] = []
    if not a.no_before and not a.no_sqlite:
        rows += run("sqlite", a, queue_on=False)
    if not a.no_sqlite:
        rows += run("sqlite", a, queue_on=True)
    if a.pg_url:
        rows += run("postgres", a, queue_on=True)
    print(f"transaction bundles of {a.bundle_size} entries, {a.bundles} per level; latency per bundle")
    print(f"{'backend':9} {'write queue':19} {'ingesters':>9} {'bundles':>7} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'res/s':>7}  p99 / 1-ingester p50")
    base_p50: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["backend"], r["queue"])
        base_p50.setdefault(key, r["p50_ms"])
        print(f"{r['backend']:9} {r['queue']:19} {r['ingesters']:>9} {r['bundles']:>7} {r['errors']:>4} "
              f"{r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} {r['max_ms']:>8.0f} {r['res_per_s']:>7.0f}  "
              f"{r['p99_ms'] / base_p50[key]:.1f}x")


if __name__ == "__main__":
    main()
