"""The embedded default sends nothing anywhere: every telemetry switch is off, and Prefect writes no
device id into careflow's data folder.

Prefect's client analytics only start in an interactive terminal outside CI, so the check runs a
child process on a pseudo-terminal with every CI marker removed from its environment; the same
child without careflow shows that the check can fail (Prefect does write its device id then).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from careflow.privacy import TELEMETRY_OFF

CI_MARKERS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "CIRCLECI", "BUILDKITE", "TF_BUILD",
              "CODEBUILD_BUILD_ID", "BITBUCKET_COMMIT", "TEAMCITY_VERSION", "DRONE", "SEMAPHORE", "APPVEYOR", "BUDDY",
              "CI_NAME")

REPORT = """
import json, os
from prefect.settings import get_current_settings
from prefect._internal.analytics import is_telemetry_enabled
s = get_current_settings()
print(json.dumps({"client": is_telemetry_enabled(), "server": s.server.analytics_enabled,
                  "cloud": s.cloud.enable_orchestration_telemetry, "resources": s.telemetry.enable_resource_metrics,
                  "otel": os.environ.get("OTEL_SDK_DISABLED"), "home": str(s.home)}))
"""


def _interactive(code: str, home: Path) -> dict[str, object]:
    """Run ``code`` on a pseudo-terminal, as a person at a shell would, outside CI; returns its JSON line."""
    env = {k: v for k, v in os.environ.items()
           if k not in CI_MARKERS and k not in TELEMETRY_OFF and not k.startswith(("PREFECT_", "OTEL_", "CAREFLOW_"))}
    env["CAREFLOW_DATA_DIR"] = str(home / "careflow")
    env["HOME"] = str(home)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-c", code], stdin=terminal, stdout=subprocess.PIPE, stderr=terminal,
                              env=env, cwd=home, timeout=300)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 0
    return dict(json.loads(proc.stdout.decode().strip().splitlines()[-1]))


def test_careflow_turns_every_telemetry_switch_off_and_prefect_writes_no_device_id(tmp_path: Path) -> None:
    report = _interactive("from workflows.prefect_env import configure; configure(); import prefect\n" + REPORT, tmp_path)
    assert report["client"] is False and report["server"] is False
    assert report["cloud"] is False and report["resources"] is False and report["otel"] == "true"
    home = Path(str(report["home"]))
    assert home == tmp_path / "careflow" / "prefect"
    assert not (home / ".sdk_telemetry").exists(), sorted(p.name for p in (home / ".sdk_telemetry").iterdir())
    assert not any(p.name == "device_id" for p in tmp_path.rglob("*"))


def test_importing_careflow_is_enough(tmp_path: Path) -> None:
    """The API server and library users never call configure(): importing careflow sets the switches."""
    report = _interactive("import careflow, prefect\n" + REPORT, tmp_path)
    assert report["client"] is False and report["server"] is False and report["otel"] == "true"
    assert not any(p.name == "device_id" for p in tmp_path.rglob("*"))


def test_without_careflow_prefect_would_write_a_device_id(tmp_path: Path) -> None:
    report = _interactive(f"import os; os.environ['PREFECT_HOME'] = {str(tmp_path / 'plain')!r}; import prefect\n" + REPORT,
                          tmp_path)
    if report["client"] is not True:
        pytest.skip("this Prefect has no client analytics any more: nothing to turn off")
    assert (tmp_path / "plain" / ".sdk_telemetry" / "device_id").is_file()
