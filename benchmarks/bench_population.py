"""Benchmark: stratify the demo region, next to a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_population.py [--inhabitants 20000] [--pg URL | --sqlite-only]

Per backend the region is loaded once (timed on its own), then: a full refresh (every Patient read,
placed and recorded: 1 RiskAssessment each, group tags set), a rerun over the unchanged population
(everything read and placed again, nothing written), an incremental run over the 1% of patients who
got a new diagnosis, and the replay of rule set 2026.1 at 2026-03-01 (nothing written). Baseline: the
pyramid per neighbourhood read back by ONE direct SQL query over the index tables (what a dashboard
pays for the figures the refresh computes). PostgreSQL URL: --pg, else $CAREFLOW_TEST_DATABASE_URL.
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
from careflow.engine.stratify import assess, stratify  # noqa: E402
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
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<44} {time.perf_counter() - t0:8.2f} s")
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
        full = _timed("full refresh (read, place, write all)", stratify, repo, rules, DAY)
        groups = ", ".join(f"{full['group-' + g]:,} {g}" for g in "ABCD")
        print(f"  ({groups}; {full['assessments-written']:,} written)")
        rerun = _timed("rerun, nothing changed (read, place)", stratify, repo, rules, DAY)
        assert rerun["assessments-written"] == 0
        healthy = [r.patient["id"] for r in region.patients if not r.conditions][: max(1, inhabitants // 100)]
        with repo.unit_of_work(SYSTEM) as uow:
            for pid in healthy:
                uow.create_if_absent({
                    "resourceType": "Condition", "id": f"bench-{pid}", "subject": {"reference": f"Patient/{pid}"},
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                   "code": "active"}]},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": "R95"}]},
                    "onsetDateTime": "2026-10-01"})
        inc = _timed(f"incremental: {len(healthy):,} patients with a new diagnosis", stratify, repo, rules, DAY, healthy)
        assert inc["assessments-written"] == len(healthy)
        _timed("replay 2026.1 at 2026-03-01 (read, place)", assess, repo, sets[0], OLD_DAY)
        t0 = time.perf_counter()
        with repo.engine.connect() as conn:
            rows = conn.execute(BASELINE).all()
        print(f"  {'baseline: the pyramid by one SQL query':<44} {time.perf_counter() - t0:8.2f} s")
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
