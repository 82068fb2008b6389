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
) -> None:
    """Serve the FHIR R4 API (base /fhir) with the care programmes published as PlanDefinitions."""
    from careflow.api.server import serve

    typer.echo(f"careflow: FHIR API at http://{host}:{port}/fhir (metadata: /fhir/metadata); Ctrl-C to stop", err=True)
    serve(db, host, port, engine=engine)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
