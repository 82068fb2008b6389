"""What a server runs besides answering requests, run by one process only.

Every worker of ``careflow serve --workers N`` starts a :class:`LeaderRunner`; the one that gets the
store's lease (:mod:`careflow.store.leader`) starts the outbox consumer and the Subscription
delivery loop, the others only ask for the lease again every ``interval`` seconds. The holder checks
that it still holds it just as often, and stops its loops when it does not (the database went away
and dropped the lock), so two processes never run them at once, and a crashed holder is replaced
within about ``interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Protocol, Sequence

from careflow.store.leader import BACKGROUND, Lease
from careflow.store.port import Repository

log = logging.getLogger("careflow.engine")


class Service(Protocol):
    def start(self) -> Any: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class LeaderRunner:
    """A daemon thread: take the lease, run ``services`` (made fresh each time it is taken), keep it."""

    def __init__(self, repo: Repository, services: Sequence[Callable[[], Service]], *, name: str = BACKGROUND,
                 interval: float = 2.0) -> None:
        self.repo, self.factories, self.name, self.interval = repo, list(services), name, interval
        self.running: list[Service] = []
        self._lease: Lease | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="careflow-leader", daemon=True)

    @property
    def leading(self) -> bool:
        return self._lease is not None

    def start(self) -> "LeaderRunner":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._step_down()

    def _take(self) -> None:
        lease = self.repo.try_lead(self.name)
        if lease is None:
            return
        self._lease = lease
        self.running = []
        try:
            for make in self.factories:
                service = make()
                service.start()
                self.running.append(service)
        except BaseException:
            self._step_down()
            raise
        log.info("this process runs the background work (lease %s)", self.name)

    def _step_down(self) -> None:
        for service in reversed(self.running):
            service.stop()
        self.running = []
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._lease is None:
                    self._take()
                elif not self._lease.alive():
                    log.warning("lost the background lease %s; stopping its work until it is taken again", self.name)
                    self._step_down()
            except Exception as exc:  # the database is away: ask again on the next tick
                log.info("background lease %s not available (%s)", self.name, type(exc).__name__)
            self._stop.wait(self.interval)
