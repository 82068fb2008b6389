#!/usr/bin/env python3
"""FHIR API benchmark: bulk load over HTTP, then concurrent worklist searches, next to a raw-SQL floor.

For each backend (SQLite file, PostgreSQL when a URL is given):

1. start ``python -m careflow.api.server`` (the code ``careflow serve`` runs) on a loopback port over
   a fresh database;
2. load ``--resources`` resources (care-plan shaped: roles, patients, conditions, care teams, goals,
   care plans, ten tasks each) as transaction Bundles of ``--bundle-size`` entries, urn:uuid refs;
3. run ``--clients`` concurrent clients for ``--seconds`` each on
   ``Task?owner=<role>&status=requested``, ``CarePlan?patient=<id>&_revinclude=Task:based-on`` and
   ``Patient?identifier=<sys|value>&family=<name>`` (identifying values: the blind index);
4. do the same inserts (resource, version and index rows, from the store's own index extraction)
   and the same index lookups as raw SQL against the store's tables in a second fresh database:
   the floor the API is measured against.

With ``--encryption both`` steps 1-3 run twice, on a plaintext store (``CAREFLOW_ENCRYPTION=off``)
and an encrypted one, so one run shows what encryption at rest and the blind index cost.  ``--audit
both`` does the same without and with the audit trail (``CAREFLOW_AUDIT=off``), and ``--secure both``
without any of token checks, encryption and audit, then with all three: their combined cost.

Usage:
    python benchmarks/bench_api.py --resources 20000
    python benchmarks/bench_api.py --resources 3000 --seconds 5 --clients 4 --encryption both
    python benchmarks/bench_api.py --resources 5000 --seconds 5 --clients 4 --secure both --no-sql-floor
    python benchmarks/bench_api.py --backend postgres --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
Only talks to 127.0.0.1. Prints one table per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from careflow.fhir.search_index import extract_index  # noqa: E402
from careflow.store.database import make_engine, resolve_url, upgrade  # noqa: E402
from careflow.store.tables import INDEX_TABLES  # noqa: E402

NS = uuid.UUID("3b0c8f7a-1d2e-4f60-9a7b-5c4d3e2f1a00")
NEIGHBOURHOODS = 8
ROLES = ("gp", "nurse", "pharmacist", "physio", "dietitian")
TASK_ROLES = ("gp", "nurse", "nurse", "pharmacist", "physio", "dietitian", "nurse", "gp", "pharmacist", "nurse")
PER_PATIENT = 16
SERVER_LOG = Path(tempfile.gettempdir()) / "careflow-bench-server.log"  # patient, condition, care team, 2 goals, care plan, 10 tasks


def urn(*parts: Any) -> str:
    return f"urn:uuid:{uuid.uuid5(NS, '/'.join(map(str, parts)))}"


# ------------------------------------------------------------------------------------------ data


def role_resources() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for h in range(NEIGHBOURHOODS):
        for code in ROLES:
            out.append((urn("role", h, code), {
                "resourceType": "PractitionerRole", "active": True,
                "code": [{"coding": [{"system": "urn:bench:role", "code": code}]}],
            }))
    return out


def patient_resources(i: int, rnd: random.Random) -> list[tuple[str, dict[str, Any]]]:
    h = i % NEIGHBOURHOODS
    pat, cond, team, plan = urn("p", i), urn("c", i), urn("t", i), urn("cp", i)
    goals = [urn("g", i, k) for k in range(2)]
    subject = {"reference": pat}
    out: list[tuple[str, dict[str, Any]]] = [
        (pat, {"resourceType": "Patient", "identifier": [{"system": "urn:bench:patient", "value": str(i)}],
               "name": [{"family": f"Bench{i}", "given": ["Pat"]}], "gender": rnd.choice(["female", "male"]),
               "birthDate": f"{1930 + rnd.randrange(60)}-0{1 + rnd.randrange(9)}-1{rnd.randrange(10)}",
               "generalPractitioner": [{"reference": urn("role", h, "gp")}]}),
        (cond, {"resourceType": "Condition", "subject": subject,
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": ("K77", "R95", "T90")[i % 3]}]}}),
        (team, {"resourceType": "CareTeam", "status": "active", "subject": subject,
                "participant": [{"member": {"reference": urn("role", h, r)}} for r in ROLES]}),
    ]
    for k, g in enumerate(goals):
        out.append((g, {"resourceType": "Goal", "lifecycleStatus": "active", "subject": subject,
                        "description": {"text": ("Stable symptoms", "Self-management")[k]}}))
    out.append((plan, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject,
                       "addresses": [{"reference": cond}], "goal": [{"reference": g} for g in goals],
                       "careTeam": [{"reference": team}]}))
    for t, role in enumerate(TASK_ROLES):
        out.append((urn("task", i, t), {
            "resourceType": "Task", "status": "requested" if rnd.random() < 0.4 else "completed", "intent": "order",
            "description": f"activity {t}", "for": subject, "basedOn": [{"reference": plan}],
            "owner": {"reference": urn("role", h, role)}, "authoredOn": f"2026-0{1 + t % 9}-1{i % 10}T09:00:00Z"}))
    return out


def bundles(total: int, size: int) -> tuple[list[list[tuple[str, dict[str, Any]]]], int]:
    """Transaction-sized groups of (fullUrl, resource); roles first (others reference them)."""
    rnd = random.Random(7)
    groups = [role_resources()]
    patients = max(1, (total - len(groups[0])) // PER_PATIENT)
    current: list[tuple[str, dict[str, Any]]] = []
    for i in range(patients):
        entries = patient_resources(i, rnd)
        if current and len(current) + len(entries) > size:
            groups.append(current)
            current = []
        current += entries
    if current:
        groups.append(current)
    return groups, patients


# ------------------------------------------------------------------------------------------ timing


@dataclass
class Timing:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        s = sorted(self.latencies)
        pct = lambda p: 1000 * s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")  # noqa: E731
        return {"phase": self.name, "n": len(s), "errors": self.errors,
                "per_s": round(len(s) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(pct(0.5), 2), "p95_ms": round(pct(0.95), 2), "p99_ms": round(pct(0.99), 2),
                "mean_ms": round(1000 * statistics.fmean(s), 2) if s else float("nan")}


# ------------------------------------------------------------------------------------------ API side


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Authorization of every API call: a system token of a local issuer made for this run (the server
# verifies it on every request, as in production), or nothing with --no-auth.
AUTH: dict[str, str] = {}


def start_server(url: str, auth: bool = True, encryption: bool = True,
                 audit: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ)
    if not audit:  # no audit trail (CAREFLOW_AUDIT=off): what recording every interaction costs
        env["CAREFLOW_AUDIT"] = "off"
    else:
        env.pop("CAREFLOW_AUDIT", None)
    if not encryption:  # the plaintext baseline: contents and index rows as they were before encryption at rest
        env["CAREFLOW_ENCRYPTION"] = "off"
    elif not env.get("CAREFLOW_MASTER_KEY") and not env.get("CAREFLOW_MASTER_KEY_FILE"):
        import base64

        env["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # a key of this run only
    flags = ["--insecure-no-auth"]
    if auth:
        from careflow.auth.local import LocalIssuer

        issuer = LocalIssuer(Path(tempfile.mkdtemp(prefix="careflow-bench-")) / "keys.json")
        env.update(CAREFLOW_AUTH_LOCAL_KEYS=str(issuer.path), CAREFLOW_AUTH_LOCAL_ISSUER="1")
        AUTH["Authorization"] = "Bearer " + issuer.mint({"sub": "bench", "scope": "system/*.cruds"}, minutes=600)
        flags = []
    else:
        AUTH.clear()
    proc = subprocess.Popen(
        [sys.executable, "-m", "careflow.api.server", "--db", url, "--host", "127.0.0.1", "--port", str(port), *flags],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(SERVER_LOG, "ab"), env=env,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited; see {SERVER_LOG}")
        try:
            if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("server did not start within 60 s")


def api_load(base: str, groups: list[list[tuple[str, dict[str, Any]]]]) -> tuple[Timing, dict[str, str]]:
    """POST each group as a transaction (sequentially: bundles reference earlier ones by resolved id)."""
    ids: dict[str, str] = {}
    timing = Timing("API ingest (transaction)")
    t0 = time.perf_counter()
    with httpx.Client(timeout=600, headers={"Content-Type": "application/fhir+json", **AUTH}) as client:
        for group in groups:
            entries = []
            for full_url, res in group:
                entries.append({"fullUrl": full_url, "resource": _resolve(res, ids),
                                "request": {"method": "POST", "url": res["resourceType"]}})
            t = time.perf_counter()
            r = client.post(base, content=orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
            timing.latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                timing.errors += 1
                print(f"bundle failed: {r.status_code} {r.text[:300]}", file=sys.stderr)
                continue
            for (full_url, _), e in zip(group, r.json()["entry"]):
                loc = e["response"]["location"].split("/")
                ids[full_url] = f"{loc[0]}/{loc[1]}"
    timing.seconds = time.perf_counter() - t0
    return timing, ids


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (ids.get(v, v) if k == "reference" else _resolve(v, ids)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


async def api_queries(base: str, name: str, clients: int, seconds: float,
                      make: Callable[[random.Random], tuple[str, dict[str, str]]]) -> Timing:
    timing = Timing(name)
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers={"Accept": "application/fhir+json", **AUTH}) as client:
        async def worker(w: int) -> None:
            rnd = random.Random(w)
            while time.perf_counter() < stop:
                path, params = make(rnd)
                t = time.perf_counter()
                try:
                    r = await client.get(f"{base}/{path}", params=params)
                    ok, why = r.status_code == 200, f"{r.status_code} {r.text[:300]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                timing.latencies.append(time.perf_counter() - t)
                if not ok:
                    timing.errors += 1
                    if timing.errors <= 3:
                        print(f"{name}: {path} {params} -> {why}", file=sys.stderr)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        timing.seconds = time.perf_counter() - t0
    return timing


# ------------------------------------------------------------------------------------------ raw SQL floor


def sql_load(url: str, groups: list[list[tuple[str, dict[str, Any]]]]) -> tuple[Timing, dict[str, str]]:
    """The same rows the store writes (resource, resource_version, idx_*), one transaction per group."""
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    p = "%s" if pg else "?"
    typed: dict[str, str] = {}  # urn -> Type/id, across groups (later bundles reference earlier roles)
    timing = Timing("raw SQL ingest (same rows)")
    cols = {kind: [c.name for c in table.columns] for kind, table in INDEX_TABLES.items()}
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for group in groups:
            t = time.perf_counter()
            with conn.begin():
                cur = conn.connection.cursor()
                now = time.strftime("%Y-%m-%d %H:%M:%S")
                for full_url, res in group:
                    typed[full_url] = f"{res['resourceType']}/{uuid.uuid4()}"
                versions, index_rows = [], {k: [] for k in INDEX_TABLES}
                for full_url, res in group:
                    rid = typed[full_url].split("/")[1]
                    body = {**_resolve(res, typed), "id": rid, "meta": {"versionId": "1", "lastUpdated": now + "Z"}}
                    cur.execute(f"INSERT INTO resource (type, id, version, last_updated, deleted) VALUES "
                                f"({p}, {p}, 1, {p}, {'false' if pg else '0'}) RETURNING pk",
                                (body["resourceType"], rid, now))
                    pk = cur.fetchone()[0]
                    versions.append((pk, 1, now, False, orjson.dumps(body)))
                    rows = extract_index(body)
                    for kind in INDEX_TABLES:
                        for row in getattr(rows, kind):
                            index_rows[kind].append((pk, body["resourceType"], *row))
                cur.executemany(f"INSERT INTO resource_version (res_pk, version, last_updated, deleted, content) "
                                f"VALUES ({p}, {p}, {p}, {p}, {p})", versions)
                for kind, rows in index_rows.items():
                    if rows:
                        names = cols[kind]
                        cur.executemany(f"INSERT INTO {INDEX_TABLES[kind].name} ({', '.join(names)}) "
                                        f"VALUES ({', '.join([p] * len(names))})", rows)
            timing.latencies.append(time.perf_counter() - t)
    timing.seconds = time.perf_counter() - t0
    engine.dispose()
    return timing, typed


def sql_queries(url: str, name: str, clients: int, seconds: float, kind: str,
                keys: list[str]) -> Timing:
    """The index lookups behind the two searches, from ``clients`` threads with their own connections."""
    engine = make_engine(url, pool_size=clients, max_overflow=0)
    pg = engine.dialect.name == "postgresql"
    p = "%s" if pg else "?"
    false = "false" if pg else "0"
    current = ("SELECT r.id, v.content FROM resource r JOIN resource_version v ON v.res_pk = r.pk AND v.version = r.version "
               f"WHERE r.deleted = {false} AND r.pk IN ")
    # drive by the owner index, probe status with EXISTS (the plan the store uses, see sql_search)
    owner_in = (f"r.pk IN (SELECT res_pk FROM idx_reference WHERE rtype = 'Task' AND param = 'owner' "
                f"AND target_id = {p} AND target_type = 'PractitionerRole') AND EXISTS (SELECT 1 FROM idx_token s "
                "WHERE s.res_pk = r.pk AND s.param = 'status' AND s.code = 'requested')")
    task_sql = (f"SELECT r.id, v.content FROM resource r JOIN resource_version v ON v.res_pk = r.pk "
                f"AND v.version = r.version WHERE r.deleted = {false} AND {owner_in} ORDER BY r.pk LIMIT 50")
    task_count = f"SELECT count(*) FROM resource r WHERE r.deleted = {false} AND {owner_in}"
    plan_sql = (current + f"(SELECT res_pk FROM idx_reference WHERE rtype = 'CarePlan' AND param = 'patient' "
                f"AND target_id = {p} AND target_type = 'Patient') ORDER BY r.pk LIMIT 50")
    rev_sql = (current + "(SELECT res_pk FROM idx_reference WHERE rtype = 'Task' AND param = 'based-on' "
               "AND target_type = 'CarePlan' AND target_id = {ids})")
    timing = Timing(name)
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(w: int) -> None:
        rnd = random.Random(w)
        with engine.connect() as conn:
            cur = conn.connection.cursor()
            while time.perf_counter() < stop:
                key = rnd.choice(keys)
                t = time.perf_counter()
                if kind == "task":
                    cur.execute(task_sql, (key,))
                    [orjson.loads(c) for _, c in cur.fetchall()]
                    cur.execute(task_count, (key,))
                    cur.fetchone()
                else:
                    cur.execute(plan_sql, (key,))
                    plans = cur.fetchall()
                    [orjson.loads(c) for _, c in plans]
                    for pid, _ in plans:
                        cur.execute(rev_sql.format(ids=p), (pid,))
                        [orjson.loads(c) for _, c in cur.fetchall()]
                conn.connection.commit()
                elapsed = time.perf_counter() - t
                with lock:
                    timing.latencies.append(elapsed)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    timing.seconds = time.perf_counter() - t0
    engine.dispose()
    return timing


# ------------------------------------------------------------------------------------------ driver


def fresh_database(backend: str, pg_url: str | None, tag: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix=f"cf-bench-{tag}-"))  # the database, its WAL and shm: hundreds of MB
        return f"sqlite:///{folder / 'bench.db'}", lambda: shutil.rmtree(folder, ignore_errors=True)
    assert pg_url
    base = resolve_url(pg_url)
    schema = f"cf_bench_{tag}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def api_phase(backend: str, a: argparse.Namespace, groups: list[Any], patients: int, n_resources: int,
              encryption: bool, label: bool, *, auth: bool | None = None, audit: bool = True,
              tag: str | None = None) -> list[dict[str, Any]]:
    """Load and query through a server on a fresh database; ``encryption`` False serves the plaintext
    baseline (CAREFLOW_ENCRYPTION=off), ``audit`` False no audit trail (CAREFLOW_AUDIT=off), ``auth``
    False no token checks, so one run shows what each costs."""
    if tag is None:
        tag = (" [encrypted]" if encryption else " [plaintext]") if label else ""
    rows: list[dict[str, Any]] = []
    api_url, api_drop = fresh_database(backend, a.pg_url, "api")
    upgrade(api_url)
    proc, base = start_server(api_url, auth=not a.no_auth if auth is None else auth, encryption=encryption, audit=audit)
    try:
        load, ids = api_load(base, groups)
        load.name += tag
        rows.append(load.row() | {"res_per_s": round(n_resources / load.seconds, 1)})
        roles = [ids[urn("role", h, r)] for h in range(NEIGHBOURHOODS) for r in ROLES]
        pats = [ids[urn("p", i)].split("/")[1] for i in range(patients)]
        task_q = asyncio.run(api_queries(base, "API Task?owner&status" + tag, a.clients, a.seconds,
                                         lambda rnd: ("Task", {"owner": rnd.choice(roles), "status": "requested"})))
        plan_q = asyncio.run(api_queries(base, "API CarePlan+_revinclude" + tag, a.clients, a.seconds,
                                         lambda rnd: ("CarePlan", {"patient": rnd.choice(pats), "_revinclude": "Task:based-on"})))
        # a lookup on identifying values: through the blind index when encrypted
        who = asyncio.run(api_queries(base, "API Patient?identifier&family" + tag, a.clients, a.seconds,
                                      lambda rnd: ("Patient", _patient_lookup(rnd.randrange(patients)))))
        rows += [task_q.row(), plan_q.row(), who.row()]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        api_drop()
    return rows


def _patient_lookup(i: int) -> dict[str, str]:
    """Search parameters that find patient ``i`` of ``patient_resources`` by identifier and family name."""
    return {"identifier": f"urn:bench:patient|{i}", "family": f"bench{i}"}


def run_backend(backend: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    groups, patients = bundles(a.resources, a.bundle_size)
    n_resources = sum(len(g) for g in groups)
    print(f"\n== {backend}: {n_resources} resources ({patients} patients) in {len(groups)} bundles", flush=True)
    rows: list[dict[str, Any]] = []

    if a.secure == "both":  # the combined cost: nothing of issue 8, then auth + encryption + audit
        rows += api_phase(backend, a, groups, patients, n_resources, False, True, auth=False, audit=False,
                          tag=" [no auth/enc/audit]")
        rows += api_phase(backend, a, groups, patients, n_resources, True, True, auth=True, audit=True,
                          tag=" [auth+enc+audit]")
    elif a.audit == "both":
        for audit in (False, True):
            rows += api_phase(backend, a, groups, patients, n_resources, a.encryption != "off", True, audit=audit,
                              tag=" [audit on]" if audit else " [audit off]")
    else:
        modes = {"both": [False, True], "on": [True], "off": [False]}[a.encryption]
        for encryption in modes:
            rows += api_phase(backend, a, groups, patients, n_resources, encryption, len(modes) > 1,
                              audit=a.audit == "on")
    if a.no_sql_floor:
        return rows

    sql_url, sql_drop = fresh_database(backend, a.pg_url, "sql")
    upgrade(sql_url)
    try:
        load, typed = sql_load(sql_url, groups)
        rows.append(load.row() | {"res_per_s": round(n_resources / load.seconds, 1)})
        roles = [typed[urn("role", h, r)].split("/")[1] for h in range(NEIGHBOURHOODS) for r in ROLES]
        pats = [typed[urn("p", i)].split("/")[1] for i in range(patients)]
        rows.append(sql_queries(sql_url, "raw SQL Task owner+status", a.clients, a.seconds, "task", roles).row())
        rows.append(sql_queries(sql_url, "raw SQL CarePlan+rev Task", a.clients, a.seconds, "plan", pats).row())
    finally:
        sql_drop()
    return rows


def print_rows(backend: str, rows: list[dict[str, Any]]) -> None:
    cols = ["phase", "n", "errors", "per_s", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "res_per_s"]
    print(f"{backend:>8} | " + " | ".join(f"{c:>44}" if c == "phase" else f"{c:>9}" for c in cols))
    for r in rows:
        print(f"{'':>8} | " + " | ".join(f"{str(r.get(c, '')):>44}" if c == "phase" else f"{str(r.get(c, '')):>9}" for c in cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resources", type=int, default=100_000)
    ap.add_argument("--bundle-size", type=int, default=500)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"),
                    help="PostgreSQL URL (a private schema is created and dropped)")
    ap.add_argument("--no-auth", action="store_true",
                    help="serve with --insecure-no-auth (no token checks), to measure what authentication costs")
    ap.add_argument("--encryption", choices=["on", "off", "both"], default="on",
                    help="encryption at rest of the served store; 'both' runs the API phase plaintext, then "
                         "encrypted, to measure what it costs")
    ap.add_argument("--audit", choices=["on", "off", "both"], default="on",
                    help="the audit trail (CAREFLOW_AUDIT); 'both' runs the API phase without, then with it")
    ap.add_argument("--secure", choices=["as-set", "both"], default="as-set",
                    help="'both': the API phase with none of auth, encryption and audit, then with all three "
                         "(the combined cost); 'as-set' follows --no-auth, --encryption and --audit")
    ap.add_argument("--no-sql-floor", action="store_true", help="skip the raw-SQL floor phase")
    a = ap.parse_args()
    backends = ["sqlite", "postgres"] if a.backend == "both" else [a.backend]
    if "postgres" in backends and not a.pg_url:
        ap.error("--pg-url (or CAREFLOW_TEST_DATABASE_URL) is needed for postgres")
    results = {b: run_backend(b, a) for b in backends}
    print()
    for b, rows in results.items():
        print_rows(b, rows)


if __name__ == "__main__":
    main()
