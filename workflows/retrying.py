"""When a task run is retried: transient database failures only, with exponential backoff.

A lost connection, a database restarting or a lock timeout is worth another try: the engine's writes
are idempotent (deterministic ids + create-if-absent, If-Match updates), so re-running a partition
after a failure half-way through neither duplicates nor skips work.  A bug or bad data fails the same
way every time, so retrying it only delays the report.
"""

from __future__ import annotations

from typing import Any

from careflow.engine.retry import is_transient

RETRIES = 4
BACKOFF_SECONDS = 2.0  # 2, 4, 8, 16 s: rides out a database restart of half a minute
JITTER = 0.3


def _exception_of(state: Any) -> BaseException | None:
    try:
        value = state.result(raise_on_failure=False)
    except BaseException as exc:  # the state's result could not be read: judge that failure itself
        return exc
    return value if isinstance(value, BaseException) else None


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the run failed on a transient store error."""
    exc = _exception_of(state)
    return exc is not None and is_transient(exc)
