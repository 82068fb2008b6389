"""The engine's commands: ``careflow demo | enrol | sweep | import | worker``.

Registered by ``careflow.cli`` when this module is importable.  Nothing here imports Prefect at
module level: ``careflow --help`` stays fast, and each command sets careflow's Prefect defaults
(quiet console, local data dir, ephemeral server) before Prefect is first imported.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from careflow.errors import CareflowError

DbOpt = typer.Option(None, "--db", envvar="CAREFLOW_DATABASE_URL",
                     help="store URL (sqlite:///file.db or postgresql://...); default: SQLite in the data dir")
PartitionsOpt = typer.Option(8, "--partitions", min=1, max=256, help="task runs to split the patients into")
JsonOpt = typer.Option(False, "--json", help="print the result as one JSON object on stdout instead of a sentence")
RunnerOpt = typer.Option(None, "--runner", envvar="CAREFLOW_TASK_RUNNER",
                         help="where the partitions run: threads (default), threads:N, dask (a local cluster, a "
                              "process per core), dask:N, dask:tcp://scheduler:8786 (needs careflow[dask]), ray")


def _print_json(data: object) -> None:
    import sys

    import orjson

    sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
    sys.stdout.flush()


def _engine() -> None:
    """Prefect defaults for an interactive command, then the flows; progress lines go to stderr."""
    from workflows.prefect_env import configure

    configure(quiet_console=True)
    from workflows import flows
    from workflows.prefect_env import log_to_file
    from workflows.progress import stderr_progress

    log_to_file()
    flows.set_progress(stderr_progress)


def _use_runner(spec: Optional[str]) -> None:
    """Check the runner now (one line if its package is missing) and, for Dask or Ray in embedded mode,
    start the temporary Prefect server first and export its URL: their worker processes report their
    task runs to it instead of each starting a server of their own."""
    import os

    from workflows import flows

    flows.task_runner(spec)
    if not spec or spec.startswith("threads") or os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api.server import SubprocessASGIServer

    from workflows import running
    from workflows.progress import stderr_progress

    running.start_temporary_prefect_server(stderr_progress, "runner").wait()
    os.environ["PREFECT_API_URL"] = SubprocessASGIServer().api_url


def _day(value: Optional[str], option: str) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CareflowError(f"{option} {value!r} is not a date like 2026-01-31") from None


def _moment(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CareflowError(f"--now {value!r} is not a date or date-time like 2026-01-31 or 2026-01-31T06:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _summary(result: dict, keys: tuple[str, ...]) -> str:
    total = result.get("total", {}) if isinstance(result, dict) else {}
    return ", ".join(f"{total.get(k, 0):,} {k}" for k in keys)


def enrol_command(db: Optional[str] = DbOpt,
                  start: Optional[str] = typer.Option(None, "--start", help="plan start date (YYYY-MM-DD), default today"),
                  partitions: int = PartitionsOpt, as_json: bool = JsonOpt, runner: Optional[str] = RunnerOpt,
                  mode: str = typer.Option("active", "--mode", envvar="CAREFLOW_ENROLMENT",
                                           help="active: plans straight from the diagnosis codes; proposals: an "
                                                "inclusion proposal for each patient's GP instead"),
                  batch_size: int = typer.Option(50, "--batch-size", min=1, max=10_000,
                                                 help="patients per transaction (smaller: shorter write locks)")) -> None:
    """Enrol every eligible patient in the store in their care programmes (safe to rerun)."""
    day = _day(start, "--start")
    if mode not in ("active", "proposals"):
        raise CareflowError(f"--mode {mode!r} is not active or proposals")
    _engine()
    from workflows import flows, running

    running.use_database(db)
    with running.stop_on_interrupt():
        _use_runner(runner)
        result = running.run(flows.with_runner(flows.enrol_region, runner), db_url=None, start=day,
                             partitions=partitions, mode=mode, batch_size=batch_size)
    if as_json:
        return _print_json(result)
    keys = ("proposed", "already-proposed-or-enrolled") if mode == "proposals" else ("enrolled", "already-enrolled")
    typer.echo("careflow: enrolment done: " + _summary(result, (*keys, "not-eligible", "deceased", "resources-created",
                                                                  "conflict")))


def sweep_command(db: Optional[str] = DbOpt,
                  now: Optional[str] = typer.Option(None, "--now", help="sweep as of this date/time, default now"),
                  partitions: int = PartitionsOpt, as_json: bool = JsonOpt, runner: Optional[str] = RunnerOpt) -> None:
    """Run the follow-up sweep once: open due Tasks, escalate overdue ones, close finished plans."""
    moment = _moment(now)
    _engine()
    from workflows import flows, running

    running.use_database(db)
    with running.stop_on_interrupt():
        _use_runner(runner)
        result = running.run(flows.with_runner(flows.sweep_region, runner), db_url=None, now=moment,
                             partitions=partitions)
    if as_json:
        return _print_json(result)
    typer.echo("careflow: sweep done: " + _summary(result, ("plans", "tasks-opened", "tasks-overdue", "escalated",
                                                             "plans-completed", "conflict")))


def import_command(path: Path = typer.Argument(..., help="a Synthea FHIR bundle, or a folder of them"),
                   db: Optional[str] = DbOpt, as_json: bool = JsonOpt) -> None:
    """Load Synthea R4 bundles into the store (resources keep their ids; a rerun adds only what is missing)."""
    # no flow runs here, so Prefect is never imported (nor its start-up warnings printed)
    from careflow.region.synthea import ImportStats, read_synthea
    from workflows import running
    from workflows.loading import load_resources
    from workflows.progress import stderr_progress
    from workflows.resources import repository

    running.use_database(db)
    stats = ImportStats()
    with running.stop_on_interrupt():
        counts = load_resources(repository(None), read_synthea(path, stats=stats), what="import",
                                progress=stderr_progress)
    skipped = sum(stats.skipped.values())
    reduced = stats.dropped_references + stats.unresolved_references
    if as_json:
        return _print_json({"files": stats.files, "created": counts.created, "existing": counts.existing,
                            "skipped": dict(sorted(stats.skipped.items())), "references_reduced": reduced})
    typer.echo(f"careflow: imported {stats.files:,} file(s): {counts.created:,} resources created, "
               f"{counts.existing:,} already present, {skipped:,} of unsupported types skipped, "
               f"{reduced:,} references reduced to text")


def worker_command(db: Optional[str] = DbOpt,
                   sweep_cron: str = typer.Option("30 5 * * *", "--sweep-cron", help="when the daily sweep runs (cron, Europe/Brussels)"),
                   enrol_cron: str = typer.Option("0 5 * * *", "--enrol-cron", help="when new patients are enrolled (cron)"),
                   events_every: int = typer.Option(60, "--events-every", min=5, help="seconds between outbox runs"),
                   limit: int = typer.Option(2, "--limit", min=1, help="flow runs at once on this machine")) -> None:
    """Serve the engine's deployments on their schedules, against the Prefect API in PREFECT_API_URL."""
    import os

    _engine()
    from workflows import running
    from workflows.deployments import Schedules, serve_forever

    url = running.use_database(db)
    from workflows.resources import repository

    repository(url)  # fail now, with one line, if the store cannot be opened
    where = os.environ.get("PREFECT_API_URL") or "a temporary local Prefect server (set PREFECT_API_URL for production)"
    typer.echo(f"careflow: worker serving careflow-enrol, careflow-sweep, careflow-events via {where}; Ctrl-C to stop",
               err=True)
    with running.stop_within():
        try:
            running.run(serve_forever, schedules=Schedules(enrol_cron=enrol_cron, sweep_cron=sweep_cron,
                                                           events_seconds=events_every), limit=limit)
        except KeyboardInterrupt:
            pass
    typer.echo("careflow: worker stopped", err=True)


def demo_command(inhabitants: int = typer.Option(100_000, "--inhabitants", min=1, help="people in the demo region"),
                 db: Optional[str] = DbOpt,
                 no_serve: bool = typer.Option(False, "--no-serve", help="build the region, then exit"),
                 host: str = typer.Option("127.0.0.1", "--host", help="where the FHIR API listens"),
                 port: int = typer.Option(8080, "--port", min=1, max=65535),
                 seed: int = typer.Option(1, "--seed", help="same seed, same region"),
                 partitions: int = PartitionsOpt,
                 reset: bool = typer.Option(False, "--reset", help="delete the SQLite store first and start afresh"),
                 as_json: bool = JsonOpt) -> None:
    """Generate the Zorgzaam Leuven demo region, enrol and sweep it, and serve the FHIR API."""
    from workflows import running
    from workflows.progress import Heartbeat, stderr_progress

    if not no_serve:
        running.check_port_free(host, port)  # before any work, and before any line but the error
    progress = Heartbeat(stderr_progress)
    # importing Prefect and the engine takes 3-11 s on a busy machine: said, and filled if it lasts
    progress.step("demo: starting (loading the engine's libraries)", "loading the engine's libraries")
    _engine()
    from workflows.demo import load_region, ready_line, reset_store, summary

    url = running.use_database(db)
    if reset:
        reset_store(url, progress)
    # a person waiting for the API gets it once the region is loaded, and watches enrolment and the
    # sweep go on in the background; --no-serve and --json (scripts) get the result first
    early = not no_serve and not as_json
    with running.stop_on_interrupt():
        loaded = load_region(None, inhabitants, seed, progress)
        result = None
        if not early:
            result = _finish_engine(loaded, progress, partitions)
    if no_serve:
        assert result is not None
        if as_json:
            return _print_json(summary(result, url, None, None))
        typer.echo(ready_line(result, url, None, None))
        return
    from careflow.api.login import demo_login_text
    from careflow.api.server import serve

    engine_thread = None
    if early:
        import threading

        def background() -> None:
            try:
                done = _finish_engine(loaded, progress, partitions)
            except CareflowError as exc:
                typer.echo(f"careflow: error: {exc}; the API keeps serving what was loaded", err=True)
                return
            except Exception as exc:  # noqa: BLE001 - one line, never a traceback under the server's lines
                typer.echo(f"careflow: error: enrolment or sweep failed ({type(exc).__name__}); the API keeps "
                           "serving; run the demo again to finish (nothing is duplicated)", err=True)
                return
            typer.echo(ready_line(done, url, None, None))

        engine_thread = threading.Thread(target=background, name="careflow-demo-engine", daemon=True)

    def ready() -> None:  # called once the server listens, not before
        progress.step(None, None)
        login = demo_login_text(url, host, port)  # tokens of the local issuer, which this server trusts
        if as_json:
            assert result is not None
            _print_json(summary(result, url, host, port))
            typer.echo(login, err=True)
        elif result is not None:
            typer.echo(ready_line(result, url, host, port))
            typer.echo(login)
        else:
            typer.echo(serving_line(loaded, url, host, port))
            typer.echo(login)
            assert engine_thread is not None
            engine_thread.start()  # after the first answer: the engine's CPU does not delay it

    progress.step("demo: starting the FHIR API", "starting the FHIR API")
    serve(url, host, port, local_issuer=True, on_ready=ready)
    progress.close()
    if engine_thread is not None and engine_thread.is_alive():
        running.stop_temporary_prefect_server()
        import os
        import sys

        sys.stderr.write(running.INTERRUPTED)
        sys.stderr.flush()
        os._exit(130)  # the engine thread is mid-transaction: it rolls back, a rerun finishes the work


def _finish_engine(loaded, progress, partitions: int):  # type: ignore[no-untyped-def]
    """Enrol and sweep, then stop the temporary Prefect server and close the flows' store (its WAL
    folded into the database)."""
    from workflows import running
    from workflows.demo import run_engine
    from workflows.resources import close_all

    result = run_engine(loaded, progress, partitions)
    running.stop_temporary_prefect_server()
    close_all()
    return result


def serving_line(loaded, url: str, host: str, port: int) -> str:  # type: ignore[no-untyped-def]
    """The ready line when the API answers before enrolment and the sweep are done."""
    from workflows.demo import _base, store_location

    where, reset = store_location(url)
    base = _base(host, port)
    return (f"careflow: demo region loaded: {loaded.inhabitants:,} inhabitants ({loaded.resources:,} resources); "
            f"store: {where} (to start afresh: {reset}); FHIR API at {base} (try {base}/Patient?_count=5); "
            "enrolling and sweeping in the background (progress below; a line says when the care plans are ready); "
            "Ctrl-C to stop")


def register(app: typer.Typer) -> None:
    """Add the engine's commands to the ``careflow`` CLI."""
    app.command("demo")(demo_command)
    app.command("enrol")(enrol_command)
    app.command("sweep")(sweep_command)
    app.command("import")(import_command)
    app.command("worker")(worker_command)
