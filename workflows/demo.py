"""``careflow demo``: a whole demo region in the store, enrolled and swept, then the FHIR API.

Every step is idempotent, so running the demo again on the same database (after Ctrl-C, or to see it
once more) completes what is missing and duplicates nothing: the region generator is deterministic
(same seed, same ids), loading uses create-if-absent, enrolment and sweep are the engine's idempotent
flows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

Progress = Callable[[str], None]


@dataclass
class DemoResult:
    """Counts the closing line reports (ids and counts only)."""

    inhabitants: int
    resources_loaded: int
    enrolment: dict[str, Any]
    sweep: dict[str, Any]
    seconds: float
    care_plans: int = 0  # the programmes' plans in the store (a rerun's sweep finds none due: it cannot count them)


def _count(result: dict[str, Any], key: str) -> int:
    total = result.get("total", result)
    value = total.get(key, 0) if isinstance(total, dict) else 0
    return int(value or 0)


@dataclass
class Loaded:
    """The region in the store, and the Prefect server starting meanwhile."""

    inhabitants: int
    resources: int
    started: float
    prefect_server: Any


def load_region(db_url: str | None, inhabitants: int, seed: int, progress: Progress) -> Loaded:
    """Generate the region and load it (create-if-absent), the temporary Prefect server starting meanwhile."""
    from careflow.region.generate import generate_region
    from workflows import running
    from workflows.loading import load_resources, region_resources
    from workflows.resources import repository

    started = time.monotonic()
    prefect_server = running.start_temporary_prefect_server(progress)  # starts while the region loads
    _step(progress, f"demo: generating the demo region ({inhabitants:,} inhabitants)", "generating the region")
    region = generate_region(inhabitants, seed, reference_date=date.today())
    _step(progress, "demo: opening the store (the first time: creating its tables and keys)", "opening the store")
    repo = repository(db_url)
    _step(progress, f"demo: loading {region.name} into the store", "loading the region")
    loaded = load_resources(repo, region_resources(region), what="load", progress=progress)
    progress(f"load: {loaded.total:,} resources ({loaded.created:,} new) in {time.monotonic() - started:.0f}s")
    return Loaded(inhabitants, loaded.total, started, prefect_server)


def run_engine(loaded: Loaded, progress: Progress, partitions: int = 8) -> DemoResult:
    """Enrol everyone eligible and sweep once (Prefect flows), after the Prefect server answers."""
    from workflows import flows, running

    today = date.today()
    _step(progress, "demo: waiting for the temporary Prefect server", None)
    loaded.prefect_server.wait()
    _step(progress, "demo: enrolling every eligible patient", "enrolling")
    enrolment = running.run(flows.enrol_region, db_url=None, start=today, partitions=partitions)
    _step(progress, "demo: sweeping the care plans once (the daily follow-up)", "sweeping")
    sweep = running.run(flows.sweep_region, db_url=None, now=datetime.now(timezone.utc), partitions=partitions)
    _step(progress, "demo: enrolment and sweep done", None)
    return DemoResult(loaded.inhabitants, loaded.resources, enrolment, sweep, time.monotonic() - loaded.started,
                      _care_plans())


def _care_plans() -> int:
    """One count: the programme parts of the shared plans (those that instantiate a PlanDefinition)."""
    from careflow.access.principal import SYSTEM
    from careflow.fhir.search_query import parse_search
    from workflows.resources import repository

    query = parse_search("CarePlan", [("instantiates-canonical:missing", "false"), ("_summary", "count")], strict=True)
    with repository(None).unit_of_work(SYSTEM) as uow:
        return int(uow.search(query).total or 0)


def build_demo(db_url: str | None, inhabitants: int, seed: int, progress: Progress,
               partitions: int = 8) -> DemoResult:
    """Generate and load the region, enrol everyone eligible, sweep once."""
    return run_engine(load_region(db_url, inhabitants, seed, progress), progress, partitions)


def _step(progress: Progress, line: str, doing: str | None) -> None:
    """A step's first line; with a :class:`workflows.progress.Heartbeat`, silences in it are filled."""
    step = getattr(progress, "step", None)
    if step is not None:
        step(line, doing)
    else:
        progress(line)


def store_location(url: str) -> tuple[str, str]:
    """Where the store lives, and how to start afresh, in words (no password)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}", "careflow demo --reset"
    shown = parsed.render_as_string(hide_password=True)
    return f"PostgreSQL {shown}", f"drop and re-create database {parsed.database!r}"


def reset_store(url: str, progress: Progress) -> None:
    """Delete the SQLite store (and its WAL and shared-memory files) so the demo starts afresh."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from careflow.errors import EngineError

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise EngineError("--reset deletes an SQLite file only; for PostgreSQL drop and re-create the database yourself")
    removed = 0
    for suffix in ("", "-wal", "-shm"):
        path = Path(parsed.database + suffix)
        if path.exists():
            path.unlink()
            removed += 1
    progress(f"demo: reset: {'deleted ' + parsed.database if removed else 'no store yet at ' + parsed.database}")


def summary(result: DemoResult, url: str, host: str | None, port: int | None) -> dict[str, Any]:
    """The ready line's facts as data (``--json``)."""
    where, reset = store_location(url)
    out: dict[str, Any] = {
        "inhabitants": result.inhabitants, "resources_loaded": result.resources_loaded,
        "enrolled": _count(result.enrolment, "enrolled") + _count(result.enrolment, "already-enrolled"),
        "care_plans": result.care_plans, "seconds": round(result.seconds, 1),
        "store": where, "reset": reset, "enrolment": result.enrolment.get("total", {}),
        "sweep": result.sweep.get("total", {}),
    }
    if host is not None and port is not None:
        out["fhir_base"] = _base(host, port)
    return out


def _base(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/fhir"


def ready_line(result: DemoResult, url: str, host: str | None, port: int | None) -> str:
    """The one line that tells the user what they have, where it is kept and where to look."""
    enrolled = _count(result.enrolment, "enrolled") + _count(result.enrolment, "already-enrolled")
    plans = result.care_plans
    where, reset = store_location(url)
    line = (f"careflow: demo region ready: {result.inhabitants:,} inhabitants, {enrolled:,} patients enrolled "
            f"in {plans:,} care plans, swept ({result.seconds:.0f}s); store: {where} (to start afresh: {reset})")
    if host is None or port is None:
        return line
    base = _base(host, port)
    return f"{line}; FHIR API at {base} (try {base}/CarePlan?_count=5); Ctrl-C to stop"
