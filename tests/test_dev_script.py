"""``./dev``, the newcomer's first command: it says what it is doing before its long quiet steps."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a stand-in interpreter: "python -m venv DIR" makes DIR/bin/python (which only reports its pip calls)
# and DIR/bin/careflow, so the script runs end to end without installing anything
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/usr/bin/env bash\\necho "fake pip: $*" >&2\\n' > "$3/bin/python"
  printf '#!/usr/bin/env bash\\necho "fake careflow: $*" >&2\\n' > "$3/bin/careflow"
  chmod +x "$3/bin/python" "$3/bin/careflow"
fi
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_first_setup_says_it_installs_before_pip_goes_quiet(tmp_path: Path) -> None:
    for name in ("dev", "pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    _executable(tmp_path / "python", FAKE_PYTHON)
    env = {**os.environ, "PYTHON": str(tmp_path / "python")}
    first = subprocess.run(["bash", str(tmp_path / "dev"), "programs", "show", "copd"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    said = next(i for i, line in enumerate(lines) if line.startswith("dev: installing careflow"))
    assert said < next(i for i, line in enumerate(lines) if line.startswith("fake pip:"))
    assert lines[-1] == "fake careflow: programs show copd"
    again = subprocess.run(["bash", str(tmp_path / "dev"), "programs", "show", "copd"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.stderr.splitlines() == ["fake careflow: programs show copd"]  # installed: nothing to say
