"""Fixtures for the engine's flows: a throwaway Prefect API, small stores, the demo region.

Prefect reads its settings when first imported, so the environment is set here, at collection,
before anything imports prefect: its home (and the embedded results dir) in a temp dir, the
careflow defaults from ``workflows.prefect_env``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="careflow-prefect-home-"))
# removed when the session's process exits, after Prefect's exit handlers (registered later, run first)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = str(_HOME)
os.environ["CAREFLOW_DATA_DIR"] = str(_HOME / "careflow")

from workflows.prefect_env import configure  # noqa: E402

configure()



@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A temporary Prefect API server (SQLite) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def demo_region():
    """A small deterministic region (enough chronic patients for every programme)."""
    from careflow.region.generate import generate_region

    return generate_region(1500, seed=7)
