"""``careflow serve``: the FHIR API as a command. Registered by ``careflow.cli``."""

from __future__ import annotations

from typing import Optional

import typer


def serve_command(
    db: Optional[str] = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                                     help="database URL; default: SQLite in the user's data directory"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port"),
    engine: bool = typer.Option(True, "--engine/--no-engine",
                                help="apply observation and task-event triggers in this process (off: a careflow worker does)"),
    local_issuer: Optional[bool] = typer.Option(None, "--local-issuer/--no-local-issuer",
                                                help="trust tokens of 'careflow token' (default: only on the embedded "
                                                     "default database, or per CAREFLOW_AUTH_LOCAL_ISSUER)"),
    insecure_no_auth: bool = typer.Option(False, "--insecure-no-auth",
                                          help="DANGER: no token checks, every caller acts as the system; "
                                               "refuses any host but loopback (load tests only)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="worker processes; default one per core on PostgreSQL, "
                                               "1 on SQLite (which has one writer: more are refused)"),
) -> None:
    """Serve the FHIR R4 API (base /fhir) with the care programmes published as PlanDefinitions."""
    from careflow.api.server import default_workers, serve
    from careflow.store.database import resolve_url

    url = resolve_url(db)  # an unusable URL is one error line, before anything else is said
    if workers is None:
        workers = default_workers(url)
    _check_port_free(host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host

    def ready() -> None:
        many = f" ({workers} worker processes)" if workers > 1 else ""
        typer.echo(f"careflow: FHIR API at http://{shown}:{port}/fhir{many} (metadata: /fhir/metadata); Ctrl-C to stop",
                   err=True)

    serve(url, host, port, engine=engine, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer, on_ready=ready,
          workers=workers)


def _check_port_free(host: str, port: int) -> None:
    """One line instead of uvicorn's log record when the port is taken."""
    import socket

    from careflow.errors import PortInUse

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another with --port") from None



def token_command(
    target: Optional[str] = typer.Option(None, "--as", metavar="WHO",
                                         help="a discipline (gp, pharmacist, home-nurse...: a demo PractitionerRole of it), "
                                              "PractitionerRole/ID, Practitioner/ID, Patient/ID, system or auditor"),
    scope: Optional[list[str]] = typer.Option(None, "--scope",
                                              help="SMART scopes, e.g. 'user/Task.rs' (repeatable; default per kind)"),
    minutes: float = typer.Option(60, "--minutes", min=1, max=24 * 60, help="lifetime"),
    db: Optional[str] = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                                     help="database to find --as in; default: SQLite in the user's data directory"),
    audience: Optional[str] = typer.Option(None, "--audience",
                                           help="aud claim (default: the first of CAREFLOW_AUTH_AUDIENCE, else careflow-fhir)"),
    rotate_key: bool = typer.Option(False, "--rotate-key",
                                    help="sign with a new local key from now on (tokens of the previous key stay valid)"),
) -> None:
    """Print an access token from the local issuer (key in the user's data directory), trusted by a
    'careflow serve' on the same machine."""
    import os

    from careflow.api.login import claims_for
    from careflow.auth.local import DEFAULT_AUDIENCE, LocalIssuer
    from careflow.errors import CareflowError
    from careflow.store.database import open_repository, resolve_url

    issuer = LocalIssuer()
    if rotate_key:
        kid = issuer.rotate()
        typer.echo(f"careflow: local issuer signs with key {kid} now; the previous key stays trusted", err=True)
        if target is None:
            return
    if target is None:
        raise CareflowError("--as is required (gp, PractitionerRole/ID, Patient/ID, system, auditor)")
    needs_store = target not in ("system", "auditor")
    repository = open_repository(resolve_url(db)) if needs_store else None
    try:
        claims = claims_for(repository, target, " ".join(scope) if scope else None)
    finally:
        if repository is not None and hasattr(repository, "close"):
            repository.close()
    aud = audience or next(iter(a.strip() for a in os.environ.get("CAREFLOW_AUTH_AUDIENCE", "").split(",") if a.strip()),
                           DEFAULT_AUDIENCE)
    typer.echo(issuer.mint(claims, minutes=minutes, audience=aud))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("token")(token_command)
