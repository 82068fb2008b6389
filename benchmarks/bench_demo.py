#!/usr/bin/env python3
"""``careflow demo`` as a newcomer meets it: the timeline to the first answer, the silent gaps, the disk.

Runs ``careflow demo`` in a fresh data directory (a new SQLite store and a new Prefect home, so
Prefect's first start and its schema migration are included, as on a fresh clone), and records:

* every progress line with its time since start, and the longest silence between two lines;
* when the FHIR API first answers (``GET /fhir/metadata``, polled every 0.2 s), and when the demo
  says its care plans are ready (enrolment and the sweep run behind the API);
* the SQLite file and its WAL, sampled every second while the demo works and once more after it
  exits (Ctrl-C after the first answer), next to the baseline: the size of the region's resources
  as compact JSON (``orjson.dumps`` of each, summed; the same deterministic region).

Usage:
    python benchmarks/bench_demo.py                       # 10,000 inhabitants
    python benchmarks/bench_demo.py --inhabitants 100000  # the default region of ./dev demo
Only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_size(inhabitants: int, seed: int) -> tuple[int, int]:
    """Bytes of the region's resources as compact JSON, and their number (the disk baseline)."""
    import orjson

    from careflow.region.generate import generate_region

    region = generate_region(inhabitants, seed, reference_date=date.today())
    total = n = 0
    for res in region.resources():
        total += len(orjson.dumps(res))
        n += 1
    return total, n


def stored_json_size(data: Path) -> tuple[int, int]:
    """Bytes of every version the store holds, as the JSON it stores (decrypted, inflated), and their
    number: the baseline the database's size is compared with."""
    os.environ["CAREFLOW_DATA_DIR"] = str(data)  # the store's master key file lives there
    from careflow.store.database import open_repository

    repo = open_repository(f"sqlite:///{data / 'careflow.db'}", migrate=False)
    total = n = 0
    try:
        with repo.engine.connect() as conn:
            repo.keys.ensure(conn)
            rows = conn.exec_driver_sql("SELECT res_pk, version, content FROM resource_version WHERE content IS NOT NULL")
            for pk, version, blob in rows:
                total += len(repo.keys.open(pk, version, bytes(blob), conn) if repo.keys.enabled else blob)
                n += 1
    finally:
        repo.close()
    return total, n


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--stored-json":  # the baseline of a kept data directory
        stored, versions = stored_json_size(Path(sys.argv[2]))
        print(f"{versions:,} versions, {mb(stored)} of JSON")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inhabitants", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the data directory (printed)")
    ap.add_argument("--until-answer", action="store_true", help="stop at the first answer, not when the plans are ready")
    a = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="careflow-bench-demo-"))
    db = data / "careflow.db"
    wal = Path(str(db) + "-wal")
    port = free_port()
    env = dict(os.environ, CAREFLOW_DATA_DIR=str(data), PREFECT_HOME=str(data / "prefect"))
    for key in ("PREFECT_API_URL", "CAREFLOW_DATABASE_URL"):
        env.pop(key, None)
    careflow = Path(sys.executable).with_name("careflow")
    started = time.monotonic()
    proc = subprocess.Popen([str(careflow), "demo", "--inhabitants", str(a.inhabitants), "--seed", str(a.seed),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    plans_ready: list[float] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            t = time.monotonic() - started
            if line.startswith("careflow: demo region"):
                print(f"  {t:7.1f}s  stdout: {line.rstrip()[:160]}", flush=True)
            if line.startswith("careflow: demo region ready"):
                plans_ready.append(t)

    threading.Thread(target=read_stdout, daemon=True).start()
    lines: list[tuple[float, str]] = []
    peak = {"db": 0, "wal": 0, "sum": 0}
    done = threading.Event()

    print(f"careflow demo --inhabitants {a.inhabitants:,} (fresh data dir, Prefect's first start included)", flush=True)

    def read_stderr() -> None:  # each line printed as it comes, so a run cut short still shows its timeline
        assert proc.stderr is not None
        previous = 0.0
        for line in proc.stderr:
            t = time.monotonic() - started
            lines.append((t, line.rstrip()))
            d = db.stat().st_size if db.exists() else 0
            w = wal.stat().st_size if wal.exists() else 0
            print(f"  {t:7.1f}s  (+{t - previous:5.1f}s)  [db {d / 1e6:6.0f} MB, WAL {w / 1e6:5.0f} MB]  {line.rstrip()}",
                  flush=True)
            previous = t

    def sample_disk() -> None:
        while not done.is_set():
            d = db.stat().st_size if db.exists() else 0
            w = wal.stat().st_size if wal.exists() else 0
            peak["db"], peak["wal"], peak["sum"] = max(peak["db"], d), max(peak["wal"], w), max(peak["sum"], d + w)
            done.wait(1.0)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    sampler = threading.Thread(target=sample_disk, daemon=True)
    sampler.start()
    first_answer = None
    while proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5).status_code == 200:
                first_answer = time.monotonic() - started
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    at_answer = {"db": db.stat().st_size if db.exists() else 0, "wal": wal.stat().st_size if wal.exists() else 0}
    while not a.until_answer and proc.poll() is None and not plans_ready:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done.set()
    sampler.join()
    reader.join(timeout=5)
    after = {"db": db.stat().st_size if db.exists() else 0, "wal": wal.stat().st_size if wal.exists() else 0}

    previous = 0.0
    longest = (0.0, "")
    for t, line in lines:
        gap = t - previous
        if gap > longest[0]:
            longest = (gap, line)
        previous = t
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the demo and the Prefect server it started
    print(f"CPU time of the demo's processes: {usage.ru_utime + usage.ru_stime:.0f}s "
          f"(wall {time.monotonic() - started:.0f}s: on a shared machine the wall time is the CPU's share)")
    print(f"first answer (GET /fhir/metadata): {first_answer:.1f}s" if first_answer else "no answer: the demo exited")
    if plans_ready:
        print(f"care plans ready (enrolled and swept): {plans_ready[0]:.1f}s")
    print(f"longest silence before a line: {longest[0]:.1f}s (before: {longest[1][:90]})")
    baseline, n = json_size(a.inhabitants, a.seed)
    print(f"baseline: the region's {n:,} resources as compact JSON: {mb(baseline)}")
    print(f"store at first answer: database {mb(at_answer['db'])} + WAL {mb(at_answer['wal'])} "
          f"= {(at_answer['db'] + at_answer['wal']) / baseline:.2f}x the JSON")
    print(f"peak while working: database {mb(peak['db'])}, WAL {mb(peak['wal'])}, together {mb(peak['sum'])}")
    print(f"after exit: database {mb(after['db'])} ({after['db'] / baseline:.2f}x the JSON) + WAL {mb(after['wal'])}")
    stored, versions = stored_json_size(data)
    print(f"baseline: the {versions:,} versions the store holds, as JSON: {mb(stored)}; "
          f"database after exit = {after['db'] / stored:.2f}x, peak database + WAL = {peak['sum'] / stored:.2f}x")
    if a.keep:
        print(f"kept: {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
