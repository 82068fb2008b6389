"""``careflow serve``: open the store, publish the care programmes, run uvicorn.

Programmes are published as PlanDefinition + ActivityDefinition resources (ids = programme /
activity ids) so FHIR clients can discover them and call ``PlanDefinition/[id]/$apply``. A
resource whose content did not change is left alone, so restarting the server does not pile up
versions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from careflow.access.principal import SYSTEM
from careflow.errors import CareflowError, Gone, NotFound
from careflow.fhir.validation import validate_resource
from careflow.store.port import Repository

log = logging.getLogger("careflow.api")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k != "meta"}  # noqa: E731
    return strip(a) == strip(b)


def load_programs(path: str | Path | None = None) -> dict[str, Any]:
    """The programmes in ``care_programs/`` (or ``path``); empty when the loader is unavailable."""
    try:
        from careflow.programs.loader import load_directory
    except ImportError:  # pragma: no cover - the loader ships with careflow
        log.warning("careflow.programs.loader is not available: no programmes published")
        return {}
    return dict(load_directory(path))


def publish_programs(repository: Repository, programs: dict[str, Any]) -> int:
    """PUT each programme's PlanDefinition and ActivityDefinitions, in one unit of work; returns how
    many resources were written (unchanged ones are skipped)."""
    from careflow.programs.plandefinition import to_bundle

    written = 0
    with repository.unit_of_work(SYSTEM) as uow:
        for program in programs.values():
            for entry in to_bundle(program)["entry"]:
                resource = entry["resource"]
                validate_resource(resource)
                try:
                    current = uow.read(resource["resourceType"], resource["id"]).resource
                except (NotFound, Gone):
                    current = None
                if current is not None and _same(current, resource):
                    continue
                uow.update(dict(resource))
                written += 1
    return written


def build_app(url: str | None, programs_dir: str | Path | None = None, *, engine: bool = True) -> Any:
    """The app ``serve`` runs: repository at ``url`` (resolve_url rules), programmes published.

    The outbox listener is always installed, so every Observation and Task status change written
    through the API records its event in the same transaction. With ``engine`` the app also drains
    that outbox on a thread while it runs (trigger Tasks within seconds); without it a separate
    ``careflow worker`` does."""
    from contextlib import asynccontextmanager

    from careflow.api.app import create_app
    from careflow.engine.consumer import EventConsumer
    from careflow.engine.events import install
    from careflow.store.database import open_repository, resolve_url

    repository = open_repository(resolve_url(url))
    install(repository)
    programs = load_programs(programs_dir)
    if programs:
        n = publish_programs(repository, programs)
        log.info("published %d programme resources (%d programmes)", n, len(programs))
    app = create_app(repository, programs)
    if engine:
        consumer = EventConsumer(repository, programs)
        app.state.event_consumer = consumer

        @asynccontextmanager
        async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
            consumer.start()
            try:
                yield
            finally:
                consumer.stop()

        app.router.lifespan_context = lifespan
    return app


def serve(url: str | None, host: str, port: int, *, engine: bool = True) -> None:
    """Run the FHIR server until interrupted (``careflow serve [--db URL] [--host H] [--port P]``)."""
    import uvicorn

    app = build_app(url, engine=engine)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    """``python -m careflow.api.server``: the same as ``careflow serve``, for tests and benchmarks
    that need a server process without the CLI."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m careflow.api.server", description=serve.__doc__)
    ap.add_argument("--db", default=None, help="database URL (default: $CAREFLOW_DATABASE_URL or the user SQLite file)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args(argv)
    try:
        serve(a.db, a.host, a.port)
    except CareflowError as exc:
        sys.exit(f"careflow serve: {exc}")


if __name__ == "__main__":
    main()
