"""careflow's Prefect flows: enrol a region, sweep it for due follow-up work, process the outbox.

Orchestration only; the work itself is ``careflow.engine`` (plain Python over the store port).
Shape of every flow: find the ids to work on, cut them into a few partitions (stable hash), submit
ONE task run per partition (thousands of patients each, never a task per patient: Prefect's
per-task-run overhead would dominate), gather the counts.

What Prefect sees and keeps: flow parameters (a database URL, or None to read
``$CAREFLOW_DATABASE_URL`` on the worker, so passwords need not be stored), partition ids and
counts.  Results are never persisted (``persist_result=False``) and never cached
(``cache_policy=NONE``): nothing about a patient lands in Prefect's storage.  The sweep's artifact
carries counts and the escalations' resource ids, roles, programmes and neighbourhoods only.

Crash safety comes from the engine's idempotence (deterministic ids, create-if-absent, If-Match), so
a run killed half-way is finished by simply running it again; transient database failures are
retried with exponential backoff (see ``retrying``).
"""

from __future__ import annotations

from workflows.prefect_env import configure

configure()

import time  # noqa: E402
from datetime import date, datetime, timezone  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from careflow.engine import enrolment, events, sweep  # noqa: E402
from careflow.engine.counts import Counts  # noqa: E402
from workflows import retrying  # noqa: E402
from workflows.progress import stderr_progress  # noqa: E402, F401 - re-exported for the CLI
from workflows.resources import programs, repository  # noqa: E402

DEFAULT_PARTITIONS = 8
MAX_WORKERS = 3  # a thread per core plus one waiting on the database; more only contends on SQLite
EVENT_BATCH = 500

Progress = Callable[[str], None]
_progress: Progress | None = None


def set_progress(reporter: Progress | None) -> None:
    """Install a callable that receives one short line per finished partition (the CLI prints them)."""
    global _progress
    _progress = reporter


def _report(line: str) -> None:
    if _progress is not None:
        _progress(line)


_TASK_OPTIONS: dict[str, Any] = dict(
    persist_result=False,
    cache_policy=NONE,
    retries=retrying.RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=retrying.BACKOFF_SECONDS),
    retry_jitter_factor=retrying.JITTER,
    retry_condition_fn=retrying.transient_failure,
)


RUNNER_ENV = "CAREFLOW_TASK_RUNNER"


def task_runner(spec: str | None = None) -> Any:
    """The task runner a spec names (default ``$CAREFLOW_TASK_RUNNER``, else ``threads``):

    * ``threads`` / ``threads:6``: a thread pool in this process (default 3 workers);
    * ``dask`` / ``dask:4``: a temporary Dask ``LocalCluster`` of worker *processes* (one per core,
      or 4), one thread each, so partitions run on every core instead of sharing one interpreter;
    * ``dask:tcp://scheduler:8786``: an existing Dask cluster (its workers need careflow installed
      and ``$CAREFLOW_DATABASE_URL``);
    * ``ray`` / ``ray:ray://head:10001``: ``prefect_ray.RayTaskRunner``.

    Dask comes with the ``careflow[dask]`` extra, Ray with ``pip install prefect-ray``; a task needs
    only the database URL and ids, so partitions run on any machine that can reach the database."""
    import os

    from careflow.errors import EngineError

    chosen = spec or os.environ.get(RUNNER_ENV) or "threads"
    kind, _, where = chosen.partition(":")
    if kind == "threads":
        if where and not where.isdigit():
            raise EngineError(f"task runner {chosen!r}: threads takes a number of workers, like threads:4")
        return ThreadPoolTaskRunner(max_workers=int(where) if where else MAX_WORKERS)
    try:
        if kind == "dask":
            from prefect_dask import DaskTaskRunner

            if where and not where.isdigit():
                return DaskTaskRunner(address=where)
            workers = int(where) if where else max(1, os.cpu_count() or 1)
            # processes, not threads: the engine is Python, and one interpreter runs one thread at a time;
            # no dashboard (it would take a port and wants bokeh)
            return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                                  "dashboard_address": None})
        if kind == "ray":
            from prefect_ray import RayTaskRunner

            return RayTaskRunner(address=where) if where else RayTaskRunner()
    except ImportError:
        hint = "pip install 'careflow[dask]'" if kind == "dask" else f"pip install prefect-{kind}"
        raise EngineError(f"task runner {kind} needs the prefect-{kind} package: {hint}") from None
    raise EngineError(f"task runner must be threads, dask or ray (optionally :workers or :address), not {chosen!r}")


def _runner() -> Any:
    """The flows' default task runner: ``$CAREFLOW_TASK_RUNNER`` as the process starts (see task_runner)."""
    return task_runner(None)


def with_runner(flow_: Any, spec: str | None) -> Any:
    """``flow_`` with the task runner ``spec`` names (``--runner``), or as it is when ``spec`` is None."""
    return flow_ if not spec else flow_.with_options(task_runner=task_runner(spec))


# --- run names: what the run does and on which partition, instead of Prefect's random names -----


def _parameters(runtime: str) -> dict[str, Any]:
    from prefect import runtime as prefect_runtime

    return dict(getattr(prefect_runtime, runtime).parameters or {})


def _partition_name(work: str) -> Callable[[], str]:
    def name() -> str:
        index = _parameters("task_run").get("index")
        return f"{work}-partition-{index + 1}" if isinstance(index, int) else f"{work}-partition"

    return name


def _enrol_run_name() -> str:
    start = _parameters("flow_run").get("start")
    return f"enrol-{start or datetime.now(timezone.utc).date()}"


def _sweep_run_name() -> str:
    now = _parameters("flow_run").get("now")
    moment = now if isinstance(now, datetime) else datetime.now(timezone.utc)
    return f"sweep-{moment.isoformat(timespec='minutes')}"


def _events_run_name() -> str:
    return f"events-{datetime.now(timezone.utc).isoformat(timespec='seconds')}"


# --- tasks: ids in, counts out ------------------------------------------------------------------


@task(name="find-candidates", task_run_name="find-candidates", **_TASK_OPTIONS)
def find_candidates(db_url: str | None, partitions: int) -> list[list[str]]:
    """Patient ids that may qualify for a programme, cut into ``partitions`` stable-hash slices."""
    ids = enrolment.find_candidates(repository(db_url), programs())
    return enrolment.partition(ids, partitions)


@task(name="enrol-partition", task_run_name=_partition_name("enrol"), **_TASK_OPTIONS)
def enrol_partition(db_url: str | None, index: int, patient_ids: Sequence[str], start: date,
                    mode: str = "active", batch_size: int = enrolment.BATCH_SIZE) -> Counts:
    """Enrol one partition (thousands of patients, in the engine's batched units of work)."""
    return enrolment.enrol(repository(db_url), programs(), patient_ids, start, mode=mode, batch_size=batch_size)


@task(name="find-plans", task_run_name="find-plans", **_TASK_OPTIONS)
def find_plans(db_url: str | None, partitions: int, now: datetime) -> list[list[str]]:
    """Ids of the patients the due-date index says may have work on ``now``'s day, cut into
    ``partitions`` stable-hash slices."""
    ids = sweep.due_patients(repository(db_url), programs(), now)
    return enrolment.partition(ids, partitions)


@task(name="sweep-partition", task_run_name=_partition_name("sweep"), **_TASK_OPTIONS)
def sweep_partition(db_url: str | None, index: int, patient_ids: Sequence[str], now: datetime) -> Counts:
    """Open, escalate and close the due work of one partition's care plans."""
    return sweep.sweep(repository(db_url), programs(), now, patient_ids)


@task(name="process-event-batch", task_run_name="process-event-batch", **_TASK_OPTIONS)
def process_event_batch(db_url: str | None, now: datetime, limit: int) -> Counts:
    """Claim and handle up to ``limit`` outbox events (claims are leased, so a crash re-offers them)."""
    repo = repository(db_url)
    events.install(repo)
    return events.process_events(repo, programs(), now, limit)


@task(name="deliver-subscriptions", task_run_name="deliver-subscriptions", **_TASK_OPTIONS)
def deliver_subscriptions(db_url: str | None, now: datetime) -> dict[str, int]:
    """One Subscription round: number the outbox's Task and CarePlan changes per Subscription, then
    send what is due (handshakes, events, heartbeats, retries); careflow.engine.subscriptions."""
    from dataclasses import asdict

    from careflow.engine.subscriptions import process_subscriptions

    return asdict(process_subscriptions(repository(db_url), now))


def _gather(futures: list[Any], what: str, sizes: dict[Any, int]) -> Counts:
    """Wait for every partition; report each as it finishes; re-raise the first failure at the end."""
    total = Counts.combine([])
    done = 0
    started = time.monotonic()
    first_error: Exception | None = None
    for future in as_completed(futures):
        try:
            part = future.result()
        except Exception as exc:  # keep the other partitions' work; report the failure after
            first_error = first_error or exc
            continue
        total.merge(part)
        done += 1
        _report(f"{what}: partition {done}/{len(futures)} done ({sizes.get(future, 0):,} patients, "
                f"{time.monotonic() - started:.1f}s)")
    if first_error is not None:
        raise first_error
    return total


# --- flows ----------------------------------------------------------------------------------------


@flow(name="enrol-region", flow_run_name=_enrol_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def enrol_region(db_url: str | None = None, start: date | None = None,
                 partitions: int = DEFAULT_PARTITIONS, mode: str = "active",
                 batch_size: int = enrolment.BATCH_SIZE) -> dict[str, Any]:
    """Enrol every eligible patient of the store in every programme they qualify for, and write an
    ``enrol-summary`` artifact (counts per programme and neighbourhood). ``mode`` ``proposals``
    proposes each patient to their GP for inclusion instead (``careflow.planning.inclusion``).
    ``batch_size`` is the number of patients per transaction: smaller batches hold SQLite's single
    writer lock for less time (the API's writes wait less), larger ones commit less often.

    Re-running it is safe and cheap: already-enrolled patients are counted, not duplicated.
    """
    from workflows.artifacts import publish_enrolment_summary

    day = start or datetime.now(timezone.utc).date()
    slices = find_candidates(db_url, max(1, partitions))
    _report(f"enrol: {sum(map(len, slices)):,} candidate patients in {len(slices)} partitions")
    futures = []
    sizes: dict[Any, int] = {}
    for index, ids in enumerate(slices):
        if ids:
            future = enrol_partition.submit(db_url, index, ids, day, mode, batch_size)
            futures.append(future)
            sizes[future] = len(ids)
    counts = _gather(futures, "enrol", sizes)
    repository(db_url).refresh_statistics()  # thousands of new plans and Tasks: plan searches for them
    repository(db_url).checkpoint()  # and their journal folded into the store (SQLite's WAL)
    publish_enrolment_summary(counts, day)
    return counts.as_dict()


@flow(name="sweep-region", flow_run_name=_sweep_run_name, task_runner=_runner(), persist_result=False, log_prints=False)
def sweep_region(db_url: str | None = None, now: datetime | None = None,
                 partitions: int = DEFAULT_PARTITIONS) -> dict[str, Any]:
    """The follow-up sweep: open Tasks whose window has come, escalate overdue ones, close finished
    plans.  Writes a ``sweep-summary`` artifact (counts per programme and neighbourhood, the
    escalations by id) for whoever watches the Prefect UI."""
    from workflows.artifacts import publish_sweep_summary

    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    slices = find_plans(db_url, max(1, partitions), moment)
    _report(f"sweep: {sum(map(len, slices)):,} patients with work due in {len(slices)} partitions")
    futures = []
    sizes: dict[Any, int] = {}
    for index, ids in enumerate(slices):
        if ids:
            future = sweep_partition.submit(db_url, index, ids, moment)
            futures.append(future)
            sizes[future] = len(ids)
    counts = _gather(futures, "sweep", sizes)
    repository(db_url).checkpoint()
    publish_sweep_summary(counts, moment)
    return counts.as_dict()


@flow(name="process-events", flow_run_name=_events_run_name, task_runner=_runner(), persist_result=False,
      log_prints=False)
def process_events(db_url: str | None = None, max_batches: int = 20) -> dict[str, Any]:
    """Drain the outbox (new Observations -> trigger Tasks), a batch per task run, until it is empty
    or ``max_batches`` ran (the next scheduled run picks up the rest)."""
    now = datetime.now(timezone.utc)
    total = Counts.combine([])
    for _ in range(max(1, max_batches)):
        part = process_event_batch(db_url, now, EVENT_BATCH)
        total.merge(part)
        if part.total.get("events", 0) < EVENT_BATCH:
            break
    out = total.as_dict()
    out["subscriptions"] = deliver_subscriptions(db_url, now)
    return out


