"""A Task dict read into the few facts the rules reason about.

Which activity a Task belongs to is read from ``instantiatesCanonical`` (the compiled
ActivityDefinition of ``<programme>-<activity>``), so regular occurrences, triggered starts and
reassigned copies of an activity are all recognised; the occurrence number from the
task-occurrence extension; a triggered task carries the task-trigger extension.

A Task of a shared activity (``careflow.planning.shared``) carries the shared-activity key. Read for
a programme that shares the key but does not own the Task (another programme's activity definition
leads it), it stands for that programme's activity with the same key (``own`` False): prerequisites
and coverage see it, while the owner's rules alone mark it overdue or escalate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from careflow.naming import EXT_OCCURRENCE, EXT_TRIGGER, TASK_BUSINESS_STATUS, TASK_REASON, activity_definition_url
from careflow.planning.shared import shared_key
from careflow.programs.model import Program
from careflow.triggers.actions import version_of

FINAL_STATUSES = frozenset({"completed", "cancelled", "rejected", "failed", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class TaskFacts:
    id: str
    status: str
    activity: str | None  # programme activity id, None for escalation / observation tasks
    occurrence: int | None
    trigger: str | None  # the trigger that raised it, None for scheduled occurrences
    reason: str | None  # TASK_REASON code
    opens: date | None
    due: date | None
    completed_on: date | None
    business_status: str | None
    version: int | None
    shared: str | None = None  # the shared-activity key
    own: bool = True  # False: another programme's Task of a shared activity this programme also has

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def regular(self) -> bool:
        """A scheduled occurrence (not raised by a trigger)."""
        return self.occurrence is not None and self.trigger is None


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _extension(resource: dict[str, Any], url: str) -> Any:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def activity_of(task: dict[str, Any], program: Program) -> str | None:
    prefix = activity_definition_url(program.url, program.id, "")
    canonical = task.get("instantiatesCanonical")
    if not isinstance(canonical, str):
        return None
    url = canonical.split("|", 1)[0]
    if not url.startswith(prefix):
        return None
    return url[len(prefix):] or None


def coded(concept: Any, system: str) -> str | None:
    if not isinstance(concept, dict):
        return None
    for c in concept.get("coding") or ():
        if isinstance(c, dict) and c.get("system") == system:
            return c.get("code")
    return None


def task_facts(task: dict[str, Any], program: Program) -> TaskFacts:
    period = (task.get("restriction") or {}).get("period") or {}
    done = None
    if task.get("status") == "completed":
        done = parse_date((task.get("executionPeriod") or {}).get("end")) or parse_date(task.get("lastModified"))
        done = done or parse_date((task.get("meta") or {}).get("lastUpdated"))
    occurrence = _extension(task, EXT_OCCURRENCE)
    trigger = _extension(task, EXT_TRIGGER)
    shared = shared_key(task)
    activity = activity_of(task, program)
    own = True
    if activity is None and shared is not None:
        local = program.shared_activity(shared)
        if local is not None:
            activity, own = local.id, False
    return TaskFacts(
        id=str(task.get("id")),
        status=str(task.get("status")),
        activity=activity,
        occurrence=occurrence if isinstance(occurrence, int) else None,
        trigger=trigger if isinstance(trigger, str) else None,
        reason=coded(task.get("reasonCode"), TASK_REASON),
        opens=parse_date(period.get("start")),
        due=parse_date(period.get("end")),
        completed_on=done,
        business_status=coded(task.get("businessStatus"), TASK_BUSINESS_STATUS),
        version=version_of(task),
        shared=shared,
        own=own,
    )
