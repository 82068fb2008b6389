"""The quality-indicator flow: refresh every indicator set for one period, ONE task run per set.

Each task computes its set set-wise in the database (``careflow.engine.measures``: one query per
indicator, only the patients whose records changed since the last run), stores the Measures and the
summary MeasureReports that changed, and returns counts only: nothing about a patient reaches
Prefect (parameters are a URL, a period, a day and a folder).
"""

from __future__ import annotations

from workflows.prefect_env import configure

configure()

from datetime import date, datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402

from careflow.engine import measures as engine  # noqa: E402
from careflow.measures.loader import default_measures_dir, load_measure_sets  # noqa: E402
from careflow.measures.model import measures_of  # noqa: E402
from careflow.measures.period import parse_period  # noqa: E402
from careflow.measures.rows import Summary  # noqa: E402
from workflows.flows import _TASK_OPTIONS, _report, _runner  # noqa: E402
from workflows.resources import repository  # noqa: E402


def figures(s: Summary) -> dict[str, Any]:
    t = s.total
    return {"initial-population": t.initial, "denominator": t.denominator, "denominator-exclusion": t.exclusion,
            "numerator": t.numerator, "score": None if t.score is None else round(t.score, 6)}


def _run_name() -> str:
    from prefect import runtime

    period = (runtime.flow_run.parameters or {}).get("period")
    return f"measures-{period or 'current'}"


@task(name="refresh-indicator-set", task_run_name="measures-{set_id}", **_TASK_OPTIONS)
def refresh_set(db_url: str | None, set_id: str, folder: str | None, period: str, today: date) -> dict[str, Any]:
    sets = [s for s in load_measure_sets([Path(folder) if folder else default_measures_dir()]) if s.id == set_id]
    done = engine.refresh(repository(db_url), measures_of(sets), parse_period(period), today)
    return {"set": set_id, "recomputed-patients": done.recomputed_patients, "full": done.full,
            "reports-written": done.reports_written, "measures-written": done.measures_written,
            "measures": {mid: figures(s) for mid, s in done.summaries.items()}}


@flow(name="measures-region", flow_run_name=_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def measures_region(db_url: str | None = None, period: str | None = None, today: date | None = None,
                    folder: str | None = None) -> dict[str, Any]:
    """Refresh every indicator set over ``period`` (YYYY or YYYY-MM; default the current month)."""
    day = today or datetime.now(timezone.utc).date()
    label = parse_period(period or f"{day.year:04d}-{day.month:02d}").label
    sets = load_measure_sets([Path(folder) if folder else default_measures_dir()])
    _report(f"measures: {len(sets)} indicator sets over {label}")
    futures = [refresh_set.submit(db_url, s.id, folder, label, day) for s in sets]
    results = [f.result() for f in futures]
    closed = parse_period(label).closed(day)
    return {"period": label, "status": "complete" if closed else "pending", "sets": results,
            "measures": {mid: fig for r in results for mid, fig in r["measures"].items()},
            "recomputed-patients": max((r["recomputed-patients"] for r in results), default=0),
            "reports-written": sum(r["reports-written"] for r in results)}
