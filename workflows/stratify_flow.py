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
def find_population(db_url: str | None, partitions: int, rules: RuleSet, day: date, incremental: bool
                    ) -> tuple[list[list[str]], bool]:
    """Everyone, or (incremental) the patients whose inputs changed since the last finished run of
    the same rule version on the same day; cut into partitions."""
    ids, partial = stratify.plan_run(repository(db_url), rules, day, incremental=incremental)
    return enrolment.partition(ids, partitions), partial


@task(name="record-run", task_run_name="record-run", **_TASK_OPTIONS)
def record_run(db_url: str | None, rules: RuleSet, day: date, started: datetime) -> None:
    stratify.record_run(repository(db_url), rules, day, started)


@task(name="stratify-partition", task_run_name=_partition_name("stratify"), **_TASK_OPTIONS)
def stratify_partition(db_url: str | None, index: int, patient_ids: Sequence[str], rules: RuleSet, day: date) -> Counts:
    return stratify.stratify(repository(db_url), rules, day, patient_ids)


@flow(name="stratify-region", flow_run_name=_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def stratify_region(db_url: str | None = None, day: date | None = None, rules: str | None = None,
                    partitions: int = DEFAULT_PARTITIONS, incremental: bool = False) -> dict[str, Any]:
    """Stratify on ``day`` (default today) under the rule set in force that day, write the
    RiskAssessments and group tags that changed; returns counts plus the rule set used.
    ``incremental``: only the patients whose inputs changed since the last finished run of the same
    rule version on the same day (everyone when there was none)."""
    started = datetime.now(timezone.utc)
    when = day or started.date()
    chosen = rule_set(rules, when)
    slices, partial = find_population(db_url, max(1, partitions), chosen, when, incremental)
    _report(f"stratify: {sum(map(len, slices)):,} {'changed ' if partial else ''}patients in {len(slices)} "
            f"partitions, rule set {chosen.id} {chosen.version}")
    futures = []
    sizes: dict[Any, int] = {}
    for index, ids in enumerate(slices):
        if ids:
            future = stratify_partition.submit(db_url, index, ids, chosen, when)
            futures.append(future)
            sizes[future] = len(ids)
    counts = _gather(futures, "stratify", sizes)
    if not counts["conflict"]:  # a patient left for the next run must be in it
        record_run(db_url, chosen, when, started)
    counts.add("recomputed", sum(map(len, slices)))
    if partial:
        counts.add("incremental")
    return {**counts.as_dict(), "rule_set": chosen.id, "version": chosen.version, "day": when.isoformat()}
