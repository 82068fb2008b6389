"""Drain the outbox continuously inside a server process, so trigger Tasks appear within seconds.

The API writes each new Observation and each Task status change together with an outbox event
(``events.install``); this loop applies the programme rules to them. It is plain Python on a
thread, not a Prefect flow: one event is too small a unit for an orchestrator, and the scheduled
``careflow-events`` deployment of ``careflow worker`` drains the same outbox in production. Both
may run at once: claims are exclusive and every rule's write is idempotent.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable, Mapping

from careflow.engine.events import install, process_events
from careflow.engine.retry import is_transient
from careflow.programs.model import Program
from careflow.store.port import Repository

log = logging.getLogger("careflow.engine")


class EventConsumer:
    """A daemon thread that claims outbox events every ``interval`` seconds until ``stop()``."""

    def __init__(self, repo: Repository, programs: Mapping[str, Program], *, interval: float = 1.0,
                 batch: int = 200, now: Callable[[], datetime] | None = None) -> None:
        self.repo, self.programs, self.interval, self.batch = repo, programs, interval, batch
        self.now = now or (lambda: datetime.now(timezone.utc))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="careflow-events", daemon=True)
        self.processed = 0
        install(repo)

    def start(self) -> "EventConsumer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def drain_once(self) -> int:
        """Process what is waiting now (until a short batch); returns how many events were handled."""
        handled = 0
        while not self._stop.is_set():
            n = process_events(self.repo, self.programs, self.now(), self.batch).total["events"]
            handled += n
            if n < self.batch:
                break
        self.processed += handled
        return handled

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception as exc:  # keep serving: a failing batch is retried on the next tick
                # the kind only: a database error's text can quote the row it failed on (health data)
                level = logging.INFO if is_transient(exc) else logging.ERROR
                log.log(level, "outbox processing failed (%s); retrying", type(exc).__name__)
            self._stop.wait(self.interval)
