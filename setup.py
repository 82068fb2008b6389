"""Build hook: the wheel carries the authors' top-level folders inside the package.

``care_programs/`` and ``fhir_profiles/`` stay at the top of the repository, where authors edit
them and the docs point; everything else is configured in pyproject.toml. The build copies both
into ``careflow/_bundled/`` of the wheel, and ``careflow.bundled.folder`` finds that copy in an
installed careflow (and the checkout's folders in an editable install, which builds nothing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("care_programs", "fhir_profiles", "population_rules", "case_finding", "measures")  # keep in step with careflow.bundled.FOLDERS


class BuildWithBundledFolders(build_py):
    """``build_py`` plus a copy of each bundled folder into ``<build>/careflow/_bundled/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in BUNDLED:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; the wheel must carry it")
            target = Path(self.build_lib) / "careflow" / "_bundled" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildWithBundledFolders})
