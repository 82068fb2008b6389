"""Benchmark: stratify the demo region, next to a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_population.py [--inhabitants 20000] [--pg URL | --sqlite-only]

Per backend the region is loaded once (timed on its own), then: a full refresh (every Patient read,
placed and recorded: 1 RiskAssessment each, group tags set), a full rerun over the unchanged
population (everything read and placed again, nothing written), an incremental run with nothing
changed (it finds no patient to read), an incremental run after 1% of the patients got a new
diagnosis (it finds them from the watermark and recomputes only them), and the replay of rule set
2026.1 at 2026-03-01 (nothing written). The runs use no look-back (nothing else writes here).
Baseline: the pyramid read back by ONE direct SQL query over the index tables (what a dashboard pays
for the figures the refresh computes). PostgreSQL URL: --pg, else $CAREFLOW_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.engine.stratify import assess, refresh  # noqa: E402
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force  # noqa: E402
from careflow.region.generate import generate_region  # noqa: E402
from careflow.store.database import make_engine, scratch_schema, upgrade  # noqa: E402
from careflow.store.sql import SqlRepository  # noqa: E402
from workflows.loading import load_resources, region_resources  # noqa: E402

DAY, OLD_DAY = date(2026, 11, 1), date(2026, 3, 1)

BASELINE = text("""
SELECT g.code, count(*) FROM idx_token g
JOIN resource r ON r.pk = g.res_pk AND r.type = 'Patient' AND NOT r.deleted
WHERE g.rtype = 'Patient' AND g.param = 'population-group'
GROUP BY g.code ORDER BY g.code
""")


def _timed(label: str, fn, *args, **kwargs):
    """Wall time, and this process's CPU time: on a shared machine the wall clock also counts the
    waits for a core (the database's own work on PostgreSQL is in the wall time only)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    print(f"  {label:<48} {time.perf_counter() - t0:8.2f} s  (cpu {time.process_time() - c0:6.2f} s)")
    return out


def run(url: str, name: str, inhabitants: int) -> None:
    print(f"{name}: {inhabitants:,} inhabitants")
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    try:
        region = generate_region(inhabitants)
        loaded = _timed("load the region (once)", load_resources, repo, region_resources(region))
        print(f"  ({loaded.total:,} resources)")
        sets = load_rule_sets([default_rules_dir()])
        rules = rules_in_force(sets, DAY)

        def refresh_now(incremental: bool):
            return refresh(repo, rules, DAY, incremental=incremental, look_back=timedelta(0))

        full = _timed("full refresh (read, place, write all)", refresh_now, False)
        groups = ", ".join(f"{full['group-' + g]:,} {g}" for g in "ABCD")
        print(f"  ({groups}; {full['assessments-written']:,} written)")
        rerun = _timed("full rerun, nothing changed (read, place)", refresh_now, False)
        assert rerun["assessments-written"] == 0
        quiet = _timed("incremental, nothing changed", refresh_now, True)
        assert quiet["recomputed"] == 0 and quiet["assessments-written"] == 0
        healthy = [r.patient["id"] for r in region.patients if not r.conditions][: max(1, inhabitants // 100)]
        with repo.unit_of_work(SYSTEM) as uow:
            for pid in healthy:
                uow.create_if_absent({
                    "resourceType": "Condition", "id": f"bench-{pid}", "subject": {"reference": f"Patient/{pid}"},
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                   "code": "active"}]},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": "R95"}]},
                    "onsetDateTime": "2026-10-01"})
        inc = _timed(f"incremental: {len(healthy):,} patients with a new diagnosis", refresh_now, True)
        assert inc["recomputed"] == len(healthy) and inc["assessments-written"] == len(healthy)
        _timed("replay 2026.1 at 2026-03-01 (read, place)", assess, repo, sets[0], OLD_DAY)
        with repo.engine.connect() as conn:
            rows = _timed("baseline: the pyramid by one SQL query", lambda: conn.execute(BASELINE).all())
        print(f"  ({', '.join(f'{n:,} {code}' for code, n in rows)})")
    finally:
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inhabitants", type=int, default=20_000)
    parser.add_argument("--pg", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", args.inhabitants)
    if args.pg and not args.sqlite_only:
        if not os.environ.get("CAREFLOW_MASTER_KEY") and not os.environ.get("CAREFLOW_MASTER_KEY_FILE"):
            import base64

            os.environ["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # a key of this run only
        with scratch_schema(args.pg, "cf_bench_pop") as url:
            run(url, "PostgreSQL", args.inhabitants)


if __name__ == "__main__":
    main()
