"""The CLI's progress lines, in a module that does not import Prefect.

``careflow import`` reports progress but runs no flow, so it must not pay for (or hear the warnings
of) importing Prefect; the flows use the same reporter.  :class:`Heartbeat` keeps a long step from
going silent: a newcomer watching ``careflow demo`` should never wonder whether it hangs.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    """One line per step on stderr, flushed at once."""
    sys.stderr.write(f"careflow: {line}\n")
    sys.stderr.flush()


class Heartbeat:
    """A progress reporter that says "still <step> (Ns)" whenever ``every`` seconds pass without a line.

    Wrap the reporter once, name each step with :meth:`step`; the lines of the step itself (one per
    partition, per 10,000 resources) go through :meth:`__call__` and reset the clock.  A daemon thread
    does the waiting, so the work itself is not touched."""

    def __init__(self, progress: Progress, every: float = 5.0) -> None:
        self._progress = progress
        self._every = every
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._step: str | None = None
        self._step_started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="careflow-heartbeat", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._last = time.monotonic()
            self._progress(line)

    def step(self, line: str | None, doing: str | None) -> None:
        """Say ``line`` now (None: nothing); until the next step, a silence says "still <doing>"
        (None: the silence is expected, e.g. the server waiting for requests)."""
        with self._lock:
            self._step, self._step_started = doing, time.monotonic()
        if line is not None:
            self(line)

    def _beat(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                now = time.monotonic()
                if self._step is None or now - self._last < self._every:
                    continue
                self._last = now
                self._progress(f"demo: still {self._step} ({now - self._step_started:.0f}s)")

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._step = None
