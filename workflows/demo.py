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


def _count(result: dict[str, Any], key: str) -> int:
    total = result.get("total", result)
    value = total.get(key, 0) if isinstance(total, dict) else 0
    return int(value or 0)


def build_demo(db_url: str | None, inhabitants: int, seed: int, progress: Progress,
               partitions: int = 8) -> DemoResult:
    """Generate and load the region, enrol everyone eligible, sweep once."""
    from careflow.region.generate import generate_region
    from workflows import flows, running
    from workflows.loading import load_resources, region_resources
    from workflows.resources import repository

    started = time.monotonic()
    today = date.today()
    region = generate_region(inhabitants, seed, reference_date=today)
    progress(f"demo: generating and loading {region.name} ({inhabitants:,} inhabitants) into the store")
    loaded = load_resources(repository(db_url), region_resources(region), what="load", progress=progress)
    progress(f"load: {loaded.total:,} resources ({loaded.created:,} new) in {time.monotonic() - started:.0f}s")
    enrolment = running.run(flows.enrol_region, db_url=None, start=today, partitions=partitions)
    sweep = running.run(flows.sweep_region, db_url=None, now=datetime.now(timezone.utc), partitions=partitions)
    return DemoResult(inhabitants, loaded.total, enrolment, sweep, time.monotonic() - started)


def ready_line(result: DemoResult, host: str | None, port: int | None) -> str:
    """The one line that tells the user what they have and where to look."""
    enrolled = _count(result.enrolment, "enrolled") + _count(result.enrolment, "already-enrolled")
    plans = _count(result.sweep, "plans")
    line = (f"careflow: demo region ready: {result.inhabitants:,} inhabitants, {enrolled:,} patients enrolled "
            f"in {plans:,} care plans, swept ({result.seconds:.0f}s)")
    if host is None or port is None:
        return line
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base = f"http://{shown}:{port}/fhir"
    return f"{line}; FHIR API at {base} (try {base}/CarePlan?_count=5); Ctrl-C to stop"
