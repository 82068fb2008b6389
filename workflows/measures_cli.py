"""``careflow measures``: refresh the quality indicators for a period (through the Prefect flow) and
print them, one line per indicator (or ``--json``). Runs as the system: the operator of the database
is the region and sees every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from careflow.errors import CareflowError
from workflows.cli import DbOpt, JsonOpt, _day, _engine, _print_json


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'measure':<34} {'denominator':>11} {'excluded':>8} {'numerator':>9} {'score':>6}"]
    for mid, f in result["measures"].items():
        score = "-" if f["score"] is None else f"{f['score'] * 100:.1f}%"
        lines.append(f"{mid:<34} {f['denominator']:>11,} {f['denominator-exclusion']:>8,} {f['numerator']:>9,} {score:>6}")
    lines.append(f"careflow: {len(result['measures'])} indicators over {result['period']} ({result['status']}); "
                 f"{result['recomputed-patients']:,} patients recomputed, {result['reports-written']:,} reports written")
    return "\n".join(lines)


def measures_command(
    db: Optional[str] = DbOpt,
    period: Optional[str] = typer.Option(None, "--period", metavar="YYYY[-MM]", help="a year or a month; default the current month"),
    today: Optional[str] = typer.Option(None, "--today", help="the day the run counts as (default today): a period over by then is complete"),
    measures: Optional[Path] = typer.Option(None, "--measures", envvar="CAREFLOW_MEASURES",
                                            help="a folder of indicator files; default: careflow's measures/"),
    as_json: bool = JsonOpt,
) -> None:
    """Compute every quality indicator (FHIR Measure / MeasureReport) for a period and store the summaries."""
    from careflow.measures.loader import load_measure_sets
    from careflow.measures.period import parse_period

    if period is not None:
        parse_period(period)  # a bad period is one line, before anything starts
    if measures is not None and not measures.exists():
        raise CareflowError(f"--measures {measures}: no such file or folder")
    if measures is not None:
        load_measure_sets([measures])
    day = _day(today, "--today")
    _engine()
    from workflows import running
    from workflows.measures_flow import measures_region

    running.use_database(db)
    with running.stop_on_interrupt():
        result = running.run(measures_region, db_url=None, period=period, today=day,
                             folder=str(measures) if measures else None)
    if as_json:
        return _print_json(result)
    typer.echo(_table(result))


def register(app: typer.Typer) -> None:
    app.command("measures")(measures_command)
