"""One shared care plan per patient, and each activity several programmes ask for done once.

A patient in the COPD, heart-failure and diabetes programmes has one shared CarePlan (the Shared
Care Planning model); each programme's CarePlan is a *part* of it (``partOf``), so what a programme
asks for stays identifiable while the team and the patient see one plan.

Activities that carry the same ``shared`` key (the flu vaccination, the care-planning conversation,
the medication review, case management) are one piece of work. Among the patient's active parts
whose activity applies, the programme with the *tightest* timing leads the key: only it opens that
activity's Tasks, on its own schedule, and each Task is based on every part that needs it. The
others open none of their own. Tightest means: recurring before one-off, then the shortest
recurrence, then the earliest first window, then the shortest time to do it, then the programme
id (so the choice is stable). When the leader leaves (its part ends), the next tightest takes over
and opens a Task only for a window no shared Task covers yet, so nothing is done twice and nothing
the remaining programmes need is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Mapping

from careflow.naming import EXT_SHARED_ACTIVITY, PROFILE_SHARED_CAREPLAN, SHARED_CAREPLAN_IDENTIFIER
from careflow.planning.only_if import restriction_holds
from careflow.planning.patient import PatientContext
from careflow.programs.durations import parse_duration
from careflow.programs.model import Activity, Program

SEASON_DAYS = 365.0  # a seasonal activity recurs once a season
CONVERSATION_KEY = "care-plan-conversation"  # the care-planning conversation that opens a drafted plan


@dataclass(frozen=True)
class Part:
    """One programme's CarePlan in a patient's shared plan."""

    program: Program
    careplan_id: str
    start: date


@dataclass(frozen=True)
class Sharing:
    """Who leads each shared key for one patient, and which parts each key serves."""

    leader: Mapping[str, str] = field(default_factory=dict)  # shared key -> leading programme id
    parts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # shared key -> CarePlan ids served

    def leads(self, program: Program, activity: Activity) -> bool:
        """Whether ``program`` opens this activity's Tasks (always, for an activity nobody shares)."""
        key = activity.shared
        return key is None or self.leader.get(key, program.id) == program.id

    def based_on(self, activity: Activity, own_careplan: str) -> list[str]:
        """The CarePlan ids a Task of this activity is based on: its own part first, then the others."""
        key = activity.shared
        others = [c for c in self.parts.get(key, ()) if c != own_careplan] if key else []
        return [own_careplan, *others]


NO_SHARING = Sharing()


def tightness(activity: Activity) -> tuple[float, float, float]:
    timing = activity.timing
    every = parse_duration(timing.every).approx_days if timing.every else (SEASON_DAYS if timing.season else math.inf)
    return (every, parse_duration(timing.start).approx_days, parse_duration(timing.due_within).approx_days)


def sharing(parts: Iterable[Part], ctx: PatientContext, today: date) -> Sharing:
    """Leaders and served parts per shared key among ``parts`` (the patient's active programme parts)."""
    candidates: dict[str, list[tuple[tuple[float, float, float], str, str]]] = {}
    for part in parts:
        for activity in part.program.activities:
            key = activity.shared
            if key is None:
                continue
            if activity.only_if is not None and not restriction_holds(activity.only_if, part.program, ctx, part.start,
                                                                      None, today):
                continue
            candidates.setdefault(key, []).append((tightness(activity), part.program.id, part.careplan_id))
    leader: dict[str, str] = {}
    served: dict[str, tuple[str, ...]] = {}
    for key, found in candidates.items():
        found.sort()
        leader[key] = found[0][1]
        served[key] = tuple(sorted({c for _, _, c in found}))
    return Sharing(leader, served)


def shared_key(task: Mapping[str, Any]) -> str | None:
    """The shared-activity key a Task carries (None for a Task of an activity nobody shares)."""
    for ext in task.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == EXT_SHARED_ACTIVITY:
            value = ext.get("valueId")
            return value if isinstance(value, str) else None
    return None


def is_shared_plan(careplan: Mapping[str, Any]) -> bool:
    """The patient's shared plan (the whole), as opposed to a programme's part."""
    for ident in careplan.get("identifier") or ():
        if isinstance(ident, dict) and ident.get("system") == SHARED_CAREPLAN_IDENTIFIER:
            return True
    return PROFILE_SHARED_CAREPLAN in ((careplan.get("meta") or {}).get("profile") or ())
