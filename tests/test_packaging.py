"""careflow runs from a normal (non-editable) install: the wheel carries everything read at run time.

The wheel is built from the tracked files only (as a fresh clone would have them), installed into a
new virtual environment, and the commands a newcomer runs first are run from a folder outside the
source tree. The new venv reuses the test venv's installed dependencies through a ``.pth`` file
(fast, and no index needed), so careflow itself comes from the wheel and nothing else; set
``CAREFLOW_WHEEL_TEST_FULL=1`` to install the dependencies from the package index instead, which
also proves that every runtime dependency is declared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("care_programs", "fhir_profiles", "population_rules", "case_finding", "measures")


def _tracked_files() -> list[str]:
    """The files a fresh clone has (git's index plus what is staged or new but not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a clone would carry")
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return [f for f in proc.stdout.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built by pip from a copy of the tracked files."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                           "-w", str(base / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}{proc.stderr}"
    (built,) = (base / "dist").glob("careflow-*.whl")
    return built


def test_the_wheel_carries_every_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _tracked_files()
    wanted = [f for f in tracked if f.split("/", 1)[0] in ("careflow", "workflows") and not f.endswith(".pyc")]
    wanted += [f"careflow/_bundled/{f}" for f in tracked if f.split("/", 1)[0] in BUNDLED]
    missing = sorted(f for f in wanted if f not in names)
    assert not missing, ("the wheel lacks these files (add their pattern to [tool.setuptools.package-data] "
                         "in pyproject.toml):\n" + "\n".join(missing))
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def _fresh_venv(base: Path, wheel: Path) -> Path:
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    if os.environ.get("CAREFLOW_WHEEL_TEST_FULL") == "1":
        proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=1800)
    else:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        # the test venv's dependencies, after the new venv's own site-packages (so the wheel's careflow wins);
        # a path from a .pth file is not itself a site directory, so the editable install's hook stays inert
        Path(site, "test-venv-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
        proc = subprocess.run([*pip, "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"installing the wheel failed:\n{proc.stdout}{proc.stderr}"
    return venv


def _clean_env(base: Path) -> dict[str, str]:
    drop = ("PYTHONPATH", "PREFECT_API_URL", "PREFECT_HOME", "CAREFLOW_PROGRAMS", "CAREFLOW_PROFILES_DIR",
            "CAREFLOW_R4_SCHEMA", "CAREFLOW_DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["CAREFLOW_DATA_DIR"] = str(base / "data")
    env["HOME"] = str(base / "home")
    return env


@pytest.mark.slow
def test_an_installed_wheel_runs_the_demo_and_validates_its_programmes(wheel: Path, tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, wheel)
    careflow = venv / "bin" / "careflow"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(tmp_path)

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import careflow, workflows, careflow.bundled as b; print(careflow.__file__); "
                            "print(workflows.__file__); print(b.folder('care_programs'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert line.startswith(str(venv)), f"imported from outside the new venv: {line}"

    validate = subprocess.run([str(careflow), "programs", "validate"], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.count(": ok") == len(list((ROOT / "care_programs").glob("*.yaml"))), validate.stdout

    # the take-home PDF from the installed copy's own templates and style sheet (WeasyPrint, Pango)
    pdf = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import sys, datetime, careflow.web.pages as p; from careflow.web.i18n import translator; "
                          "from careflow.web.take_home import TakeHome; from careflow.web.take_home_pdf import pdf_of; "
                          "html = p._env.get_template('take_home_pdf.html').render(_=translator('nl'), lang='nl', "
                          "t=TakeHome(name='Maria Claes', national_number=None, goals=['Gewicht stabiel']), "
                          "today=datetime.date(2026, 6, 1)); sys.stdout.buffer.write(pdf_of(html)); print(p.__file__, file=sys.stderr)"],
                         cwd=elsewhere, env=env, capture_output=True, timeout=300)
    assert pdf.returncode == 0, pdf.stderr.decode()
    assert pdf.stdout.startswith(b"%PDF-") and pdf.stderr.decode().startswith(str(venv)), pdf.stderr.decode()

    db = tmp_path / "demo.db"
    demo = subprocess.run([str(careflow), "demo", "--inhabitants", "500", "--no-serve", "--db", f"sqlite:///{db}"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr, demo.stderr
    assert demo.stdout.startswith("careflow: demo region ready: 500 inhabitants"), demo.stdout
    assert db.is_file()

    # the bundled stratification rules, read from outside the source tree (nothing written: --at)
    explain = subprocess.run([str(careflow), "stratify", "--db", f"sqlite:///{db}", "--at", "2026-11-01",
                              "--explain", "pat-000001"], cwd=elsewhere, env=env, capture_output=True, text=True,
                             timeout=300)
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.startswith("Patient/pat-000001: group ") and "rule set 2026.2" in explain.stdout, explain.stdout
