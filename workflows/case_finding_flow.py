"""The case-finding flow: find the candidates of every rule, then propose them to their GP, in partitions.

Same shape as the stratification flow (``workflows.stratify_flow``): one task run finds the
candidates (one search per rule and fact, ``careflow.engine.case_finding.candidates``), they are cut
into a few stable-hash partitions, ONE task run per partition reads their records in batches and
writes the new proposal Tasks, counts gathered. A rerun writes nothing new (one open proposal per
patient and rule; a rejected one is not made again for the same evidence), so a daily run is cheap
and a run killed half-way is finished by the next. Nothing about a patient reaches Prefect:
parameters are a URL, a day, a rule file path and ids.
"""

from __future__ import annotations

from workflows.prefect_env import configure

configure()

from datetime import date, datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from prefect import flow, task  # noqa: E402

from careflow.engine import case_finding, enrolment  # noqa: E402
from careflow.engine.counts import Counts  # noqa: E402
from careflow.population.case_model import CaseFindingSet  # noqa: E402
from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, rules_in_force  # noqa: E402
from workflows.flows import _TASK_OPTIONS, DEFAULT_PARTITIONS, _gather, _partition_name, _report, _runner  # noqa: E402
from workflows.resources import programs, repository  # noqa: E402


def case_rule_set(rules: str | None, day: date) -> CaseFindingSet:
    """The case-finding rule set of ``rules`` (a file, or a folder of versions) in force on ``day``;
    the bundled ``case_finding/`` (or ``$CAREFLOW_CASE_FINDING``) when None."""
    return rules_in_force(load_case_rule_sets([Path(rules) if rules else default_case_rules_dir()]), day)


def _run_name() -> str:
    from prefect import runtime

    day = (runtime.flow_run.parameters or {}).get("day")
    return f"find-cases-{day or datetime.now(timezone.utc).date()}"


@task(name="find-candidates", task_run_name="find-candidates", **_TASK_OPTIONS)
def find_candidates(db_url: str | None, rules: CaseFindingSet, day: date, partitions: int) -> list[list[str]]:
    return enrolment.partition(case_finding.candidates(repository(db_url), rules, day), partitions)


@task(name="find-cases-partition", task_run_name=_partition_name("find-cases"), **_TASK_OPTIONS)
def find_cases_partition(db_url: str | None, index: int, patient_ids: Sequence[str], rules: CaseFindingSet,
                         day: date) -> Counts:
    return case_finding.find_cases(repository(db_url), rules, programs(), day, patient_ids)


@flow(name="find-cases", flow_run_name=_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def find_cases_region(db_url: str | None = None, day: date | None = None, rules: str | None = None,
                      partitions: int = DEFAULT_PARTITIONS) -> dict[str, Any]:
    """Propose to their GP every patient a case-finding rule matches on ``day`` (default today),
    under the rule set in force that day; returns counts (per rule in ``by_program``) and the rule set."""
    when = day or datetime.now(timezone.utc).date()
    chosen = case_rule_set(rules, when)
    slices = find_candidates(db_url, chosen, when, max(1, partitions))
    _report(f"find-cases: {sum(map(len, slices)):,} candidates in {len(slices)} partitions, rule set "
            f"{chosen.id} {chosen.version}")
    futures = []
    sizes: dict[Any, int] = {}
    for index, ids in enumerate(slices):
        if ids:
            future = find_cases_partition.submit(db_url, index, ids, chosen, when)
            futures.append(future)
            sizes[future] = len(ids)
    counts = _gather(futures, "find-cases", sizes)
    return {**counts.as_dict(), "rule_set": chosen.id, "version": chosen.version, "day": when.isoformat()}
