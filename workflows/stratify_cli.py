"""``careflow stratify``: recompute the pyramid (through the Prefect flow), replay an old rule version
at an old date, or explain one patient's group.

- no ``--at``: the flow stratifies every Patient today under the rule set in force and records what
  changed (RiskAssessments, group tags);
- ``--at DATE``: a replay, written nowhere: each patient's group on that date under the rule set in
  force then (or ``--rules FILE``), from the facts dated on or before it;
- ``--explain ID``: the sentence for that patient ("group B because: …, rule set 2026.2"), written nowhere.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from careflow.errors import CareflowError
from workflows.cli import DbOpt, JsonOpt, PartitionsOpt, _day, _engine, _print_json


def _stratum_json(s: Any) -> dict[str, Any]:
    return {"patient": f"Patient/{s.patient}", "group": s.group, "rule": s.rule, "rule_set": s.ruleset,
            "version": s.version, "day": s.day.isoformat(), "age": s.age,
            "reasons": [r.text for r in s.reasons] if s.rule else [], "evidence": list(s.evidence),
            "flags": list(s.flags), "explanation": s.explanation()}


def _groups(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(f'group-{g}', 0):,} {g}" for g in "ABCD")


def stratify_command(
    db: Optional[str] = DbOpt,
    at: Optional[str] = typer.Option(None, "--at", help="replay: the groups on this date (YYYY-MM-DD); nothing is written"),
    rules: Optional[Path] = typer.Option(None, "--rules", envvar="CAREFLOW_POPULATION_RULES",
                                         help="a rule file or a folder of rule versions; default: careflow's population_rules/"),
    explain: Optional[list[str]] = typer.Option(None, "--explain", metavar="PATIENT",
                                                help="explain this patient's group (Patient id; repeatable); nothing is written"),
    today: Optional[str] = typer.Option(None, "--today", help="record the groups as of this day (default today)"),
    incremental: bool = typer.Option(False, "--incremental", help="only the patients whose records changed since "
                                     "the last run of the same rule version on the same day (everyone if none)"),
    partitions: int = PartitionsOpt, as_json: bool = JsonOpt,
) -> None:
    """Place every inhabitant in group A-D and record it as RiskAssessments (or replay / explain)."""
    from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force

    if at is not None and today is not None:
        raise CareflowError("--at replays a past day and --today records one: give one of them")
    day = _day(at, "--at") or _day(today, "--today") or datetime.now(timezone.utc).date()
    if rules is not None and not rules.exists():
        raise CareflowError(f"--rules {rules}: no such file or folder")
    chosen = rules_in_force(load_rule_sets([rules or default_rules_dir()]), day)
    if explain or at is not None:
        return _read_only(db, chosen, day, explain, as_json)
    _engine()
    from workflows import running
    from workflows.stratify_flow import stratify_region

    running.use_database(db)
    with running.stop_on_interrupt():
        result = running.run(stratify_region, db_url=None, day=day, rules=str(rules) if rules else None,
                             partitions=partitions, incremental=incremental)
    if as_json:
        return _print_json(result)
    total = result.get("total", {})
    scope = (f"{total.get('recomputed', 0):,} patients changed since the last run, recomputed: "
             if total.get("incremental") else "")
    typer.echo(f"careflow: stratification done (rule set {result['rule_set']} {result['version']}, {result['day']}): "
               f"{scope}{_groups(total)}; {total.get('assessments-written', 0):,} assessments written, "
               f"{total.get('group-tags-updated', 0):,} group tags updated, "
               f"{total.get('frailty-screen-stale', 0):,} frailty screens too old to use")


def _read_only(db: Optional[str], chosen: Any, day: date, explain: Optional[list[str]], as_json: bool) -> None:
    from careflow.engine.stratify import assess
    from careflow.store.database import open_repository

    ids = [e.split("/", 1)[1] if e.startswith("Patient/") else e for e in explain or []]
    repo = open_repository(db)
    try:
        found = assess(repo, chosen, day, ids if explain else None)
    finally:
        repo.close()
    if explain:
        missing = sorted(set(ids) - {s.patient for s in found})
        if missing:
            raise CareflowError(f"no living patient with id {', '.join(missing)} in the store")
        if as_json:
            return _print_json([_stratum_json(s) for s in found])
        for s in found:
            typer.echo(f"Patient/{s.patient}: {s.explanation()}")
        return
    groups = Counter(f"group-{s.group}" for s in found)
    if as_json:
        return _print_json({"rule_set": chosen.id, "version": chosen.version, "day": day.isoformat(), "written": False,
                            "groups": {g: groups.get(f"group-{g}", 0) for g in "ABCD"},
                            "frailty-screen-stale": sum(1 for s in found if s.flags),
                            "patients": {f"Patient/{s.patient}": s.group for s in found}})
    typer.echo(f"careflow: replay of rule set {chosen.id} {chosen.version} at {day.isoformat()} (nothing written): "
               f"{_groups(dict(groups))}")


def register(app: typer.Typer) -> None:
    app.command("stratify")(stratify_command)
