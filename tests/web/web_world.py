"""The web tests' neighbourhood facts and helpers (the fixtures are in conftest.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

START = date(2026, 6, 1)
PID = "pat-web"


def owner_of_open(repo: Any, discipline: str) -> str:
    """The PractitionerRole holding the patient's open Tasks of a discipline (the team hands them out)."""
    from careflow.engine.reading import search_all

    owners = [((s.resource or {}).get("owner") or {}).get("reference", "")
              for s in search_all(repo, "Task", [("status", "requested")])]
    for owner in owners:
        if f"role-{discipline}-" in owner:
            return owner
    raise AssertionError(f"no open Task for a {discipline}: {sorted(set(owners))}")
