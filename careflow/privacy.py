"""careflow sends nothing anywhere: every telemetry switch of its dependencies is off by default.

A health-data tool must not phone home, not even "anonymous usage data". What the dependencies
would otherwise do, and the switch that stops it:

* Prefect's client SDK analytics: on a first interactive import it prints a notice, writes a
  device id into ``$PREFECT_HOME/.sdk_telemetry`` (careflow's data folder) and sends usage events
  to an analytics service. ``DO_NOT_TRACK=1`` turns all of it off.
* Prefect's server analytics (a heartbeat from the temporary local server):
  ``PREFECT_SERVER_ANALYTICS_ENABLED=false``.
* Prefect's orchestration telemetry to Prefect Cloud, and the resource metrics its flow-run
  subprocesses collect: ``PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY=false``,
  ``PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS=false``.
* OpenTelemetry, through which FastAPI's built-in telemetry (request spans, metrics, and logs of
  validation failures with their messages) and Prefect would export wherever ``OTEL_*`` points:
  ``OTEL_SDK_DISABLED=true``.

uvicorn, SQLAlchemy, httpx and the test tools (hypothesis, schemathesis 4) send nothing.

Each is a default (``setdefault``): an operator who wants OpenTelemetry export for their own
collector sets ``OTEL_SDK_DISABLED=false`` (and the ``OTEL_*`` endpoint). Applied when ``careflow``
is imported, which is before anything imports Prefect or FastAPI.
"""

from __future__ import annotations

import os

TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "OTEL_SDK_DISABLED": "true",
}


def telemetry_off() -> None:
    """Set every switch of ``TELEMETRY_OFF`` in ``os.environ`` unless the operator set it already."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
