#!/usr/bin/env python3
"""What encryption at rest costs, measured in-process (no HTTP noise), plaintext and encrypted in one run.

1. Per resource (microseconds, best of several rounds): sealing and opening a whole stored version
   (what careflow does) against the element-level alternative (parse, encrypt each identifying
   element, serialise; and back on every read, which also loses the byte pass-through of search
   pages), plus the blind-index transform of the index rows.
2. The SQL store on SQLite (or PostgreSQL with --pg-url): ingest of bench_api's care-plan shaped
   resources in units of work of --bundle-size, then single-client searches (Task worklist,
   CarePlan with _revinclude, Patient by identifier and family) - plaintext store and encrypted
   store alternately, --rounds times; the best round of each is reported, and the ratio.

Usage:
    python benchmarks/bench_encryption.py --resources 3000
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("CAREFLOW_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())

from bench_api import NEIGHBOURHOODS, ROLES, _resolve, bundles, urn  # noqa: E402

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.crypto.envelope import Cipher  # noqa: E402
from careflow.fhir.identifying import Protection, hmac_blind  # noqa: E402
from careflow.fhir.search_index import extract_index  # noqa: E402
from careflow.fhir.search_query import parse_search  # noqa: E402
from careflow.naming import SSIN  # noqa: E402
from careflow.store.database import make_engine, scratch_schema, upgrade  # noqa: E402
from careflow.store.keyring import KeyRing, content_context  # noqa: E402
from careflow.store.sql import SqlRepository  # noqa: E402

PATIENT = {
    "resourceType": "Patient", "id": str(uuid.uuid4()), "meta": {"versionId": "1", "lastUpdated": "2026-03-02T09:00:00Z"},
    "identifier": [{"use": "official", "system": SSIN, "value": "53021714928"}],
    "name": [{"use": "official", "family": "Vandevoorde", "given": ["Hildegard", "Maria"]}],
    "telecom": [{"system": "phone", "value": "+3216123456"}, {"system": "email", "value": "h.v@example.org"}],
    "gender": "female", "birthDate": "1953-02-17",
    "address": [{"use": "home", "line": ["Kapucijnenvoer 7"], "city": "Leuven", "postalCode": "3000", "country": "BE"}],
    "generalPractitioner": [{"reference": "PractitionerRole/role-gp-3"}],
    "extension": [{"url": "https://careflow.dev/fhir/StructureDefinition/neighbourhood", "valueString": "binnenstad"}],
}
IDENTIFYING = ("identifier", "name", "telecom", "birthDate", "address")


def best_us(fn: Callable[[], Any], n: int = 2000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def per_resource() -> None:
    cipher = Cipher({1: os.urandom(32)}, 1)
    ctx = content_context(12345, 1)
    raw = orjson.dumps(PATIENT)
    sealed = cipher.encrypt(raw, ctx)
    protection = Protection(hmac_blind(os.urandom(32)))
    rows = extract_index(PATIENT)

    def element_write() -> bytes:
        body = orjson.loads(raw)
        for k in IDENTIFYING:
            if k in body:
                body[k] = base64.b64encode(cipher.encrypt(orjson.dumps(body[k]), ctx + k.encode())).decode()
        return orjson.dumps(body)

    element_sealed = orjson.loads(element_write())

    def element_read() -> bytes:
        body = dict(element_sealed)
        for k in IDENTIFYING:
            if k in body:
                body[k] = orjson.loads(cipher.decrypt(base64.b64decode(body[k]), ctx + k.encode()))
        return orjson.dumps(body)

    print(f"Patient of {len(raw)} bytes; microseconds per resource (best of 5 rounds)")
    figures = [
        ("baseline: orjson.dumps of the resource", best_us(lambda: orjson.dumps(PATIENT))),
        ("baseline: extract_index", best_us(lambda: extract_index(PATIENT))),
        ("whole contents: seal (AES-256-GCM)", best_us(lambda: cipher.encrypt(raw, ctx))),
        ("whole contents: open", best_us(lambda: cipher.decrypt(sealed, ctx))),
        ("element-level: seal 5 elements", best_us(element_write)),
        ("element-level: open 5 elements (+ parse/serialise)", best_us(element_read)),
        ("blind index: Protection.index (Patient)", best_us(lambda: protection.index("Patient", rows))),
    ]
    for name, us in figures:
        print(f"  {name:<52} {us:8.1f} us")


def load(repo: SqlRepository, groups: list[list[tuple[str, dict[str, Any]]]]) -> tuple[float, dict[str, str]]:
    ids: dict[str, str] = {}
    t = time.perf_counter()
    for group in groups:
        with repo.unit_of_work(SYSTEM) as uow:
            for full_url, res in group:
                ids[full_url] = f"{res['resourceType']}/{uuid.uuid4()}"
            for full_url, res in group:
                body = {**_resolve(res, ids), "id": ids[full_url].split("/")[1]}
                uow.update(body)
    return time.perf_counter() - t, ids


def searches(repo: SqlRepository, ids: dict[str, str], patients: int, n: int) -> dict[str, tuple[float, float]]:
    import random

    rnd = random.Random(3)
    roles = [ids[urn("role", h, r)] for h in range(NEIGHBOURHOODS) for r in ROLES]
    pats = [ids[urn("p", i)].split("/")[1] for i in range(patients)]
    kinds = {
        "Task?owner&status": lambda: [("owner", rnd.choice(roles)), ("status", "requested")],
        "CarePlan?patient&_revinclude": lambda: [("patient", rnd.choice(pats)), ("_revinclude", "Task:based-on")],
        "Patient?identifier&family": lambda: [("identifier", f"urn:bench:patient|{(i := rnd.randrange(patients))}"),
                                              ("family", f"bench{i}")],
    }
    out = {}
    for name, make in kinds.items():
        rtype = name.split("?")[0]
        lat = []
        for _ in range(n):
            q = parse_search(rtype, make())
            t = time.perf_counter()
            result = repo.search(q)
            for s in [*result.matches, *result.included]:
                _ = s.raw  # what a search page sends
            lat.append(time.perf_counter() - t)
        lat.sort()
        out[name] = (1000 * statistics.median(lat), 1000 * lat[int(0.95 * len(lat))])
    return out


def store_level(a: argparse.Namespace) -> None:
    groups, patients = bundles(a.resources, a.bundle_size)
    n = sum(len(g) for g in groups)
    best: dict[str, dict[str, Any]] = {}
    for rnd in range(a.rounds):
        for mode in ("plaintext", "encrypted"):
            keys = KeyRing(None) if mode == "plaintext" else KeyRing(base64.b64decode(os.environ["CAREFLOW_MASTER_KEY"]))
            if a.pg_url:
                ctx = scratch_schema(a.pg_url, "cf_bench_enc")
                url = ctx.__enter__()
            else:
                ctx = None
                url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='cf-bench-enc-')) / 'b.db'}"
                upgrade(url)
            repo = SqlRepository(make_engine(url), keys=keys)
            try:
                seconds, ids = load(repo, groups)
                found = searches(repo, ids, patients, a.queries)
            finally:
                repo.close()
                if ctx is not None:
                    ctx.__exit__(None, None, None)
            print(f"  round {rnd + 1} {mode:<9}: ingest {n / seconds:7.0f} res/s; "
                  + "; ".join(f"{k} p50 {v[0]:.2f} p95 {v[1]:.2f} ms" for k, v in found.items()), flush=True)
            b = best.setdefault(mode, {"res_s": 0.0, **{k: (float("inf"), float("inf")) for k in found}})
            b["res_s"] = max(b["res_s"], n / seconds)
            for k, v in found.items():
                b[k] = (min(b[k][0], v[0]), min(b[k][1], v[1]))
    p, e = best["plaintext"], best["encrypted"]
    print(f"\nbest of {a.rounds} rounds, {n} resources ({patients} patients):")
    print(f"  {'ingest res/s':<34} plaintext {p['res_s']:8.0f}  encrypted {e['res_s']:8.0f}  "
          f"cost {100 * (p['res_s'] / e['res_s'] - 1):+5.1f} %")
    for k in p:
        if k == "res_s":
            continue
        print(f"  {k + ' p95 ms':<34} plaintext {p[k][1]:8.2f}  encrypted {e[k][1]:8.2f}  "
              f"cost {100 * (e[k][1] / p[k][1] - 1):+5.1f} %   (p50 {p[k][0]:.2f} -> {e[k][0]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resources", type=int, default=3000)
    ap.add_argument("--bundle-size", type=int, default=500)
    ap.add_argument("--queries", type=int, default=300, help="searches of each kind per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-url", default=None, help="measure on PostgreSQL (a scratch schema per round)")
    a = ap.parse_args()
    per_resource()
    print()
    store_level(a)


if __name__ == "__main__":
    main()
