"""What a task run needs besides its ids: the store and the programmes, opened once per process.

Task runs receive only a database URL and ids (never patient data), so each worker process opens the
store itself; caching per URL keeps the threads of a ThreadPoolTaskRunner on one connection pool and
runs the schema migration check once instead of once per partition.
"""

from __future__ import annotations

import threading
from typing import Mapping

from careflow.programs.model import Program
from careflow.store.database import open_repository, resolve_url
from careflow.store.port import Repository

_lock = threading.Lock()
_repositories: dict[str, Repository] = {}
_programs: dict[str, Program] | None = None


def repository(db_url: str | None) -> Repository:
    """The store at ``db_url`` (None: $CAREFLOW_DATABASE_URL or the embedded default), opened once,
    with the Subscription feed installed: every Task and CarePlan the worker writes reaches
    Subscriptions in its own transaction (careflow.engine.feed)."""
    from careflow.engine import feed

    url = resolve_url(db_url)
    with _lock:
        repo = _repositories.get(url)
        if repo is None:
            repo = _repositories[url] = open_repository(url)
            feed.install(repo)
        return repo


def programs() -> Mapping[str, Program]:
    """The care programmes (``$CAREFLOW_PROGRAMS`` or the bundled care_programs/), loaded once."""
    global _programs
    with _lock:
        if _programs is None:
            from careflow.programs.loader import load_directory

            _programs = load_directory(None)
        return _programs


def close_all() -> None:
    """Dispose every cached store (tests, and before a process hands its files to another)."""
    with _lock:
        for repo in _repositories.values():
            repo.close()
        _repositories.clear()
