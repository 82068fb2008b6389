"""``careflow audit verify``: check the audit trail's MAC chain.  Registered by ``careflow.cli``."""

from __future__ import annotations

from typing import Any, Optional

import typer

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: verify its MAC chain.")


@audit_app.command("verify")
def audit_verify(
    db: Optional[str] = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                                     help="database URL; default: SQLite in the user's data directory"),
    expect_head: Optional[str] = typer.Option(None, "--expect-head", metavar="SEQ:MAC",
                                              help="the head an earlier verify printed: finds removed newest entries"),
) -> None:
    """Report every altered, removed, inserted or reordered entry (one line each; exit 1 if any)."""
    from careflow.errors import CareflowError
    from careflow.store.database import open_repository

    head: tuple[int, str] | None = None
    if expect_head:
        seq, _, mac = expect_head.partition(":")
        if not seq.isdigit() or len(mac) != 64:
            raise CareflowError("--expect-head takes SEQ:MAC as verify prints it")
        head = (int(seq), mac)
    repo: Any = open_repository(db)
    try:
        if repo.audit is None:
            raise CareflowError("the audit trail is off (CAREFLOW_AUDIT=off): nothing to verify")
        report = repo.audit.verify(expect_head=head)
    finally:
        repo.close()
    for line in report.problems:
        typer.echo(line)
    if report.problems:
        typer.echo(f"careflow audit: {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''} "
                   f"in {report.entries} entries", err=True)
        raise SystemExit(1)
    typer.echo(f"{report.entries} entries verified; head {report.head_seq}:{report.head_mac}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
