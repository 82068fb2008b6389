"""Where the tests find the project's shared data (Synthea bundles, the HL7 Belgium sources).

One variable: ``$CAREFLOW_SHARED``, else ``shared/`` beside the checkout (``../shared``, where CI
lays it). Tests that need a file from it skip, naming the variable and the path they looked in,
instead of checking less. (A module name no other test directory uses: importable as
``careflow_shared`` because tests/ is on sys.path.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("CAREFLOW_SHARED") or Path(__file__).resolve().parents[2] / "shared")
SYNTHEA_DIR = SHARED / "synthea"
HCPARTY_FSH = SHARED / "hl7-be/core/input/fsh/codesystems/HCParty.fsh"


def missing(path: Path) -> str:
    """The skip reason for a shared file or folder that is not there."""
    return f"{path} not found (shared data: set CAREFLOW_SHARED to the shared folder; looked in {SHARED})"


def need(path: Path) -> Path:
    """``path`` if it exists, else skip the calling test with ``missing(path)``."""
    if not path.exists():
        pytest.skip(missing(path))
    return path
