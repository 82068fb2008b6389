"""The stratification flow: place every inhabitant in the pyramid and record it, in partitions.

Same shape as the enrolment and sweep flows (``workflows.flows``): find the Patient ids, cut them
into a few stable-hash partitions, ONE task run per partition (the engine writes each partition in
batched units of work), counts gathered. A rerun writes only the patients whose group, reasons or
rule version changed, so the daily recompute is cheap; a run killed half-way is finished by the next.
Nothing about a patient reaches Prefect: parameters are a URL, a day, a rule file path and ids.
"""

from __future__ import annotations

from workflows.prefect_env import configure

configure()

from datetime import date, datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from prefect import flow, task  # noqa: E402

from careflow.engine import enrolment, stratify  # noqa: E402
from careflow.engine.counts import Counts  # noqa: E402
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force  # noqa: E402
from careflow.population.model import RuleSet  # noqa: E402
from workflows.flows import _TASK_OPTIONS, DEFAULT_PARTITIONS, _gather, _partition_name, _report, _runner  # noqa: E402
from workflows.resources import repository  # noqa: E402


def rule_set(rules: str | None, day: date) -> RuleSet:
    """The rule set of ``rules`` (a file, or a folder of versions) in force on ``day``; the bundled
    ``population_rules/`` (or ``$CAREFLOW_POPULATION_RULES``) when None."""
    return rules_in_force(load_rule_sets([Path(rules) if rules else default_rules_dir()]), day)


def _run_name() -> str:
    from prefect import runtime

    day = (runtime.flow_run.parameters or {}).get("day")
    return f"stratify-{day or datetime.now(timezone.utc).date()}"


@task(name="find-population", task_run_name="find-population", **_TASK_OPTIONS)
def find_population(db_url: str | None, partitions: int) -> list[list[str]]:
    return enrolment.partition(stratify.population_ids(repository(db_url)), partitions)


@task(name="stratify-partition", task_run_name=_partition_name("stratify"), **_TASK_OPTIONS)
def stratify_partition(db_url: str | None, index: int, patient_ids: Sequence[str], rules: RuleSet, day: date) -> Counts:
    return stratify.stratify(repository(db_url), rules, day, patient_ids)


@flow(name="stratify-region", flow_run_name=_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def stratify_region(db_url: str | None = None, day: date | None = None, rules: str | None = None,
                    partitions: int = DEFAULT_PARTITIONS) -> dict[str, Any]:
    """Stratify every Patient on ``day`` (default today) under the rule set in force that day, write
    the RiskAssessments and group tags that changed; returns counts plus the rule set used."""
    when = day or datetime.now(timezone.utc).date()
    chosen = rule_set(rules, when)
    slices = find_population(db_url, max(1, partitions))
    _report(f"stratify: {sum(map(len, slices)):,} patients in {len(slices)} partitions, rule set "
            f"{chosen.id} {chosen.version}")
    futures = []
    sizes: dict[Any, int] = {}
    for index, ids in enumerate(slices):
        if ids:
            future = stratify_partition.submit(db_url, index, ids, chosen, when)
            futures.append(future)
            sizes[future] = len(ids)
    counts = _gather(futures, "stratify", sizes)
    return {**counts.as_dict(), "rule_set": chosen.id, "version": chosen.version, "day": when.isoformat()}
