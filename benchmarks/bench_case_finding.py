"""Benchmark: case finding over the demo region, set-wise next to a baseline in the same run.

    .venv/bin/python benchmarks/bench_case_finding.py [--inhabitants 2000] [--pg URL | --sqlite-only]

The demo region records no smoking status, medication or repeated eGFR, so after loading it one
inhabitant in 20 gets a fact a rule reads (a current-smoker status, a loop diuretic, two low eGFRs
three months apart, in turn). Then per backend: the matches found set-wise (one search per rule and
fact, only the candidates' records read), the baseline (the same evaluation over EVERY Patient's
record, as without the searches), the first run that writes the proposals, and a rerun (nothing
written). The two evaluations must find the same matches. PostgreSQL URL: --pg, else
$CAREFLOW_TEST_DATABASE_URL.
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

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.engine.case_finding import candidates, evaluate, find_cases  # noqa: E402
from careflow.engine.stratify import population_ids  # noqa: E402
from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, rules_in_force  # noqa: E402
from careflow.programs.loader import load_directory  # noqa: E402
from careflow.region.generate import generate_region  # noqa: E402
from careflow.store.database import make_engine, scratch_schema, upgrade  # noqa: E402
from careflow.store.sql import SqlRepository  # noqa: E402
from workflows.loading import load_resources, region_resources  # noqa: E402

DAY = date(2026, 11, 1)
LOINC, SNOMED, ATC = "http://loinc.org", "http://snomed.info/sct", "http://www.whocc.no/atc"


def _facts(pid: str, n: int) -> list[dict]:
    subject = {"reference": f"Patient/{pid}"}
    if n % 3 == 0:
        return [{"resourceType": "Observation", "id": f"bench-smoke-{pid}", "status": "final", "subject": subject,
                 "code": {"coding": [{"system": LOINC, "code": "72166-2"}]}, "effectiveDateTime": "2026-06-01",
                 "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "77176002"}]}}]
    if n % 3 == 1:
        return [{"resourceType": "MedicationStatement", "id": f"bench-loop-{pid}", "status": "active", "subject": subject,
                 "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C03CA01"}]},
                 "effectivePeriod": {"start": "2026-01-01"}}]
    return [{"resourceType": "Observation", "id": f"bench-egfr{i}-{pid}", "status": "final", "subject": subject,
             "code": {"coding": [{"system": LOINC, "code": "62238-1"}]}, "effectiveDateTime": day,
             "valueQuantity": {"value": 50, "unit": "mL/min/{1.73_m2}"}} for i, day in enumerate(("2026-02-01", "2026-05-01"))]


def _timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<52} {time.perf_counter() - t0:8.2f} s")
    return out


def run(url: str, name: str, inhabitants: int) -> None:
    print(f"{name}: {inhabitants:,} inhabitants")
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    try:
        region = generate_region(inhabitants)
        loaded = _timed("load the region (once)", load_resources, repo, region_resources(region))
        pids = sorted(r.patient["id"] for r in region.patients)
        chosen = pids[::20]
        with repo.unit_of_work(SYSTEM) as uow:
            for n, pid in enumerate(chosen):
                for r in _facts(pid, n):
                    uow.create_if_absent(r)
        print(f"  ({loaded.total:,} resources; {len(chosen):,} inhabitants given a fact a rule reads)")
        rules = rules_in_force(load_case_rule_sets([default_case_rules_dir()]), DAY)
        programs = load_directory(None)
        found = _timed("candidates: one search per rule and fact", candidates, repo, rules, DAY)
        print(f"  ({len(found):,} candidates of {len(pids):,})")
        setwise = _timed("set-wise: evaluate the candidates only", evaluate, repo, rules, DAY)
        every = _timed("baseline: evaluate every Patient's record", evaluate, repo, rules, DAY, population_ids(repo))
        same = sorted((m.patient, m.rule.id) for m in setwise) == sorted((m.patient, m.rule.id) for m in every)
        print(f"  ({len(setwise):,} matches set-wise, {len(every):,} by the baseline: {'the same' if same else 'DIFFERENT'})")
        first = _timed("first run: propose (searches, reads, writes)", find_cases, repo, rules, programs, DAY)
        print(f"  ({first['proposed']:,} proposed, {first['already-enrolled']:,} already enrolled)")
        again = _timed("rerun: nothing new", find_cases, repo, rules, programs, DAY)
        assert again["proposed"] == 0
    finally:
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inhabitants", type=int, default=2_000)
    parser.add_argument("--pg", default=os.environ.get("CAREFLOW_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", args.inhabitants)
    if args.pg and not args.sqlite_only:
        if not os.environ.get("CAREFLOW_MASTER_KEY") and not os.environ.get("CAREFLOW_MASTER_KEY_FILE"):
            import base64

            os.environ["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()  # a key of this run only
        with scratch_schema(args.pg, "cf_bench_cases") as url:
            run(url, "PostgreSQL", args.inhabitants)


if __name__ == "__main__":
    main()
