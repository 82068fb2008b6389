"""Plan the chronic population of one region and compare with just writing the same JSON.

Run: python benchmarks/bench_planner.py [--patients 18000]
Prints plans/s and FHIR resources/s for planning, next to the baseline (orjson.dumps of the same
resource dicts, in the same run), and the ratio between them. The aim is a ratio within 3x.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, datetime
from pathlib import Path

import orjson

from careflow.planning.patient import ConditionFact, ObservationFact, PatientContext
from careflow.planning.planner import plan_all
from careflow.programs.loader import load_directory, load_program

ROOT = Path(__file__).resolve().parents[1]


def cohort(programs, n: int, seed: int = 7) -> list[tuple[list, PatientContext]]:
    """n patients, each with one or two of the programmes' conditions, a baseline observation and a team."""
    rnd = random.Random(seed)
    progs = list(programs)
    out = []
    for i in range(n):
        chosen = rnd.sample(progs, 2 if (rnd.random() < 0.15 and len(progs) > 1) else 1)
        conds = tuple(
            ConditionFact(f"Condition/c{i}-{k}", ((p.eligibility.conditions[0].system, p.eligibility.conditions[0].code),),
                          date(2026 - rnd.randrange(0, 8), rnd.randrange(1, 13), 1))
            for k, p in enumerate(chosen)
        )
        obs = (ObservationFact(f"Observation/o{i}", (("http://loinc.org", "29463-7"),), datetime(2025, 12, 1), 60 + rnd.random() * 40, "kg"),)
        team = {"gp": f"PractitionerRole/gp-{i % 72}", "home-nurse": f"PractitionerRole/nurse-{i % 48}"}
        ctx = PatientContext(id=f"pat-{i:06d}", birth_date=date(1930 + rnd.randrange(50), 1 + rnd.randrange(12), 1 + rnd.randrange(28)),
                             group=rnd.choice("ABC"), conditions=conds, observations=obs, team=team)
        out.append((chosen, ctx))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=18_000)
    a = ap.parse_args()
    programs = load_directory(ROOT / "care_programs") or {"mini-hf": load_program(ROOT / "tests/programs/fixtures/mini-hf.yaml")}
    patients = cohort(programs.values(), a.patients)
    start = date(2026, 1, 5)

    # Plan and serialise patient by patient, as the engine does (plan, write, drop), timing both.
    t_plan = t_dump = 0.0
    n_plans = n_resources = 0
    clock = time.perf_counter
    for progs, ctx in patients:
        t0 = clock()
        result = plan_all(progs, ctx, start)
        t1 = clock()
        for r in result.resources:
            orjson.dumps(r)
        t_dump += clock() - t1
        t_plan += t1 - t0
        n_plans += len(result.careplans)
        n_resources += len(result.resources)
    resources = range(n_resources)

    print(f"programmes: {', '.join(programs)}; patients: {a.patients}; care plans: {n_plans}; resources: {len(resources)}")
    print(f"{'':28}{'seconds':>10}{'plans/s':>12}{'resources/s':>14}")
    print(f"{'planner (dicts)':28}{t_plan:10.3f}{n_plans / t_plan:12,.0f}{len(resources) / t_plan:14,.0f}")
    print(f"{'planner + orjson.dumps':28}{t_plan + t_dump:10.3f}{n_plans / (t_plan + t_dump):12,.0f}{len(resources) / (t_plan + t_dump):14,.0f}")
    print(f"{'baseline: orjson.dumps':28}{t_dump:10.3f}{n_plans / t_dump:12,.0f}{len(resources) / t_dump:14,.0f}")
    print(f"ratio planner / baseline: {t_plan / t_dump:.2f}x  (aim: within 3x)")


if __name__ == "__main__":
    main()
