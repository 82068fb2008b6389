"""``careflow serve``: open the store, publish the care programmes, run uvicorn.

Programmes are published as PlanDefinition + ActivityDefinition resources (ids = programme /
activity ids) so FHIR clients can discover them and call ``PlanDefinition/[id]/$apply``. A
resource whose content did not change is left alone, so restarting the server does not pile up
versions.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
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
              insecure_no_auth: bool = False, local_issuer: bool | None = None, prepared: bool = False) -> Any:
    """The app ``serve`` runs: repository at ``url`` (resolve_url rules), programmes published,
    callers authenticated as :func:`server_auth` says.

    The outbox listener is always installed, so every Observation and Task status change written
    through the API records its event in the same transaction. With ``engine`` the app also drains
    that outbox on a thread while it runs (trigger Tasks within seconds); without it a separate
    ``careflow worker`` does. The loops run in one process only among all that serve this store
    (careflow.engine.background: whoever holds the store's lease), so ``--workers N`` delivers
    each notification once.

    ``prepared``: the schema is migrated and the programmes are published already (a worker of
    ``serve --workers N``, whose parent did both once)."""
    from careflow.api.app import create_app
    from careflow.engine import subscriptions
    from careflow.engine.background import LeaderRunner
    from careflow.engine.consumer import EventConsumer
    from careflow.engine.events import install
    from careflow.store.database import open_repository, resolve_url

    resolved = resolve_url(url)
    auth = server_auth(resolved, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer)
    repository = open_repository(resolved, migrate=not prepared)
    install(repository)
    subscriptions.install(repository)  # Task and CarePlan changes for the Subscription matcher
    programs = load_programs(programs_dir)
    if programs and not prepared:
        n = publish_programs(repository, programs)
        log.info("published %d programme resources (%d programmes)", n, len(programs))
    app = create_app(repository, programs, auth=auth)
    app.state.programs_dir = programs_dir  # the pathway viewer shows the files the programmes came from
    if engine:
        runner = LeaderRunner(repository, [lambda: EventConsumer(repository, programs),
                                           lambda: subscriptions.SubscriptionConsumer(repository)])
        app.state.background = runner

        @asynccontextmanager
        async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
            runner.start()
            try:
                yield
            finally:
                runner.stop()

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


class OneWriterOnly(CareflowError):
    """``--workers`` above 1 on SQLite."""


def is_sqlite(url: str | None) -> bool:
    from sqlalchemy.engine import make_url

    from careflow.store.database import resolve_url

    return make_url(resolve_url(url)).get_backend_name() == "sqlite"


def default_workers(url: str | None) -> int:
    """One worker process per core on PostgreSQL; one on SQLite (see :func:`serve`)."""
    return 1 if is_sqlite(url) else max(1, os.cpu_count() or 1)


def serve(url: str | None, host: str, port: int, *, engine: bool = True, insecure_no_auth: bool = False,
          local_issuer: bool | None = None, on_ready: Callable[[], None] | None = None, workers: int = 1) -> None:
    """Run the FHIR server until interrupted (``careflow serve [--db URL] [--host H] [--port P]``).

    ``on_ready`` is called once the socket listens (every worker's), so a "ready" line is never
    printed before an error (an unusable database URL, a port in use) nor before a client could
    connect.

    ``workers`` > 1 runs that many processes on one socket (uvicorn's supervisor, which restarts a
    worker that dies), PostgreSQL only: SQLite lets one connection write at a time, so N processes
    would only queue behind its lock, each holding requests while it waits, and a write-heavy
    moment would turn into timeouts instead of a queue in one process."""
    if insecure_no_auth and not is_loopback(host):
        raise InsecureBindRefused(f"--insecure-no-auth serves everything to anyone: it binds loopback only, not {host!r}")
    if workers > 1:
        _serve_workers(url, host, port, workers, engine=engine, insecure_no_auth=insecure_no_auth,
                       local_issuer=local_issuer, on_ready=on_ready)
        return
    import uvicorn

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


ENV_WORKER = "CAREFLOW_SERVE_WORKER"  # the settings each worker process builds its app from (JSON)


def worker_app() -> Any:
    """The app of one worker of ``serve --workers N`` (uvicorn imports this factory in each process)."""
    settings = json.loads(os.environ[ENV_WORKER])
    app = build_app(settings["url"], engine=settings["engine"], insecure_no_auth=settings["insecure_no_auth"],
                    local_issuer=settings["local_issuer"], prepared=True)
    repository = app.state.careflow.repository
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any):  # type: ignore[no-untyped-def]
        try:
            async with inner(a) as state:
                yield state
        finally:
            repository.close()  # the audit records this worker still holds are written

    app.router.lifespan_context = lifespan
    return app


def prepare_shared_state(url: str, *, insecure_no_auth: bool, local_issuer: bool | None) -> None:
    """What the workers share, done once before any of them starts: the schema migrated, the
    programmes published, the trust settings checked (a server that trusts no issuer stops here,
    with one line) and the key files made, so every worker verifies tokens with and signs
    notifications with the same keys and serves the same JWKS."""
    from careflow.auth.local import LocalIssuer
    from careflow.auth.notification_keys import NotificationSigner
    from careflow.store.database import open_repository

    auth = server_auth(url, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer)
    repository = open_repository(url)
    try:
        programs = load_programs()
        if programs:
            publish_programs(repository, programs)
    finally:
        repository.close()
    NotificationSigner().keys.keys()
    if any(getattr(issuer, "local", False) for issuer in getattr(auth, "issuers", {}).values()):
        LocalIssuer().keys()


def _serve_workers(url: str | None, host: str, port: int, workers: int, *, engine: bool, insecure_no_auth: bool,
                   local_issuer: bool | None, on_ready: Callable[[], None] | None) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from careflow.store.database import resolve_url

    resolved = resolve_url(url)
    if is_sqlite(resolved):
        raise OneWriterOnly(f"--workers {workers} needs PostgreSQL: SQLite lets one process write at a time "
                            "(serve it with --workers 1)")
    prepare_shared_state(resolved, insecure_no_auth=insecure_no_auth, local_issuer=local_issuer)
    os.environ[ENV_WORKER] = json.dumps({"url": resolved, "engine": engine, "insecure_no_auth": insecure_no_auth,
                                         "local_issuer": local_issuer})
    config = uvicorn.Config("careflow.api.server:worker_app", factory=True, host=host, port=port, workers=workers,
                            log_level="warning", access_log=False)

    class _Supervisor(Multiprocess):
        def init_processes(self) -> None:
            super().init_processes()
            ready = all(p.wait_until_ready(120, self.should_exit) for p in self.processes)
            if ready and on_ready is not None and not self.should_exit.is_set():
                on_ready()

    sock = config.bind_socket()
    try:
        _Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()


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
    ap.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only above 1)")
    a = ap.parse_args(argv)
    try:
        serve(a.db, a.host, a.port, insecure_no_auth=a.insecure_no_auth, local_issuer=True if a.local_issuer else None,
              workers=a.workers)
    except CareflowError as exc:
        sys.exit(f"careflow serve: {exc}")


if __name__ == "__main__":
    main()
