"""The CLI's progress lines, in a module that does not import Prefect.

``careflow import`` reports progress but runs no flow, so it must not pay for (or hear the warnings
of) importing Prefect; the flows use the same reporter.
"""

from __future__ import annotations

import sys


def stderr_progress(line: str) -> None:
    """One line per step on stderr, flushed at once."""
    sys.stderr.write(f"careflow: {line}\n")
    sys.stderr.flush()
