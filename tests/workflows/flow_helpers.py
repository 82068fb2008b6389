"""Helpers shared by the engine's tests (importable as ``flow_helpers``: tests/workflows is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_region(url: str, region) -> int:
    """Load ``region`` into the store at ``url``; returns the number of resources."""
    from careflow.store.database import open_repository
    from workflows.loading import load_resources, region_resources

    repo = open_repository(url)
    try:
        return load_resources(repo, region_resources(region)).total
    finally:
        repo.close()


def subprocess_env(api_url: str | None, **extra: str) -> dict[str, str]:
    """Environment for a child careflow process sharing this session's Prefect API (no second server)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_careflow(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "careflow.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def all_resources(url: str, rtype: str, params: list[tuple[str, str]] | None = None) -> list[dict]:
    """Every current resource of ``rtype`` matching ``params`` (paged search through the store port)."""
    from careflow.engine.reading import search_all
    from careflow.store.database import open_repository

    repo = open_repository(url, migrate=False)
    try:
        return [s.resource for s in search_all(repo, rtype, list(params or []))]
    finally:
        repo.close()


def duplicates(resources: list[dict]) -> dict[str, int]:
    """Business identifiers (system|value) held by more than one resource."""
    from collections import Counter

    seen = Counter(f"{i.get('system')}|{i.get('value')}" for r in resources for i in r.get("identifier", []))
    return {k: n for k, n in seen.items() if n > 1}
