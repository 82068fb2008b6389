"""SQLite's one write lock, handed to the threads of a process in the order they asked for it.

SQLite lets one transaction write at a time.  The others wait in its busy handler, which sleeps and
tries again, sleeping longer the longer it has waited (1, 2, 5 ... 100 ms).  So when the lock frees, a
writer that has just arrived (polling every few milliseconds) usually beats one that has waited for
seconds (sleeping 100 ms between tries): under four concurrent 500-entry transaction bundles the
unluckiest bundle waited 7.9 s for work that takes a third of a second (issue #13).

:class:`WriteTurns` is a queue in front of ``BEGIN IMMEDIATE``: a writer takes a turn, waits for the
writers ahead of it and no longer, and the turn passes on when its transaction commits or rolls back.
It holds nothing SQLite does not already serialise, so it costs no throughput.  Writers in other
processes (a CLI command next to ``careflow serve``) still meet SQLite's busy handler; a turn not
given within the busy timeout is given up, and the writer then waits in SQLite as before, so a leaked
turn can delay writers but never stop them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Hashable


class WriteTurns:
    """A first-come, first-served turn per holder (the holder is the DBAPI connection)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._holder: Hashable | None = None
        self._waiting: deque[Hashable] = deque()
        self.given = 0  # turns handed out (tests read it)
        self.timed_out = 0

    def acquire(self, holder: Hashable) -> bool:
        """Wait for ``holder``'s turn; False when it did not come within ``timeout`` (then SQLite's
        own busy handler decides, as without the queue)."""
        with self._cond:
            if self._holder is holder:
                return True
            if self._holder is None and not self._waiting:
                self._holder = holder
                self.given += 1
                return True
            self._waiting.append(holder)
            deadline = time.monotonic() + self.timeout
            while self._holder is not holder:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._waiting.remove(holder)
                    self.timed_out += 1
                    return False
                self._cond.wait(remaining)
            self.given += 1
            return True

    def release(self, holder: Hashable) -> None:
        """End ``holder``'s turn (no-op when it holds none): the longest waiter goes next."""
        with self._cond:
            if self._holder is not holder:
                return
            self._holder = self._waiting.popleft() if self._waiting else None
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)
