"""Benchmark: every quality indicator for the demo region, next to a baseline from the same run.

    .venv/bin/python benchmarks/bench_measures.py [--size 2000] [--pg URL | --sqlite-only]

Per backend the region is loaded, enrolled (programmes' CarePlans and Tasks) and stratified once
(timed on their own, not part of the figures), then for the year 2026: a full refresh (every
indicator set computed set-wise, rows stored, Measures and summary MeasureReports written), a rerun
over the unchanged store (fingerprints compared, nothing recomputed or written), and an incremental
run after 1% of the heart-failure patients got a new weight. Baseline: each indicator's figures by
ONE direct SQL query (the same index-table query, counted by the database with no storing,
fingerprints or reports), printed beside the refresh's figures, which must agree.
`--size 100000` is the big run. PostgreSQL URL: --pg, else $CAREFLOW_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.engine import enrolment  # noqa: E402
from careflow.engine import measures as engine  # noqa: E402
from careflow.engine.stratify import stratify  # noqa: E402
from careflow.measures.loader import load_measures  # noqa: E402
from careflow.measures.period import parse_period  # noqa: E402
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force  # noqa: E402
from careflow.programs.loader import default_program_dir, load_programs  # noqa: E402
from careflow.region.generate import generate_region  # noqa: E402
from careflow.store.database import make_engine, scratch_schema, upgrade  # noqa: E402
from careflow.store.measures_sql import rows_sql  # noqa: E402
from careflow.store.sql import SqlRepository  # noqa: E402
from workflows.loading import load_resources, region_resources  # noqa: E402

DAY = date(2026, 11, 1)
PERIOD = parse_period("2026")
TODAY = date(2027, 1, 2)  # 2026 is closed


def _timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<52} {time.perf_counter() - t0:8.2f} s")
    return out


def run(url: str, name: str, size: int) -> None:
    print(f"{name}: {size:,} inhabitants")
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    try:
        region = generate_region(size)
        loaded = _timed("setup: load the region", load_resources, repo, region_resources(region))
        ids = sorted(r.patient["id"] for r in region.patients if r.conditions)
        programs = load_programs([default_program_dir()])
        _timed(f"setup: enrol {len(ids):,} chronic patients", enrolment.enrol, repo, programs, ids, date(2026, 6, 1))
        _timed("setup: stratify", stratify, repo, rules_in_force(load_rule_sets([default_rules_dir()]), DAY), DAY)
        repo.refresh_statistics()  # as the enrolment flow does when it ends
        print(f"  ({loaded.total:,} resources loaded)")
        defs = load_measures()
        full = _timed(f"full refresh: {len(defs)} indicators", engine.refresh, repo, defs, PERIOD, TODAY)
        print(f"  ({full.recomputed_patients:,} patients computed, {full.reports_written} reports written)")
        rerun = _timed("rerun, nothing changed", engine.refresh, repo, defs, PERIOD, TODAY)
        assert (rerun.recomputed_patients, rerun.reports_written) == (0, 0)
        hf = [r.patient["id"] for r in region.patients if any(str(c.get("id", "")).endswith("-heart-failure") for c in r.conditions)]
        changed = hf[: max(1, len(hf) // 100)]
        with repo.unit_of_work(SYSTEM) as uow:
            for pid in changed:
                uow.update({"resourceType": "Observation", "id": f"bench-weight-{pid}", "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-12-25T09:00:00+01:00",
                            "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
        inc = _timed(f"incremental: {len(changed):,} patients with a new weight", engine.refresh, repo, defs, PERIOD, TODAY)
        print(f"  ({inc.recomputed_patients:,} patients recomputed, {inc.reports_written} reports written)")
        print(f"  {'indicator':<34} {'refresh: den excl num':>24}   {'baseline (1 SQL query)':>24}")
        t_all = 0.0
        for m in defs:
            sql, params = rows_sql(m, PERIOD, repo.engine.dialect.name)
            one = ("SELECT COUNT(*) AS n, SUM(CASE WHEN b.excluded THEN 1 ELSE 0 END) AS x,"
                   " SUM(CASE WHEN b.numerator AND NOT b.excluded THEN 1 ELSE 0 END) AS k FROM (" + sql + ") b")
            t0 = time.perf_counter()
            with repo.engine.connect() as conn:
                b = conn.execute(text(one), params).one()
            took = time.perf_counter() - t0
            t_all += took
            s = inc.summaries[m.id].total
            base = (int(b.n), int(b.x or 0), int(b.k or 0))
            mark = "" if base == (s.initial, s.exclusion, s.numerator) else "   DIFFERS"
            print(f"  {m.id:<34} {s.initial:>8,} {s.exclusion:>6,} {s.numerator:>7,}   "
                  f"{base[0]:>8,} {base[1]:>6,} {base[2]:>7,} {took:6.3f} s{mark}")
        print(f"  {'baseline: all indicators, one query each':<52} {t_all:8.2f} s")
    finally:
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2_000, help="inhabitants of the demo region (100000: the big run)")
    parser.add_argument("--pg", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", args.size)
    if args.pg and not args.sqlite_only:
        if not os.environ.get("CAREFLOW_MASTER_KEY") and not os.environ.get("CAREFLOW_MASTER_KEY_FILE"):
            import base64

            os.environ["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # a key of this run only
        with scratch_schema(args.pg, "cf_bench_measures") as url:
            run(url, "PostgreSQL", args.size)


if __name__ == "__main__":
    main()
