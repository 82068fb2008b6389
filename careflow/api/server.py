"""``careflow serve``: open the store, publish the care programmes, run uvicorn.

Programmes are published as PlanDefinition + ActivityDefinition resources (ids = programme /
activity ids) so FHIR clients can discover them and call ``PlanDefinition/[id]/$apply``. A
resource whose content did not change is left alone, so restarting the server does not pile up
versions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

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


def server_auth(url: str, *, insecure_no_auth: bool = False, local_issuer: bool | None = None) -> Any:
    """Who the server trusts (:mod:`careflow.auth.settings`): a :class:`TokenVerifier`, or with
    ``insecure_no_auth`` everyone as the system principal (only ever for a loopback test server).
    ``local_issuer`` True/False overrides ``CAREFLOW_AUTH_LOCAL_ISSUER``."""
    from dataclasses import replace

    from careflow.access.principal import SYSTEM
    from careflow.api.security import TrustEveryone
    from careflow.auth.settings import AuthSettings
    from careflow.auth.tokens import TokenVerifier
    from careflow.store.database import default_url

    if insecure_no_auth:
        log.warning("careflow serve: --insecure-no-auth: every caller acts as the system, no token checked")
        return TrustEveryone(SYSTEM)
    settings = AuthSettings.from_env()
    if local_issuer is not None:
        settings = replace(settings, local_issuer=local_issuer)
    return TokenVerifier(settings.issuers(embedded_default_db=url == default_url()))


def build_app(url: str | None, programs_dir: str | Path | None = None, *, engine: bool = True,
              insecure_no_auth: bool = False, local_issuer: bool | None = None) -> Any:
    """The app ``serve`` runs: repository at ``url`` (resolve_url rules), programmes published,
    callers authenticated as :func:`server_auth` says.

    The outbox listener is always installed, so every Observation and Task status change written
    through the API records its event in the same transaction. With ``engine`` the app also drains
    that outbox on a thread while it runs (trigger Tasks within seconds); without it a separate
    ``careflow worker`` does."""
    from contextlib import asynccontextmanager

    from careflow.api.app import create_app
    from careflow.engine import subscriptions
    from careflow.engine.consumer import EventConsumer
    from careflow.engine.events import install
    from careflow.store.database import open_repository, resolve_url

    resolved = resolve_url(url)
    auth = server_auth(resolved, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer)
    repository = open_repository(resolved)
    install(repository)
    subscriptions.install(repository)  # Task and CarePlan changes for the Subscription matcher
    programs = load_programs(programs_dir)
    if programs:
        n = publish_programs(repository, programs)
        log.info("published %d programme resources (%d programmes)", n, len(programs))
    app = create_app(repository, programs, auth=auth)
    app.state.programs_dir = programs_dir  # the pathway viewer shows the files the programmes came from
    if engine:
        consumer = EventConsumer(repository, programs)
        notifier = subscriptions.SubscriptionConsumer(repository)
        app.state.event_consumer = consumer
        app.state.subscription_consumer = notifier

        @asynccontextmanager
        async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
            consumer.start()
            notifier.start()
            try:
                yield
            finally:
                notifier.stop()
                consumer.stop()

        app.router.lifespan_context = lifespan
    return app


class InsecureBindRefused(CareflowError):
    """--insecure-no-auth on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(url: str | None, host: str, port: int, *, engine: bool = True, insecure_no_auth: bool = False,
          local_issuer: bool | None = None, on_ready: Callable[[], None] | None = None) -> None:
    """Run the FHIR server until interrupted (``careflow serve [--db URL] [--host H] [--port P]``).

    ``on_ready`` is called once the socket listens, so a "ready" line is never printed before an
    error (an unusable database URL, a port in use) nor before a client could connect."""
    import uvicorn

    if insecure_no_auth and not is_loopback(host):
        raise InsecureBindRefused(f"--insecure-no-auth serves everything to anyone: it binds loopback only, not {host!r}")
    app = build_app(url, engine=engine, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None and not self.should_exit:
                on_ready()

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    try:
        _Server(config).run()
    finally:
        app.state.careflow.repository.close()  # the audit records still queued are written


def main(argv: list[str] | None = None) -> None:
    """``python -m careflow.api.server``: the same as ``careflow serve``, for tests and benchmarks
    that need a server process without the CLI."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m careflow.api.server", description=serve.__doc__)
    ap.add_argument("--db", default=None, help="database URL (default: $CAREFLOW_DATABASE_URL or the user SQLite file)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--insecure-no-auth", action="store_true",
                    help="no token checks, every caller is the system (loopback only; for load tests)")
    ap.add_argument("--local-issuer", action="store_true", help="trust tokens of 'careflow token'")
    a = ap.parse_args(argv)
    try:
        serve(a.db, a.host, a.port, insecure_no_auth=a.insecure_no_auth, local_issuer=True if a.local_issuer else None)
    except CareflowError as exc:
        sys.exit(f"careflow serve: {exc}")


if __name__ == "__main__":
    main()
