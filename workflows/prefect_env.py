"""Prefect settings careflow needs, applied to the environment BEFORE ``prefect`` is imported.

Prefect reads its settings from the environment when it is first imported, so every module of
``workflows`` that imports prefect calls :func:`configure` first.  Each value is a default
(``setdefault``): whatever the operator exported wins, so production points ``PREFECT_API_URL`` at
its own server and nothing here gets in the way.

Why each default:

* ``PREFECT_HOME`` under careflow's data directory: the embedded mode keeps Prefect's own SQLite
  database next to careflow's instead of in ``~/.prefect``.
* ephemeral mode allowed, with a generous start-up timeout: with no ``PREFECT_API_URL`` Prefect 3
  starts a temporary local API server subprocess for the run (nothing to install or start), and its
  first start (schema migrations) can take well over the 20 s default on a small, busy machine.
* results not persisted by default: Prefect pickles results into its own storage, which must never
  hold health data (our tasks return counts anyway; this is the belt to those braces).
* logging at WARNING: Prefect's INFO chatter stays out of the user's terminal.
* telemetry off (client analytics and its device id, server analytics, Cloud telemetry, resource
  metrics): see ``careflow.privacy``, applied here too.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}


def data_dir() -> Path:
    """careflow's data directory (the embedded SQLite store lives there too)."""
    override = os.environ.get("CAREFLOW_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("careflow"))


def configure(*, quiet_console: bool = False) -> None:
    """Set careflow's Prefect defaults in ``os.environ`` (call before the first ``import prefect``).

    ``quiet_console``: for the CLI, where Prefect's own console log lines (and the tracebacks it logs
    for a failed run) must not reach the user, who gets one line from careflow instead; the
    warnings still go to the Prefect API (visible in its UI) and to ``engine.log`` in the data dir.
    """
    from careflow.privacy import telemetry_off

    telemetry_off()
    home = Path(os.environ.setdefault("PREFECT_HOME", str(data_dir() / "prefect")))
    try:  # Prefect warns (two lines on stderr) when it cannot create its home itself
        home.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # Prefect's own warning then says where and why
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if quiet_console:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def log_to_file() -> Path:
    """Send Prefect's warnings and errors to ``<PREFECT_HOME>/engine.log`` (after prefect is imported)."""
    import logging

    path = Path(os.environ.get("PREFECT_HOME", str(data_dir() / "prefect"))) / "engine.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("prefect")
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in logger.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return path
