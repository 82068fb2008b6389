"""``careflow report financing``: the yearly team payment as CSV, JSON or a FHIR Invoice.

Registered by ``careflow.cli``. Runs as the system (the operator of the database is the region):
the command prints every team's line.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any, Optional

import typer

report_app = typer.Typer(no_args_is_help=True, help="Reports for the region: the team financing.")


def _as_of(value: Optional[str]) -> Optional[datetime]:
    from careflow.engine.financing import end_of_day
    from careflow.errors import CareflowError
    from careflow.population.financing import LOCAL_TIME

    if value is None:
        return None
    try:
        if len(value) == 10:
            return end_of_day(date.fromisoformat(value))
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CareflowError(f"--as-of {value!r} is not a date or date-time like 2027-01-31 or 2027-01-31T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TIME)


@report_app.command("financing")
def report_financing(
    year: str = typer.Option(..., "--year", metavar="YYYY", help="the calendar year to pay for"),
    db: Optional[str] = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                                     help="database URL; default: SQLite in the user's data directory"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="as recorded up to this day (end of day, Brussels) or "
                                                              "moment: reproduces an earlier statement"),
    by: Optional[str] = typer.Option(None, "--by", help="group or practice: a breakdown within each team "
                                                        "(cells under 5 patients suppressed)"),
    as_json: bool = typer.Option(False, "--json", help="print the statement as one JSON object"),
    fhir: bool = typer.Option(False, "--fhir", help="print the statement as a FHIR R4 Invoice"),
) -> None:
    """€100 per enrolled patient per year, pro rata per day, per neighbourhood team (CSV on stdout:
    team, enrolled patients, patient-days, amount in euro; the last line is the total)."""
    import orjson

    from careflow.engine.financing import financing
    from careflow.errors import CareflowError
    from careflow.population.financing_report import breakdown_csv, invoice, statement_json, team_csv
    from careflow.store.database import open_repository

    if not (len(year) == 4 and year.isdigit() and 1900 <= int(year) <= 9999):
        raise CareflowError(f"--year {year!r} is not a year like 2026")
    if by not in (None, "group", "practice"):
        raise CareflowError(f"--by {by!r} is not group or practice")
    if as_json and fhir:
        raise CareflowError("--json and --fhir exclude each other")
    moment = _as_of(as_of)
    try:
        repo: Any = open_repository(db)
    except CareflowError:
        raise
    except Exception as exc:  # a bad URL or an unreachable server: one line, no traceback
        raise CareflowError(f"cannot open the store {db or '(default)'}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")) from None
    try:
        st, directory = financing(repo, int(year), moment)
    finally:
        repo.close()
    if fhir:
        sys.stdout.buffer.write(orjson.dumps(invoice(st, directory.team), option=orjson.OPT_INDENT_2) + b"\n")
        return
    if as_json:
        names = directory.practice if by == "practice" else None
        sys.stdout.buffer.write(orjson.dumps(statement_json(st, directory.team, names, by)) + b"\n")
        return
    if by == "group":
        typer.echo(breakdown_csv(st.groups, "group", directory.team, lambda k: k or "unknown"), nl=False)
    elif by == "practice":
        typer.echo(breakdown_csv(st.practices, "practice", directory.team, directory.practice), nl=False)
    else:
        typer.echo(team_csv(st, directory.team), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
