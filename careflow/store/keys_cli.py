"""``careflow keys`` (encryption-at-rest maintenance) and ``careflow purge`` (erasure); registered by ``careflow.cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

keys_app = typer.Typer(no_args_is_help=True, help="Encryption at rest: data keys, rotation, blind-index re-index.")

DbOpt = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                     help="database URL; default: SQLite in the user's data directory")


def _open(db: Optional[str]) -> Any:
    from careflow.store.database import open_repository

    return open_repository(db)


@keys_app.command("status")
def keys_status(db: Optional[str] = DbOpt) -> None:
    """The data keys, which one is active, and how many stored versions each encrypts."""
    from careflow.store.rotation import status

    repo = _open(db)
    try:
        with repo.unit_of_work(_system()):  # loads (and on a new database creates) the keys
            pass
        st = status(repo)
    finally:
        repo.close()
    for k in st.keys:
        used = "" if k.values is None else f"  {k.values} versions"
        typer.echo(f"{k.id:>10}  {k.purpose:<7}  {'active' if k.active else 'retired':<7}  "
                   f"created {k.created:%Y-%m-%d %H:%M}{used}")
    if st.plaintext:
        typer.echo(f"{st.plaintext} versions are stored unencrypted: run `careflow keys reindex`")
    for kid, n in st.unknown.items():
        typer.echo(f"{n} versions name key {kid}, which the database does not hold")


@keys_app.command("rotate")
def keys_rotate(
    db: Optional[str] = DbOpt,
    batch: int = typer.Option(500, "--batch", min=1, help="versions re-encrypted per transaction"),
    pause: float = typer.Option(0.0, "--pause", min=0.0, help="seconds between batches (SQLite: room for the server's writes)"),
) -> None:
    """New content key; re-encrypt every stored version in batches while servers keep running; delete
    the old key once no value uses it."""
    from careflow.store.rotation import rotate

    repo = _open(db)
    try:
        report = rotate(repo, batch=batch, pause=pause, progress=lambda line: typer.echo(line, err=True))
    finally:
        repo.close()
    typer.echo(f"content key {report.new_key} active; {report.reencrypted} versions re-encrypted; "
               f"retired keys: {', '.join(map(str, report.retired)) or 'none'}")
    if report.remaining:
        typer.echo("still in use (kept): " + ", ".join(f"{k} ({n} versions)" for k, n in report.remaining.items()))


@keys_app.command("reindex")
def keys_reindex(
    db: Optional[str] = DbOpt,
    keep_blind_key: bool = typer.Option(False, "--keep-blind-key", help="rebuild under the current blind-index key"),
) -> None:
    """OFFLINE (stop every server and worker first): rebuild every search-index row under a new
    blind-index key; also converts a database from before encryption at rest."""
    from careflow.store.rotation import reindex

    repo = _open(db)
    try:
        report = reindex(repo, new_blind_key=not keep_blind_key, progress=lambda line: typer.echo(line, err=True))
    finally:
        repo.close()
    typer.echo(f"blind-index key {report.blind_key} active; {report.resources} resources re-indexed; "
               f"{report.converted} plaintext versions encrypted")


@keys_app.command("rewrap")
def keys_rewrap(
    new_key_file: Path = typer.Option(..., "--new-key-file", help="file holding the new master key (mode 0600)"),
    db: Optional[str] = DbOpt,
) -> None:
    """Wrap every data key under a new master key; then point CAREFLOW_MASTER_KEY(_FILE) at it."""
    from careflow.crypto.master import read_key_file
    from careflow.store.rotation import rewrap

    new = read_key_file(new_key_file)
    repo = _open(db)
    try:
        n = rewrap(repo, new)
    finally:
        repo.close()
    typer.echo(f"{n} data keys now wrapped by the master key in {new_key_file}; configure it for every process")


@keys_app.command("new-master")
def keys_new_master() -> None:
    """Print a fresh master key (base64) for CAREFLOW_MASTER_KEY or a 0600 key file."""
    from careflow.crypto.master import new_master_key

    typer.echo(new_master_key())


def _system() -> Any:
    from careflow.access.principal import SYSTEM

    return SYSTEM


def purge(target: str = typer.Argument(..., metavar="TYPE/ID", help="Patient/ID (the whole record) or any Type/ID"),
          db: Optional[str] = DbOpt,
          yes: bool = typer.Option(False, "--yes", help="erase without asking (there is no undo)")) -> None:
    """Erase for good (GDPR art. 17): a patient and every resource of their record, or one resource;
    every version, index row and outbox event. The audit trail keeps that it happened."""
    from careflow.errors import CareflowError

    rtype, _, rid = target.partition("/")
    if not rtype or not rid or "/" in rid:
        raise CareflowError(f"{target!r} is not TYPE/ID (e.g. Patient/123)")
    if not yes and not typer.confirm(f"erase {target} for good? there is no undo", err=True):
        raise typer.Exit(1)
    repo = _open(db)
    try:
        with repo.unit_of_work(_system()) as uow:
            removed = uow.expunge(rtype, rid)
    finally:
        repo.close()
    if not removed:
        raise CareflowError(f"{target} is not in the store")
    typer.echo(f"erased {target}: {len(removed)} resources, every version")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("purge")(purge)
