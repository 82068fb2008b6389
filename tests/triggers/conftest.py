"""Shared helpers for the pure trigger-rule tests (see ``trigger_state``)."""

from __future__ import annotations

import pytest
from trigger_state import FIXTURE

from careflow.programs.loader import load_program
from careflow.programs.model import Program


@pytest.fixture(scope="session")
def program() -> Program:
    return load_program(FIXTURE)
