"""Where careflow finds the folders its authors keep at the top of the repository.

``care_programs/`` (the programmes) and ``fhir_profiles/`` (the StructureDefinitions) live beside
the package in a checkout, where authors edit them and the docs point. A wheel cannot carry
folders outside its packages, so the build copies them into ``careflow/_bundled/`` (``setup.py``).
This module picks whichever copy exists: the wheel's when careflow is installed, the checkout's
when it runs from the source tree (an editable install or a plain ``PYTHONPATH``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
FOLDERS = ("care_programs", "fhir_profiles", "population_rules", "case_finding", "measures")


def folder(name: str) -> Path:
    """``careflow/_bundled/<name>`` of an installed wheel, else ``<checkout>/<name>``."""
    if name not in FOLDERS:
        raise ValueError(f"{name!r} is not one of the bundled folders {FOLDERS}")
    installed = _PACKAGE / "_bundled" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
