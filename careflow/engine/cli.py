"""``careflow programs publish``: migrate the open plans of a programme to a new version.

Registered by ``careflow.cli``. Shows what would change per plan first; ``--apply`` writes it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Optional

import typer


def programs_publish(
    path: Path = typer.Argument(..., help="the programme's new version (a YAML file)"),
    db: Optional[str] = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                                     help="database URL; default: SQLite in the user's data directory"),
    apply: bool = typer.Option(False, "--apply", help="write the changes (without it: only show them)"),
    today: Optional[str] = typer.Option(None, "--today", help="the day the new version takes effect (YYYY-MM-DD)"),
    programs: Optional[Path] = typer.Option(None, "--programs", envvar="CAREFLOW_PROGRAMS",
                                            help="folder of the programmes in use (for the patients' other plans)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
) -> None:
    """Show, per open plan of the programme, what its new version changes; --apply migrates them.

    Open Tasks of activities the new version dropped are cancelled with a reason, what the new
    version opens now is due from today (never overdue on creation), and each plan's
    instantiatesCanonical follows. Run the engine with the new file in its programmes folder."""
    import orjson

    from careflow.engine.revision import publish
    from careflow.errors import CareflowError
    from careflow.programs.loader import load_directory, load_program
    from careflow.store.database import open_repository

    try:
        day = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise CareflowError(f"--today {today!r} is not a date like 2026-01-31") from None
    program = load_program(path)
    repo: Any = open_repository(db)
    try:
        revisions, counts = publish(repo, program, load_directory(programs), day, apply=apply)
    finally:
        repo.close()
    if as_json:
        report = {"program": program.canonical, "applied": apply, "counts": counts.as_dict(), "plans": [
            {"careplan": r.careplan_id, "from": r.old_canonical, "to": r.new_canonical,
             "cancel": [{"task": t, "activity": a} for t, a in r.cancelled],
             "open": [{"task": t, "activity": a} for t, a in r.opened]} for r in revisions]}
        typer.echo(orjson.dumps(report).decode())
        return
    for r in revisions:
        cancel = ", ".join(sorted({a for _, a in r.cancelled})) or "nothing"
        opened = ", ".join(sorted({a for _, a in r.opened})) or "nothing"
        typer.echo(f"CarePlan/{r.careplan_id}: {r.old_canonical.rsplit('|', 1)[-1]} -> {program.version}; "
                   f"cancel {len(r.cancelled)} open task(s) ({cancel}); open {len(r.opened)} from today ({opened})")
    verb = "revised" if apply else "to revise (run again with --apply to write)"
    done = counts["plans-revised"] if apply else len(revisions)
    tail = f", {counts['conflict']} skipped (edited meanwhile: publish again)" if counts["conflict"] else ""
    typer.echo(f"careflow: {program.id} {program.version}: {done} plan(s) {verb}{tail}")


def register(app: typer.Typer) -> None:
    from careflow.cli import programs_app

    programs_app.command("publish")(programs_publish)
