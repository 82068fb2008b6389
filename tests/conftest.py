"""Shared fixtures: the programmes and a sample patient, loaded once."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

# encryption at rest needs a master key: one per test session (subprocesses inherit it), never the
# developer's generated key file in the user data directory
os.environ["CAREFLOW_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
os.environ.pop("CAREFLOW_MASTER_KEY_FILE", None)
os.environ.pop("CAREFLOW_ENCRYPTION", None)

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_DIR = ROOT / "care_programs"
FIXTURES = ROOT / "tests" / "programs" / "fixtures"


@pytest.fixture(scope="session")
def mini_hf():
    from careflow.programs.loader import load_program

    return load_program(FIXTURES / "mini-hf.yaml")


@pytest.fixture(scope="session")
def programs():
    """The real programmes of care_programs/."""
    from careflow.programs.loader import load_directory

    return load_directory(PROGRAM_DIR)

