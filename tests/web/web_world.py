"""The web tests' neighbourhood facts and helpers (the fixtures are in conftest.py)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

START = date(2026, 6, 1)
PID = "pat-web"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # Debian's; Playwright downloads none
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"  # screenshots kept from the run


def owner_of_open(repo: Any, discipline: str) -> str:
    """The PractitionerRole holding the patient's open Tasks of a discipline (the team hands them out)."""
    from careflow.engine.reading import search_all

    owners = [((s.resource or {}).get("owner") or {}).get("reference", "")
              for s in search_all(repo, "Task", [("status", "requested")])]
    for owner in owners:
        if f"role-{discipline}-" in owner:
            return owner
    raise AssertionError(f"no open Task for a {discipline}: {sorted(set(owners))}")


def careteam_member(repo: Any, pid: str, discipline: str) -> str:
    """The PractitionerRole the patient's CareTeam names for a discipline."""
    from careflow.planning import ids

    team = repo.read("CareTeam", ids.careteam_id(pid)).resource or {}
    for p in team.get("participant") or ():
        ref = (p.get("member") or {}).get("reference", "")
        if f"role-{discipline}-" in ref:
            return ref
    raise AssertionError(f"the CareTeam has no {discipline}")


def run_until(world: dict[str, Any], days: int) -> None:
    """Daily sweeps from the start: work nobody does goes overdue and escalates to the care coach."""
    from datetime import datetime, time, timedelta, timezone

    from careflow.engine.sweep import sweep

    for n in range(0, days + 1, 3):
        sweep(world["repo"], world["programs"], datetime.combine(START + timedelta(days=n), time(6), tzinfo=timezone.utc))
