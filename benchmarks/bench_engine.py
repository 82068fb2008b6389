"""Benchmark: enrol and sweep the demo region through the Prefect flows, next to a baseline that
calls the same engine functions straight on the store (no orchestration), in the same run.

    .venv/bin/python benchmarks/bench_engine.py [--inhabitants 100000] [--days 45] [--pg URL | --sqlite-only]
    .venv/bin/python benchmarks/bench_engine.py --feed-cost --inhabitants 5000   # the Subscription feed's cost

For each backend the region is loaded once (timed separately), then copied (SQLite: the file;
PostgreSQL: CREATE DATABASE ... TEMPLATE) so the baseline and the flows start from identical
stores.  Prefect overhead = flow wall time minus the wall time during which engine code was running
inside the task runs (union of their intervals); the temporary Prefect server's start-up is a
one-off and reported on its own.  Enrolment is also compared with writing the same JSON straight into
the database (the resources it created, one plain insert each, batched per 500), and the sweep is run
every morning from the day after enrolment to ``--days`` later (occurrences open, Tasks turn overdue,
escalations fire), each day next to a full sweep of that day (every active plan read, nothing left
to write), which is what the sweep did before the due-date index.  PostgreSQL URL: --pg, else $CAREFLOW_TEST_DATABASE_URL; the
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
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_HOME = tempfile.mkdtemp(prefix="careflow-bench-prefect-")
os.environ.setdefault("PREFECT_HOME", _HOME)
# removed at exit, after Prefect's own exit handlers (registered later, so run earlier) stop its server
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
from workflows.prefect_env import configure  # noqa: E402

configure(quiet_console=True)

START = date(2026, 11, 2)
SWEEP_AT = datetime(2026, 11, 3, 6, 0, tzinfo=timezone.utc)  # the next morning's daily sweep
WORK = ("tasks-opened", "tasks-overdue", "escalated", "plan-reviews", "plans-completed")


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


def straight_json(repo, url: str) -> tuple[int, float]:
    """The enrolment's resources (read back, untimed) written again as plain JSON rows into a scratch
    table of the same database: the floor for writing what enrolment writes."""
    from sqlalchemy import create_engine, text

    from careflow.engine.reading import search_all
    from careflow.fhir import exact_json

    bodies = [exact_json.dumps(s.resource) for rtype in ("CareTeam", "Goal", "CarePlan", "Task")
              for s in search_all(repo, rtype, []) if s.resource]
    engine = create_engine(url)
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE bench_json (pk INTEGER PRIMARY KEY, content {blob} NOT NULL)"))
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for i in range(0, len(bodies), 500):
            with conn.begin():
                conn.execute(text("INSERT INTO bench_json (pk, content) VALUES (:pk, :c)"),
                             [{"pk": i + k, "c": b} for k, b in enumerate(bodies[i:i + 500])])
    elapsed = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_json"))
    engine.dispose()
    return len(bodies), elapsed


def baseline(url: str, days: int) -> dict[str, Any]:
    """The engine on its own: find, enrol, then every morning's sweep, in this thread, no Prefect."""
    from careflow.engine import enrolment, sweep
    from careflow.programs.loader import load_directory
    from careflow.store.database import open_repository

    repo = open_repository(url)
    programs = load_directory(None)
    t0 = time.perf_counter()
    ids = enrolment.find_candidates(repo, programs)
    counts = enrolment.enrol(repo, programs, ids, START)
    t1 = time.perf_counter()
    raw_n, raw_s = straight_json(repo, url)
    mornings = []
    for n in range(1, days + 1):
        at = SWEEP_AT + timedelta(days=n - 1)
        due = len(sweep.due_patients(repo, programs, at))
        t2 = time.perf_counter()
        swept = sweep.sweep(repo, programs, at)
        t3 = time.perf_counter()
        everyone = sweep.plan_patients(repo)
        full = sweep.sweep(repo, programs, at, everyone, record_due=False)  # what it used to read: every plan
        t4 = time.perf_counter()
        assert not {k for k in WORK if full.total.get(k)}, "the full sweep found work the indexed one left"
        mornings.append({"day": n, "due": due, "patients": len(everyone), "s": t3 - t2, "full_s": t4 - t3,
                         **{k: swept.total.get(k, 0) for k in WORK}})
    repo.close()
    return {"enrol_s": t1 - t0, "patients": counts.total.get("enrolled", 0),
            "resources": counts.total.get("resources-created", 0), "raw_n": raw_n, "raw_s": raw_s,
            "mornings": mornings, "sweep_s": mornings[0]["s"], "opened": mornings[0]["tasks-opened"],
            "plans": mornings[0]["patients"]}


def orchestrated(url: str, partitions: int) -> dict[str, float]:
    """The same work through the flows (ThreadPoolTaskRunner), with engine time measured inside."""
    from workflows import flows, resources

    enrol_time, sweep_time = Intervals(), Intervals()
    real = (flows.enrolment.enrol, flows.enrolment.find_candidates, flows.sweep.sweep, flows.sweep.due_patients)
    flows.enrolment.enrol = enrol_time.wrap(real[0])
    flows.enrolment.find_candidates = enrol_time.wrap(real[1])
    flows.sweep.sweep = sweep_time.wrap(real[2])
    flows.sweep.due_patients = sweep_time.wrap(real[3])
    try:
        resources.repository(url)  # open (and migrate-check) outside the timed runs, as a worker would
        t0 = time.perf_counter()
        enrolled = flows.enrol_region(url, start=START, partitions=partitions)
        t1 = time.perf_counter()
        swept = flows.sweep_region(url, now=SWEEP_AT, partitions=partitions)
        t2 = time.perf_counter()
    finally:
        (flows.enrolment.enrol, flows.enrolment.find_candidates, flows.sweep.sweep, flows.sweep.due_patients) = real
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
    print(f"{'':24}{'baseline (no Prefect)':>24}{'Prefect flows':>24}   (sweep: the first morning)")
    for phase in ("enrol", "sweep"):
        b, f = base[f"{phase}_s"], flow[f"{phase}_s"]
        print(f"{phase + ' wall time':24}{b:>23.1f}s{f:>23.1f}s")
    print(f"{'patients enrolled':24}{base['patients']:>24,}{flow['patients']:>24,}")
    print(f"{'enrol patients/s':24}{base['patients'] / base['enrol_s']:>24,.0f}{flow['patients'] / flow['enrol_s']:>24,.0f}")
    print(f"{'enrol resources/s':24}{base['resources'] / base['enrol_s']:>24,.0f}{flow['resources'] / flow['enrol_s']:>24,.0f}")
    print(f"{'sweep tasks opened':24}{base['opened']:>24,}{flow['opened']:>24,}")
    print(f"enrol vs the same JSON straight into the database: {base['raw_n']:,} resources in "
          f"{base['raw_s']:.1f}s ({base['raw_n'] / max(base['raw_s'], 1e-9):,.0f}/s); enrolment "
          f"{base['enrol_s']:.1f}s = {base['enrol_s'] / max(base['raw_s'], 1e-9):.1f}x (aim: within 2x)")
    print("daily sweep through the due-date index vs a full sweep of the same morning (every active plan read):")
    print(f"{'day':>5}{'due':>8}{'of':>8}{'index s':>9}{'full s':>9}" + "".join(f"{k:>16}" for k in WORK))
    mornings = base["mornings"]
    busiest = max(mornings[1:] or mornings, key=lambda m: (sum(m[k] for k in WORK), m["day"]))
    shown = {mornings[0]["day"], mornings[1]["day"] if len(mornings) > 1 else 1, busiest["day"], mornings[-1]["day"]}
    for m in mornings:
        if m["day"] in shown:
            print(f"{m['day']:>5}{m['due']:>8,}{m['patients']:>8,}{m['s']:>9.2f}{m['full_s']:>9.2f}"
                  + "".join(f"{m[k]:>16,}" for k in WORK))
    later = mornings[1:] or mornings
    print(f"days 2-{mornings[-1]['day']}: index {sum(m['s'] for m in later) / len(later):.2f}s a morning on average "
          f"(max {max(m['s'] for m in later):.2f}s), full {sum(m['full_s'] for m in later) / len(later):.2f}s; "
          f"work done: " + ", ".join(f"{k} {sum(m[k] for m in mornings):,}" for k in WORK))
    for phase in ("enrol", "sweep"):
        wall, engine = flow[f"{phase}_s"], flow[f"{phase}_engine_s"]
        print(f"Prefect overhead in {phase}: {max(wall - engine, 0):.1f}s of {wall:.1f}s "
              f"({max(wall - engine, 0) / wall:.0%}); engine busy {engine:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inhabitants", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--days", type=int, default=60, help="mornings swept after enrolment (baseline run)")
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
            base = baseline(f"sqlite:///{tmp / 'base.db'}", args.days)
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
            base = baseline(base_url, args.days)
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
