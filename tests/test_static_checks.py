"""The linter and the type checker, as CI runs them: both must be clean.

Configured in pyproject.toml (``[tool.ruff]``: pyflakes, pycodestyle's errors, import order, bugbear;
``[tool.mypy]``: strict on the pure core). Each failure prints every finding as ``file:line: what``
plus the command to reproduce it, so a merge that brings a new finding is fixed in one look.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: it comes with the test extras (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    proc = _run("ruff", ["check", "--no-cache", "--output-format", "concise", "."])
    assert proc.returncode == 0, (
        f"ruff found problems (reproduce: .venv/bin/ruff check .; many fix with --fix):\n{proc.stdout}{proc.stderr}"
    )


def test_mypy_is_clean_on_the_pure_core() -> None:
    proc = _run("mypy", ["--no-error-summary", "--show-error-codes"])
    findings = "\n".join(line for line in proc.stdout.splitlines() if ": error:" in line or ": note:" in line)
    assert proc.returncode == 0, (
        f"mypy (strict on the pure core; files in [tool.mypy] of pyproject.toml) found problems "
        f"(reproduce: .venv/bin/mypy):\n{findings or proc.stdout}{proc.stderr}"
    )
