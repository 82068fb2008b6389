"""Benchmark: enrol and sweep the demo region through the Prefect flows, next to a baseline that
calls the same engine functions straight on the store (no orchestration), in the same run.

    .venv/bin/python benchmarks/bench_engine.py [--inhabitants 100000] [--pg URL | --sqlite-only]
    .venv/bin/python benchmarks/bench_engine.py --feed-cost --inhabitants 5000   # the Subscription feed's cost

For each backend the region is loaded once (timed separately), then copied (SQLite: the file;
PostgreSQL: CREATE DATABASE ... TEMPLATE) so the baseline and the flows start from identical
stores.  Prefect overhead = flow wall time minus the wall time during which engine code was running
inside the task runs (union of their intervals); the temporary Prefect server's start-up is a
one-off and reported on its own.  PostgreSQL URL: --pg, else $CAREFLOW_TEST_DATABASE_URL; the
benchmark creates and drops its own databases next to the one named.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_HOME = tempfile.mkdtemp(prefix="careflow-bench-prefect-")
os.environ.setdefault("PREFECT_HOME", _HOME)
# removed at exit, after Prefect's own exit handlers (registered later, so run earlier) stop its server
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
from workflows.prefect_env import configure  # noqa: E402

configure(quiet_console=True)

START = date(2026, 11, 2)
SWEEP_AT = datetime(2026, 11, 3, 6, 0, tzinfo=timezone.utc)  # the next morning's daily sweep


class Intervals:
    """Wall-clock intervals during which engine code ran (threads overlap; the union is what counts)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.spans.append((t0, time.perf_counter()))
        return timed

    def union(self) -> float:
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.spans):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total


def _pg_admin(url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                           dbname=u.database, autocommit=True), u


def fresh_pg(url: str, name: str, template: str | None = None) -> str:
    conn, u = _pg_admin(url)
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return u.set(database=name, drivername="postgresql+psycopg").render_as_string(hide_password=False)


def drop_pg(url: str, name: str) -> None:
    conn, _ = _pg_admin(url)
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(url: str, inhabitants: int, seed: int) -> tuple[int, float]:
    from careflow.region.generate import generate_region
    from careflow.store.database import open_repository
    from workflows.loading import load_resources, region_resources

    repo = open_repository(url)
    t0 = time.perf_counter()
    n = load_resources(repo, region_resources(generate_region(inhabitants, seed)), what="load",
                       progress=lambda line: print(f"  {line}", file=sys.stderr)).total
    elapsed = time.perf_counter() - t0
    repo.close()
    return n, elapsed


def baseline(url: str) -> dict[str, float]:
    """The engine on its own: find, enrol, sweep in this thread, no Prefect."""
    from careflow.engine import enrolment, sweep
    from careflow.programs.loader import load_directory
    from careflow.store.database import open_repository

    repo = open_repository(url)
    programs = load_directory(None)
    t0 = time.perf_counter()
    ids = enrolment.find_candidates(repo, programs)
    counts = enrolment.enrol(repo, programs, ids, START)
    t1 = time.perf_counter()
    swept = sweep.sweep(repo, programs, SWEEP_AT)
    t2 = time.perf_counter()
    repo.close()
    return {"enrol_s": t1 - t0, "sweep_s": t2 - t1, "patients": counts.total.get("enrolled", 0),
            "resources": counts.total.get("resources-created", 0), "plans": swept.total.get("plans", 0),
            "opened": swept.total.get("tasks-opened", 0)}


def orchestrated(url: str, partitions: int) -> dict[str, float]:
    """The same work through the flows (ThreadPoolTaskRunner), with engine time measured inside."""
    from workflows import flows, resources

    enrol_time, sweep_time = Intervals(), Intervals()
    real = (flows.enrolment.enrol, flows.enrolment.find_candidates, flows.sweep.sweep, flows.sweep.plan_patients)
    flows.enrolment.enrol = enrol_time.wrap(real[0])
    flows.enrolment.find_candidates = enrol_time.wrap(real[1])
    flows.sweep.sweep = sweep_time.wrap(real[2])
    flows.sweep.plan_patients = sweep_time.wrap(real[3])
    try:
        resources.repository(url)  # open (and migrate-check) outside the timed runs, as a worker would
        t0 = time.perf_counter()
        enrolled = flows.enrol_region(url, start=START, partitions=partitions)
        t1 = time.perf_counter()
        swept = flows.sweep_region(url, now=SWEEP_AT, partitions=partitions)
        t2 = time.perf_counter()
    finally:
        (flows.enrolment.enrol, flows.enrolment.find_candidates, flows.sweep.sweep, flows.sweep.plan_patients) = real
        resources.close_all()
    return {"enrol_s": t1 - t0, "sweep_s": t2 - t1, "enrol_engine_s": enrol_time.union(),
            "sweep_engine_s": sweep_time.union(), "patients": enrolled["total"].get("enrolled", 0),
            "resources": enrolled["total"].get("resources-created", 0), "plans": swept["total"].get("plans", 0),
            "opened": swept["total"].get("tasks-opened", 0)}


def feed_cost(src: Path, tmp: Path, rounds: int = 2) -> None:
    """Enrolment and the sweep with and without the Subscription feed, on copies of the same store in
    this one run (alternating, ``rounds`` times each): what one outbox row per Task/CarePlan version
    costs the bulk writes. Without: ``careflow.engine.feed.install`` made a no-op for the run."""
    from careflow.engine import enrolment, feed, sweep
    from careflow.programs.loader import load_directory
    from careflow.store.database import open_repository
    from careflow.store.tables import outbox

    programs = load_directory(None)
    real = feed.install
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    cpu: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    rows: dict[bool, int] = {}
    for n in range(rounds):
        for fed in (n % 2 == 0, n % 2 != 0):
            copy = tmp / f"feed-{n}-{fed}.db"
            shutil.copy(src, copy)
            feed.install = real if fed else (lambda repo: None)  # type: ignore[assignment]
            try:
                repo = open_repository(f"sqlite:///{copy}")
                t0, c0 = time.perf_counter(), time.process_time()
                enrolment.enrol(repo, programs, enrolment.find_candidates(repo, programs), START)
                t1, c1 = time.perf_counter(), time.process_time()
                sweep.sweep(repo, programs, SWEEP_AT)
                t2, c2 = time.perf_counter(), time.process_time()
                from sqlalchemy import func, select

                with repo.engine.connect() as conn:  # type: ignore[attr-defined]
                    rows[fed] = int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
                repo.close()
            finally:
                feed.install = real  # type: ignore[assignment]
            times[fed].append((t1 - t0, t2 - t1))
            cpu[fed].append((c1 - c0, c2 - c1))
            copy.unlink()
    print(f"\n== the Subscription feed's cost (SQLite, same run, best of {rounds} each) ==")
    print(f"{'':24}{'without the feed':>24}{'with the feed':>24}")
    for i, phase in enumerate(("enrol", "sweep")):
        without, with_ = min(t[i] for t in times[False]), min(t[i] for t in times[True])
        print(f"{phase + ' wall time':24}{without:>23.1f}s{with_:>23.1f}s   ({with_ / without - 1:+.0%})")
        without, with_ = min(t[i] for t in cpu[False]), min(t[i] for t in cpu[True])
        print(f"{phase + ' CPU time':24}{without:>23.1f}s{with_:>23.1f}s   ({with_ / without - 1:+.0%})")
    print(f"{'outbox rows left':24}{rows.get(False, 0):>24,}{rows.get(True, 0):>24,}")


def warm_up_prefect() -> float:
    """Start the temporary Prefect server with a trivial flow (a one-off cost, reported apart)."""
    from prefect import flow

    @flow(persist_result=False)
    def ping() -> int:
        return 1

    t0 = time.perf_counter()
    ping()
    return time.perf_counter() - t0


def report(backend: str, loaded: tuple[int, float], base: dict, flow: dict) -> None:
    n, load_s = loaded
    print(f"\n== {backend} ==")
    print(f"load region: {n:,} resources in {load_s:.1f}s ({n / load_s:,.0f} resources/s)")
    print(f"{'':24}{'baseline (no Prefect)':>24}{'Prefect flows':>24}")
    for phase in ("enrol", "sweep"):
        b, f = base[f"{phase}_s"], flow[f"{phase}_s"]
        print(f"{phase + ' wall time':24}{b:>23.1f}s{f:>23.1f}s")
    print(f"{'patients enrolled':24}{base['patients']:>24,}{flow['patients']:>24,}")
    print(f"{'enrol patients/s':24}{base['patients'] / base['enrol_s']:>24,.0f}{flow['patients'] / flow['enrol_s']:>24,.0f}")
    print(f"{'enrol resources/s':24}{base['resources'] / base['enrol_s']:>24,.0f}{flow['resources'] / flow['enrol_s']:>24,.0f}")
    print(f"{'sweep plans/s':24}{base['plans'] / max(base['sweep_s'], 1e-9):>24,.0f}{flow['plans'] / max(flow['sweep_s'], 1e-9):>24,.0f}")
    print(f"{'sweep tasks opened':24}{base['opened']:>24,}{flow['opened']:>24,}")
    for phase in ("enrol", "sweep"):
        wall, engine = flow[f"{phase}_s"], flow[f"{phase}_engine_s"]
        print(f"Prefect overhead in {phase}: {max(wall - engine, 0):.1f}s of {wall:.1f}s "
              f"({max(wall - engine, 0) / wall:.0%}); engine busy {engine:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inhabitants", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--pg", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"))
    ap.add_argument("--sqlite-only", action="store_true")
    ap.add_argument("--pg-only", action="store_true")
    ap.add_argument("--feed-cost", action="store_true",
                    help="only: enrol and sweep with and without the Subscription feed (SQLite, no Prefect)")
    ap.add_argument("--rounds", type=int, default=4, help="--feed-cost runs per variant, alternating (best kept)")
    args = ap.parse_args()
    if args.feed_cost:
        tmp = Path(tempfile.mkdtemp(prefix="careflow-bench-"))
        try:
            src = tmp / "loaded.db"
            n, load_s = load(f"sqlite:///{src}", args.inhabitants, args.seed)
            print(f"careflow engine benchmark, feed cost: {args.inhabitants:,} inhabitants ({n:,} resources loaded)")
            feed_cost(src, tmp, max(2, args.rounds))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return

    print(f"careflow engine benchmark: {args.inhabitants:,} inhabitants, {args.partitions} partitions, "
          f"{os.cpu_count()} CPUs")
    print(f"temporary Prefect server start-up (one-off): {warm_up_prefect():.1f}s")
    if not args.pg_only:
        tmp = Path(tempfile.mkdtemp(prefix="careflow-bench-"))
        try:
            src = tmp / "loaded.db"
            loaded = load(f"sqlite:///{src}", args.inhabitants, args.seed)
            for name in ("base.db", "flow.db"):
                shutil.copy(src, tmp / name)
            base = baseline(f"sqlite:///{tmp / 'base.db'}")
            flow = orchestrated(f"sqlite:///{tmp / 'flow.db'}", args.partitions)
            report("SQLite", loaded, base, flow)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.pg and not args.sqlite_only:
        admin = args.pg.replace("postgresql://", "postgresql+psycopg://", 1)
        # unique names: two runs at once (or a run beside the tests) never touch each other's databases
        run = uuid.uuid4().hex[:8]
        names = {part: f"careflow_bench_{part}_{run}" for part in ("src", "base", "flow")}
        try:
            src = fresh_pg(admin, names["src"])
            loaded = load(src, args.inhabitants, args.seed)
            from sqlalchemy import create_engine

            create_engine(src).dispose()
            base_url = fresh_pg(admin, names["base"], template=names["src"])
            flow_url = fresh_pg(admin, names["flow"], template=names["src"])
            base = baseline(base_url)
            flow = orchestrated(flow_url, args.partitions)
            report("PostgreSQL", loaded, base, flow)
        finally:
            from workflows import resources

            resources.close_all()  # the flows' pooled connections would block DROP DATABASE
            for name in names.values():
                drop_pg(admin, name)
    elif not args.sqlite_only:
        print("\n(PostgreSQL skipped: pass --pg URL or set CAREFLOW_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
