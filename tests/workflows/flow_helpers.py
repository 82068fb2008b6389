"""Helpers shared by the engine's tests (importable as ``flow_helpers``: tests/workflows is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# the careflow this test run imports (editable or installed), never the source tree by accident of the
# working directory: -P keeps the child's cwd off sys.path
CAREFLOW = [PYTHON, "-P", "-m", "careflow.cli"]


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
    env.update(extra)
    return env


def run_careflow(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CAREFLOW, *args], env=env, cwd=ROOT, capture_output=True,
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


def count(url: str, rtype: str) -> int:
    """How many current resources of ``rtype`` the store holds (a count-only search)."""
    from careflow.fhir.search_query import parse_search
    from careflow.store.database import open_repository

    repo = open_repository(url, migrate=False)
    try:
        return int(repo.search(parse_search(rtype, [("_count", "0")])).total or 0)
    finally:
        repo.close()


PLAN_TYPES = ("CarePlan", "Task", "Goal", "CareTeam")


def plan_resource_ids(url: str) -> dict[str, set[str]]:
    """Ids of every planned resource in the store, by type."""
    return {rtype: {r["id"] for r in all_resources(url, rtype)} for rtype in PLAN_TYPES}


def reference_plan_ids(region, start, now=None) -> dict[str, set[str]]:
    """What an uninterrupted engine run produces for ``region`` (in-memory store, no orchestration)."""
    from careflow.engine import enrolment, sweep
    from careflow.programs.loader import load_directory
    from careflow.store.memory import MemoryRepository
    from workflows.loading import load_resources, region_resources

    repo = MemoryRepository()
    programs = load_directory(None)
    load_resources(repo, region_resources(region))
    enrolment.enrol(repo, programs, enrolment.find_candidates(repo, programs), start)
    if now is not None:
        sweep.sweep(repo, programs, now)
    from careflow.engine.reading import search_all

    return {rtype: {s.id for s in search_all(repo, rtype, [])} for rtype in PLAN_TYPES}
