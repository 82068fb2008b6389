"""Shared fixtures: the programmes and a sample patient, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

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

