"""The engine's deployments and their schedules, served by ``careflow worker``.

``prefect.serve`` registers the deployments with whatever Prefect API ``PREFECT_API_URL`` points at
(a ``prefect server start`` in production; without it, a temporary local server that lives as long as
the worker) and runs their scheduled and on-demand runs in subprocesses of the worker.

The database URL is not a deployment parameter: the worker exports it as ``$CAREFLOW_DATABASE_URL``
for its runs, so a password never lands in Prefect's database or UI.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.prefect_env import configure

configure()

from workflows.flows import enrol_region, process_events, sweep_region  # noqa: E402

TIMEZONE = "Europe/Brussels"


@dataclass(frozen=True)
class Schedules:
    """When each flow runs (cron in ``TIMEZONE``; events every ``events_seconds``)."""

    enrol_cron: str = "0 5 * * *"  # new patients are enrolled before the day starts
    sweep_cron: str = "30 5 * * *"  # then the daily follow-up sweep
    events_seconds: int = 60  # new Observations -> trigger Tasks within about a minute


ENROL = "careflow-enrol"
SWEEP = "careflow-sweep"
EVENTS = "careflow-events"


def deployments(schedules: Schedules = Schedules()) -> list:
    """The three deployments (``RunnerDeployment`` objects), not yet registered."""
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    common = dict(tags=["careflow"], entrypoint_type=EntrypointType.MODULE_PATH)  # importable from any cwd
    return [
        enrol_region.to_deployment(name=ENROL, schedules=[Cron(schedules.enrol_cron, timezone=TIMEZONE)],
                                   description="Enrol every eligible patient (idempotent).", **common),
        sweep_region.to_deployment(name=SWEEP, schedules=[Cron(schedules.sweep_cron, timezone=TIMEZONE)],
                                   description="Daily follow-up sweep: open due Tasks, escalate overdue ones.",
                                   **common),
        process_events.to_deployment(name=EVENTS, schedules=[Interval(schedules.events_seconds)],
                                     description="Drain the outbox: Observations -> trigger Tasks.", **common),
    ]


def serve_forever(schedules: Schedules = Schedules(), *, limit: int = 2) -> None:
    """Register the deployments and run their flow runs until interrupted (Ctrl-C / SIGTERM).

    ``pause_on_shutdown=False``: a worker restart (deploy, reboot) must not silently pause the daily
    sweep; ``limit``: at most this many runs at once on this machine.
    """
    from prefect import serve

    serve(*deployments(schedules), pause_on_shutdown=False, limit=limit, print_starting_message=False)
