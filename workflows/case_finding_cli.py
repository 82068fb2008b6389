"""``careflow find-cases``: early detection. Every patient a case-finding rule matches gets a proposal
Task for their GP (through the Prefect flow), or, with ``--dry-run``, the matches are listed and
nothing is written. ``--at DATE`` evaluates and records as of that day (the rule set in force then).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from careflow.errors import CareflowError
from workflows.cli import DbOpt, JsonOpt, PartitionsOpt, _day, _engine, _print_json


def _match_json(m: Any) -> dict[str, Any]:
    return {"patient": f"Patient/{m.patient}", "rule": m.rule.id, "rule_set": m.ruleset, "version": m.version,
            "programme": m.rule.programme, "day": m.day.isoformat(), "reasons": [r.text for r in m.reasons],
            "evidence": list(m.evidence)}


def find_cases_command(
    db: Optional[str] = DbOpt,
    at: Optional[str] = typer.Option(None, "--at", help="evaluate and record as of this day (YYYY-MM-DD; default today)"),
    rules: Optional[Path] = typer.Option(None, "--rules", envvar="CAREFLOW_CASE_FINDING",
                                         help="a case-finding rule file or a folder of versions; default: careflow's case_finding/"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the matches (ids and reasons); write nothing"),
    partitions: int = PartitionsOpt, as_json: bool = JsonOpt,
) -> None:
    """Early detection: propose to their GP every patient a case-finding rule matches (safe to rerun)."""
    from careflow.population.loader import default_case_rules_dir, load_case_rule_sets, rules_in_force

    day = _day(at, "--at") or datetime.now(timezone.utc).date()
    if rules is not None and not rules.exists():
        raise CareflowError(f"--rules {rules}: no such file or folder")
    chosen = rules_in_force(load_case_rule_sets([rules or default_case_rules_dir()]), day)
    if dry_run:
        from careflow.engine.case_finding import evaluate
        from careflow.store.database import open_repository

        repo = open_repository(db)
        try:
            found = evaluate(repo, chosen, day)
        finally:
            repo.close()
        per_rule = Counter(m.rule.id for m in found)
        if as_json:
            return _print_json({"rule_set": chosen.id, "version": chosen.version, "day": day.isoformat(), "written": False,
                                "matched": {r.id: per_rule.get(r.id, 0) for r in chosen.rules},
                                "matches": [_match_json(m) for m in found]})
        typer.echo(f"careflow: case finding, rule set {chosen.id} {chosen.version} at {day.isoformat()} (nothing written): "
                   + ", ".join(f"{per_rule.get(r.id, 0):,} {r.id}" for r in chosen.rules))
        return
    _engine()
    from workflows import running
    from workflows.case_finding_flow import find_cases_region

    running.use_database(db)
    with running.stop_on_interrupt():
        result = running.run(find_cases_region, db_url=None, day=day, rules=str(rules) if rules else None,
                             partitions=partitions)
    if as_json:
        return _print_json(result)
    total = result.get("total", {})
    typer.echo(f"careflow: case finding done (rule set {result['rule_set']} {result['version']}, {result['day']}): "
               f"{total.get('proposed', 0):,} proposed, {total.get('already-proposed', 0):,} already open, "
               f"{total.get('seen-before', 0):,} closed before for the same evidence, "
               f"{total.get('already-enrolled', 0):,} already enrolled, {total.get('consent-withdrawn', 0):,} consent withdrawn")


def register(app: typer.Typer) -> None:
    app.command("find-cases")(find_cases_command)
