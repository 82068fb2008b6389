#!/usr/bin/env python3
"""Worklist benchmark: the searches a care giver waits for, as the corpus and an owner's Tasks grow.

For each backend (an SQLite file; PostgreSQL when a URL is given) the corpus is grown in steps
(``--sizes``, 10k and 100k resources by default; ``--million`` adds 1M) through the repository
(``unit_of_work(SYSTEM).create``, the write path ingest uses, encryption and blind index on), with
statistics refreshed after each load (``careflow.store.maintenance.analyze``).  Per patient: Patient,
CarePlan, three Observations, five Tasks.  Tasks are spread over owners so that at every size there
is an owner with 50 Tasks, one with 2 % and one with 20 % of all Tasks (10,000 at 100k resources).

At every size, for each owner, ``--repeat`` runs of each query, one at a time (latency, not load):

* ``Task?owner&status=requested&_count=50`` (the worklist; default total: exact up to the cap);
* the same with ``_total=accurate`` (what every page used to pay);
* the worklist page: open statuses, ``_sort=due-date``, ``_total=none`` (baseline: the same page read
  from ``task_worklist``'s partial index, migration 0009); the same through the plan from before
  0009 next to that plan's best SQL (drive by owner, probe status, rank every match by due date);
  page 5 of it by cursor;
* ``due-date=le…&priority=urgent&business-status=…`` filters on top;
* page 20 of the owner's requested Tasks, by following ``next`` cursors vs ``_offset=950``;
* ``CarePlan?patient&_revinclude=Task:based-on`` and ``Observation?patient&code&date``.

Each is printed next to its raw-SQL baseline, measured in the same run on the same database: the best
plain query for the same answer on the store's tables (index-ordered drive, covering probes, LIMIT,
the page's JSON fetched and decrypted by the same key ring, no access narrowing, no audit).

Usage:
    python benchmarks/bench_worklist.py                       # SQLite, 10k and 100k
    python benchmarks/bench_worklist.py --backend both --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/bench_worklist.py --sizes 2000,10000 --repeat 10   # a quick look
    python benchmarks/bench_worklist.py --million             # adds the 1M step (slow: ~15 min per backend)
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CAREFLOW_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())  # this run's key
os.environ.setdefault("CAREFLOW_AUDIT", "off")  # latency of the search itself; bench_api measures the trail

import orjson  # noqa: E402
from sqlalchemy import text  # noqa: E402

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.fhir.search_query import parse_search  # noqa: E402
from careflow.store.database import make_engine, resolve_url, upgrade, with_search_path  # noqa: E402
from careflow.store.sql import SqlRepository  # noqa: E402

PER_PATIENT = 10  # Patient, CarePlan, 3 Observations, 5 Tasks
TASKS_PER_PATIENT = 5
LOINC = ("29463-7", "8480-6", "4548-4")  # weight, systolic pressure, HbA1c
OPEN = "requested,accepted,received,ready,in-progress,on-hold"
STATUSES = ("requested",) * 8 + ("in-progress",) * 2 + ("completed",) * 8 + ("cancelled",) * 2
BATCH = 500
DISCIPLINES = ("nurse", "gp", "dietitian")  # each Task's performerType: a third of all Tasks per discipline
OPEN_INDEXED = "'requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold'"  # the partial index's predicate


def owner_of(j: int) -> str:
    """The owner of the j-th Task: 20 % 'big', 2 % 'mid', the first 50 of slot 22 'small', the rest 40 others."""
    slot = j % 100
    if slot < 20:
        return "big"
    if slot < 22:
        return "mid"
    if slot == 22 and j < 50 * 100:
        return "small"
    return f"bg{j % 40}"


class Corpus:
    """Grows the store deterministically; remembers what the queries need."""

    def __init__(self, repo: SqlRepository) -> None:
        self.repo = repo
        self.rnd = random.Random(13)
        self.patients: list[str] = []
        self.tasks = 0
        self.resources = 0
        self.owner_tasks: dict[str, int] = {}
        with repo.unit_of_work(SYSTEM) as uow:
            for name in ["big", "mid", "small", *(f"bg{i}" for i in range(40))]:
                uow.update({"resourceType": "PractitionerRole", "id": f"role-{name}", "active": True})
        self.resources += 43

    def grow_to(self, size: int) -> float:
        t0 = time.perf_counter()
        while self.resources < size:
            with self.repo.unit_of_work(SYSTEM) as uow:
                for _ in range(BATCH // PER_PATIENT):
                    for res in self._patient(len(self.patients)):
                        uow.update(res) if "id" in res else uow.create(res)
                    self.resources += PER_PATIENT
        return time.perf_counter() - t0

    def _patient(self, i: int) -> list[dict[str, Any]]:
        rnd = self.rnd
        pid = f"p{i}"
        self.patients.append(pid)
        subject = {"reference": f"Patient/{pid}"}
        out: list[dict[str, Any]] = [
            {"resourceType": "Patient", "id": pid, "name": [{"family": f"Bench{i}"}], "gender": "female"},
            {"resourceType": "CarePlan", "id": f"cp{i}", "status": "active", "intent": "plan", "subject": subject},
        ]
        for k in range(3):
            out.append({"resourceType": "Observation", "status": "final", "subject": subject,
                        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC[k]}]},
                        "effectiveDateTime": f"2026-{1 + rnd.randrange(12):02d}-{1 + rnd.randrange(28):02d}T08:00:00Z",
                        "valueQuantity": {"value": 50 + rnd.randrange(80), "unit": "kg"}})
        for _ in range(TASKS_PER_PATIENT):
            owner = owner_of(self.tasks)
            self.tasks += 1
            self.owner_tasks[owner] = self.owner_tasks.get(owner, 0) + 1
            due = f"2026-{1 + rnd.randrange(12):02d}-{1 + rnd.randrange(28):02d}"
            out.append({
                "resourceType": "Task", "status": rnd.choice(STATUSES), "intent": "order",
                "priority": rnd.choice(("routine", "routine", "urgent", "asap")),
                "businessStatus": {"coding": [{"system": "urn:bench:bs", "code": rnd.choice(("waiting", "due", "late"))}]},
                "for": subject, "basedOn": [{"reference": f"CarePlan/cp{i}"}],
                "owner": {"reference": f"PractitionerRole/role-{owner}"},
                "performerType": [{"coding": [{"system": "urn:bench:snomed", "code": DISCIPLINES[self.tasks % 3]},
                                              {"system": "urn:bench:hcparty", "code": "pers" + DISCIPLINES[self.tasks % 3]}]}],
                "restriction": {"period": {"start": due[:8] + "01", "end": due}},
            })
        return out


def make_store(backend: str, pg_url: str | None) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="cf-bench-worklist-"))
        return f"sqlite:///{folder / 'bench.db'}", lambda: shutil.rmtree(folder, ignore_errors=True)
    assert pg_url
    base = resolve_url(pg_url)
    schema = f"cf_bench_wl_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return with_search_path(base, schema), drop


# ------------------------------------------------------------------------------------------ timing


@dataclass
class Timing:
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        s = sorted(self.latencies)
        return 1000 * s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def paired(a: Callable[[], Any], b: Callable[[], Any], repeat: int) -> tuple[Timing, Any, Timing, Any]:
    """Time ``a`` and ``b`` alternately (a shared machine's load falls on both alike), after one warm-up each."""
    out_a, out_b = a(), b()
    ta, tb = Timing(), Timing()
    for _ in range(repeat):
        for fn, t in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            out = fn()
            t.latencies.append(time.perf_counter() - t0)
            if fn is a:
                out_a = out
            else:
                out_b = out
    return ta, out_a, tb, out_b


# ------------------------------------------------------------------------------------------ raw SQL


class Raw:
    """The best plain SQL for each answer on the store's tables: drive from the most selective index
    range in res_pk order, probe the rest per row, LIMIT, then fetch and decrypt the page's JSON."""

    def __init__(self, repo: SqlRepository) -> None:
        self.repo = repo
        self.pg = repo.engine.dialect.name == "postgresql"
        self.p = "%s" if self.pg else "?"
        self.false = "false" if self.pg else "0"

    def run(self, sql: str, params: tuple[Any, ...], count_sql: str | None = None) -> tuple[list[str], int | None]:
        with self.repo.engine.connect() as conn:
            self.repo.keys.ensure(conn)
            cur = conn.connection.cursor()
            cur.execute(sql, params)
            rows = cur.fetchall()
            ids = []
            for pk, rid, version, content in rows:
                raw = bytes(content)
                if self.repo.keys.enabled:
                    raw = self.repo.keys.open(pk, version, raw, conn)
                orjson.loads(raw)  # the JSON is parsed as the store's reader would
                ids.append(rid)
            total = None
            if count_sql is not None:
                cur.execute(count_sql, params)
                total = cur.fetchone()[0]
                if "LIMIT 1001" in count_sql and total > 1000:
                    total = None  # the default total: exact up to the cap, left out beyond
            conn.rollback()
            return ids, total

    def _page(self, drive: str, probes: str, order: str = "d.res_pk", limit: int = 50, extra_from: str = "") -> str:
        return (f"SELECT r.pk, r.id, v.version, v.content FROM (SELECT DISTINCT d.res_pk AS pk{', ' + order + ' AS o' if order != 'd.res_pk' else ''} "
                f"FROM {drive} JOIN resource r ON r.pk = d.res_pk {extra_from} WHERE r.deleted = {self.false} {probes} "
                f"ORDER BY {'o, d.res_pk' if order != 'd.res_pk' else 'd.res_pk'} LIMIT {limit}) page "
                f"JOIN resource r ON r.pk = page.pk JOIN resource_version v ON v.res_pk = r.pk AND v.version = r.version "
                f"ORDER BY {'page.o, page.pk' if order != 'd.res_pk' else 'page.pk'}")

    def owner(self) -> str:
        return ("idx_reference d", f"AND d.rtype = 'Task' AND d.param = 'owner' AND d.target_id = {self.p} "
                "AND d.target_type = 'PractitionerRole'")

    def status(self, codes: str) -> str:
        inlist = ", ".join(f"'{c}'" for c in codes.split(","))
        return f"AND EXISTS (SELECT 1 FROM idx_token s WHERE s.res_pk = r.pk AND s.param = 'status' AND s.code IN ({inlist}))"

    def worklist(self, status: str = "requested", extra: str = "", after_pk: int | None = None,
                 count: str | None = None, offset: int = 0) -> tuple[str, str | None]:
        drive, owner = self.owner()
        after = f" AND d.res_pk > {after_pk}" if after_pk is not None else ""
        sql = self._page(drive, owner + after + " " + self.status(status) + " " + extra)
        if offset:
            sql = sql.replace(" LIMIT 50)", f" LIMIT 50 OFFSET {offset})")
        count_sql = None
        if count == "capped":
            count_sql = (f"SELECT count(*) FROM (SELECT DISTINCT d.res_pk FROM {drive} JOIN resource r ON r.pk = d.res_pk "
                         f"WHERE r.deleted = {self.false} {owner} {self.status(status)} ORDER BY d.res_pk LIMIT 1001) c")
        elif count == "accurate":
            count_sql = (f"SELECT count(*) FROM {drive} JOIN resource r ON r.pk = d.res_pk "
                         f"WHERE r.deleted = {self.false} {owner} {self.status(status)}")
        return sql, count_sql

    def sorted_worklist(self) -> str:
        drive, owner = self.owner()
        return self._page(drive, owner + " " + self.status(OPEN), order="dd.low",
                          extra_from="JOIN idx_date dd ON dd.res_pk = r.pk AND dd.param = 'due-date'")

    def sorted_from_worklist_index(self, after: tuple[str, int] | None = None) -> str:
        """The sorted page on ``task_worklist`` (migration 0009): the partial index on open Tasks in
        (owner, due) order, read from the owner's first open Task on and stopped after fifty."""
        inlist = ", ".join(f"'{c}'" for c in OPEN.split(","))
        keyset = ""
        if after is not None:
            keyset = (f" AND (w.due_missing = {'true' if self.pg else '1'} OR w.due > '{after[0]}' "
                      f"OR (w.due = '{after[0]}' AND w.res_pk > {after[1]}))")
        return (f"SELECT r.pk, r.id, v.version, v.content FROM (SELECT w.res_pk AS pk, w.due_missing AS m, w.due AS o "
                f"FROM task_worklist w JOIN resource r ON r.pk = w.res_pk WHERE w.owner_id = {self.p} "
                f"AND w.owner_type = 'PractitionerRole' AND w.status IN ({OPEN_INDEXED}) "
                f"AND w.status IN ({inlist}) AND r.deleted = {self.false}{keyset} "
                f"ORDER BY w.owner_id, w.owner_type, w.due_missing, w.due, w.res_pk LIMIT 50) page "
                f"JOIN resource r ON r.pk = page.pk JOIN resource_version v ON v.res_pk = r.pk AND v.version = r.version "
                f"ORDER BY page.m, page.o, page.pk")

    def compiled(self, params: list[tuple[str, str]]) -> str:
        """The store's own statement for the page on task_performer (migration 0009), as plain SQL with
        the page's JSON joined: for the queue the merge of per-coding ranges is the best plain query known."""
        from careflow.store.sql_worklist import sorted_page

        stmt = sorted_page(parse_search("Task", params, strict=True), None, after=None, limit=50)
        assert stmt is not None
        inner = str(stmt.compile(dialect=self.repo.engine.dialect, compile_kwargs={"literal_binds": True}))
        return (f"SELECT r.pk, r.id, v.version, v.content FROM ({inner}) page JOIN resource r ON r.pk = page.pk "
                "JOIN resource_version v ON v.res_pk = r.pk AND v.version = r.version "
                "ORDER BY CASE WHEN page.due IS NULL THEN 1 ELSE 0 END, page.due, page.pk")

    def filters(self) -> str:
        return ("AND EXISTS (SELECT 1 FROM idx_date x WHERE x.res_pk = r.pk AND x.param = 'due-date' AND x.low <= '2026-06-30 23:59:59.999999') "
                "AND EXISTS (SELECT 1 FROM idx_token x WHERE x.res_pk = r.pk AND x.param = 'priority' AND x.code = 'urgent') "
                "AND EXISTS (SELECT 1 FROM idx_token x WHERE x.res_pk = r.pk AND x.param = 'business-status' "
                "AND x.code = 'late' AND x.system = 'urn:bench:bs')")

    def plan(self, patient: str) -> tuple[list[str], None]:
        p = self.p
        plans = self._page("idx_reference d", f"AND d.rtype = 'CarePlan' AND d.param = 'patient' AND d.target_id = {p} "
                           "AND d.target_type = 'Patient'")
        ids, _ = self.run(plans, (patient,))
        tasks = self._page("idx_reference d", f"AND d.rtype = 'Task' AND d.param = 'based-on' AND d.target_type = 'CarePlan' "
                           f"AND d.target_id IN ({', '.join([p] * len(ids))})", limit=1000) if ids else None
        more = self.run(tasks, tuple(ids))[0] if tasks else []
        return ids + more, None

    def observations(self, patient: str) -> tuple[list[str], None]:
        p = self.p
        sql = self._page("idx_reference d", f"AND d.rtype = 'Observation' AND d.param = 'patient' AND d.target_id = {p} "
                         "AND d.target_type = 'Patient' AND EXISTS (SELECT 1 FROM idx_token x WHERE x.res_pk = r.pk AND "
                         "x.param = 'code' AND x.code = '29463-7' AND x.system = 'http://loinc.org') AND EXISTS (SELECT 1 "
                         "FROM idx_date x WHERE x.res_pk = r.pk AND x.param = 'date' AND x.high >= '2026-03-01 00:00:00.000000')")
        return self.run(sql, (patient,))[0], None


# ------------------------------------------------------------------------------------------ driver


def store_search(repo: SqlRepository, rtype: str, params: list[tuple[str, str]]) -> Callable[[], Any]:
    query = parse_search(rtype, params, strict=True)

    def run() -> tuple[list[str], int | None, str | None]:
        with repo.unit_of_work(SYSTEM) as uow:
            result = uow.search(query)
        return [s.id for s in result.matches] + [s.id for s in result.included], result.total, result.next_cursor

    return run


class general_plan:
    """The store's plan from before migration 0009 (``sorted_page`` off): what the sorted page cost."""

    def __enter__(self) -> None:
        from careflow.store import sql

        self._saved = sql.sorted_page
        sql.sorted_page = lambda *a, **k: None

    def __exit__(self, *exc: Any) -> None:
        from careflow.store import sql

        sql.sorted_page = self._saved


def cursor_after_pages(repo: SqlRepository, params: list[tuple[str, str]], pages: int,
                       keys: int = 0) -> tuple[str | None, str | None]:
    """The cursor of page ``pages`` + 1 (by following next links) and the id it continues after."""
    cursor = None
    for _ in range(pages):
        extra = [("_cursor", cursor)] if cursor else []
        cursor = store_search(repo, "Task", [*params, *extra])()[2]
        if cursor is None:
            return None, None
    from careflow.fhir.search_cursor import decode

    return cursor, decode(cursor, keys).id


def measure(repo: SqlRepository, corpus: Corpus, repeat: int) -> list[dict[str, Any]]:
    raw = Raw(repo)
    rows: list[dict[str, Any]] = []

    def row(name: str, owner_tasks: int | str, store: Callable[[], Any], base: Callable[[], Any],
            check: bool = True, totals: bool = True) -> None:
        """``same``: the baseline found the same ids in the same order (and, with ``totals``, the same total)."""
        ts, got, tb, want = paired(store, base, repeat)
        same = (got[0] == want[0] and (got[1] == want[1] or not totals)) if check else None
        rows.append({"query": name, "tasks/owner": owner_tasks, "p50": ts.p(0.5), "p99": ts.p(0.99),
                     "sql p50": tb.p(0.5), "sql p99": tb.p(0.99), "ratio p50": ts.p(0.5) / max(tb.p(0.5), 1e-6),
                     "same": "yes" if same else ("-" if same is None else "NO")})

    for owner in ("small", "mid", "big"):
        n = corpus.owner_tasks.get(owner, 0)
        ref, rid = f"PractitionerRole/role-{owner}", f"role-{owner}"
        base = [("owner", ref), ("status", "requested"), ("_count", "50")]
        sql, count = raw.worklist(count="capped")
        row("Task?owner&status=requested", n, store_search(repo, "Task", base), partial(raw.run, sql, (rid,), count))
        sql2, count2 = raw.worklist(count="accurate")
        row("  ... &_total=accurate", n, store_search(repo, "Task", [*base, ("_total", "accurate")]),
            partial(raw.run, sql2, (rid,), count2))
        sorted_q = [("owner", ref), ("status", OPEN), ("_sort", "due-date"), ("_total", "none"), ("_count", "50")]
        sql3 = raw.sorted_from_worklist_index()
        row("  open, _sort=due-date", n, store_search(repo, "Task", sorted_q), partial(raw.run, sql3, (rid,)))
        with general_plan():
            row("  ... plan before 0009 vs its best SQL", n, store_search(repo, "Task", sorted_q),
                partial(raw.run, raw.sorted_worklist(), (rid,)))
        cursor, after_id = cursor_after_pages(repo, sorted_q, 4, keys=1)
        if cursor is not None:
            from careflow.fhir.search_cursor import decode

            mark = decode(cursor, 1).values[0]
            with repo.engine.connect() as conn:
                after_pk = conn.execute(text("SELECT pk FROM resource WHERE type = 'Task' AND id = :i"), {"i": after_id}).scalar()
            stamp = mark.isoformat(sep=" ", timespec="microseconds")
            row("  sorted page 5 by cursor", n, store_search(repo, "Task", [*sorted_q, ("_cursor", cursor)]),
                partial(raw.run, raw.sorted_from_worklist_index((stamp, after_pk)), (rid,)))
        filt = [*base, ("due-date", "le2026-06-30"), ("priority", "urgent"), ("business-status", "urn:bench:bs|late")]
        sql4, _ = raw.worklist(extra=raw.filters())
        row("  + due-date, priority, business-status", n, store_search(repo, "Task", filt),
            partial(raw.run, sql4, (rid,)), totals=False)
        cursor, after_id = cursor_after_pages(repo, base, 19)
        if cursor is not None:
            with repo.engine.connect() as conn:
                after_pk = conn.execute(text("SELECT pk FROM resource WHERE type = 'Task' AND id = :i"), {"i": after_id}).scalar()
            sql5, _ = raw.worklist(after_pk=after_pk)
            row("  page 20 by cursor", n, store_search(repo, "Task", [*base, ("_cursor", cursor)]),
                partial(raw.run, sql5, (rid,)))
            sql6, _ = raw.worklist(offset=950)
            row("  page 20 by _offset=950", n, store_search(repo, "Task", [*base, ("_offset", "950")]),
                partial(raw.run, sql6, (rid,)))
    queue = [("performer", "urn:bench:snomed|nurse,urn:bench:hcparty|persnurse"),
             ("status", "requested,received,accepted,ready,on-hold"), ("_sort", "due-date"), ("_total", "none"),
             ("_count", "50")]
    row("queue: performer&status&_sort=due-date", corpus.tasks // 3, store_search(repo, "Task", queue),
        partial(raw.run, raw.compiled(queue), ()))
    with general_plan():
        row("  ... plan before 0009", corpus.tasks // 3, store_search(repo, "Task", queue),
            partial(raw.run, raw.compiled(queue), ()))
    rnd = random.Random(5)
    pats = [rnd.choice(corpus.patients) for _ in range(8)]
    state = {"i": 0}

    def next_patient() -> str:
        state["i"] += 1
        return pats[state["i"] % len(pats)]

    def plan_store() -> Any:
        pid = next_patient()
        return store_search(repo, "CarePlan", [("patient", pid), ("_revinclude", "Task:based-on")])()

    def plan_raw() -> Any:
        return raw.plan(next_patient())

    row("CarePlan?patient&_revinclude=Task:based-on", "-", plan_store, plan_raw, check=False)

    def obs_store() -> Any:
        pid = next_patient()
        return store_search(repo, "Observation", [("patient", pid), ("code", "http://loinc.org|29463-7"),
                                                  ("date", "ge2026-03-01")])()

    row("Observation?patient&code&date", "-", obs_store, lambda: raw.observations(next_patient()), check=False)
    # the patient queries rotate patients: check one answer of each against the baseline
    pid = pats[0]
    got = store_search(repo, "CarePlan", [("patient", pid), ("_revinclude", "Task:based-on")])()[0]
    rows[-2]["same"] = "yes" if got == raw.plan(pid)[0] else "NO"
    got = store_search(repo, "Observation", [("patient", pid), ("code", "http://loinc.org|29463-7"), ("date", "ge2026-03-01")])()[0]
    rows[-1]["same"] = "yes" if got == raw.observations(pid)[0] else "NO"
    return rows


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    cols = ["tasks/owner", "p50", "p99", "sql p50", "sql p99", "ratio p50", "same"]
    print(f"{'query (ms)':<44} | " + " | ".join(f"{c:>11}" for c in cols))
    for r in rows:
        cells = [f"{r[c]:>11.2f}" if isinstance(r[c], float) else f"{str(r[c]):>11}" for c in cols]
        print(f"{r['query']:<44} | " + " | ".join(cells), flush=True)


def run_backend(backend: str, a: argparse.Namespace) -> None:
    url, drop = make_store(backend, a.pg_url)
    try:
        upgrade(url)
        repo = SqlRepository(make_engine(url))
        corpus = Corpus(repo)
        for size in a.sizes:
            load = corpus.grow_to(size)
            t0 = time.perf_counter()
            repo.refresh_statistics()
            stats = time.perf_counter() - t0
            print(f"\n== {backend}: {corpus.resources:,} resources ({corpus.tasks:,} Tasks), loaded through the "
                  f"repository at {size / max(load, 1e-9) if size == a.sizes[0] else 0:,.0f} res/s"
                  f"{'' if size == a.sizes[0] else ' (step)'}; statistics refreshed in {stats:.2f} s", flush=True)
            rows = measure(repo, corpus, a.repeat)
            print_rows(f"{backend}, {corpus.resources:,} resources: store (p50/p99) vs raw SQL baseline", rows)
        repo.close()
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[10_000, 100_000],
                    help="corpus sizes to grow through, comma-separated (default 10000,100000)")
    ap.add_argument("--million", action="store_true", help="add a 1,000,000-resource step")
    ap.add_argument("--repeat", type=int, default=40, help="measured runs per query (after one warm-up)")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"),
                    help="PostgreSQL URL (a private schema is created and dropped)")
    a = ap.parse_args()
    if a.million:
        a.sizes = [*a.sizes, 1_000_000]
    backends = ["sqlite", "postgres"] if a.backend == "both" else [a.backend]
    if "postgres" in backends and not a.pg_url:
        ap.error("--pg-url (or CAREFLOW_TEST_DATABASE_URL) is needed for postgres")
    for b in backends:
        run_backend(b, a)


if __name__ == "__main__":
    main()
