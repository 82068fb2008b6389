"""For the pure trigger-rule tests: a follow-up programme, a patient and a plan held in a dict
"store" that applies actions with version checks exactly as the engine does."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from careflow.naming import EXT_OCCURRENCE, TASK_BUSINESS_STATUS
from careflow.planning.patient import PatientContext, context_from_resources
from careflow.planning.planner import plan_all
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask, UpdatePlan, UpdateTask
from careflow.triggers.sweep import sweep_plan

FIXTURE = Path(__file__).with_name("fixtures") / "follow-up.yaml"
START = date(2026, 1, 31)  # a month end: recurrence must not drift to the 28th
TEAM = {"gp": "PractitionerRole/gp-1", "home-nurse": "PractitionerRole/nurse-1", "care-coach": "PractitionerRole/coach-1"}


def patient_context(*, onset: str = "2020-03-01", team: dict[str, str] | None = None) -> PatientContext:
    patient = {"resourceType": "Patient", "id": "pat-1", "birthDate": "1950-05-05"}
    condition = {
        "resourceType": "Condition", "id": "cond-1", "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84114007"}]}, "onsetDateTime": onset,
    }
    return context_from_resources(patient, [condition], team=TEAM if team is None else team)


def _versioned(resource: dict[str, Any], version: int = 1) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out["meta"] = {**(out.get("meta") or {}), "versionId": str(version)}
    return out


class PlanState:
    """One patient's plan and Tasks, changed only through actions (or a person's edit)."""

    def __init__(self, program: Program, ctx: PatientContext, start: date = START) -> None:
        self.program, self.ctx = program, ctx
        result = plan_all([program], ctx, start)
        self.plan = _versioned(result.careplans[0])
        self.tasks: dict[str, dict[str, Any]] = {t["id"]: _versioned(t) for t in result.tasks}
        self.log: list[tuple[date, Action]] = []

    @property
    def task_list(self) -> list[dict[str, Any]]:
        return [self.tasks[k] for k in sorted(self.tasks)]

    def apply(self, actions: list[Action], day: date | None = None) -> None:
        for a in actions:
            if isinstance(a, CreateTask):
                if a.id not in self.tasks:
                    self.tasks[a.id] = _versioned(a.resource)
            elif isinstance(a, UpdateTask):
                current = self.tasks[a.id]
                assert int(current["meta"]["versionId"]) == a.if_match_version, "stale If-Match"
                self.tasks[a.id] = _versioned(a.resource, a.if_match_version + 1)
            elif isinstance(a, UpdatePlan):
                assert int(self.plan["meta"]["versionId"]) == a.if_match_version, "stale If-Match"
                self.plan = _versioned(a.resource, a.if_match_version + 1)
            self.log.append((day or START, a))

    def sweep(self, day: date) -> list[Action]:
        actions = sweep_plan(self.program, self.plan, self.task_list, self.ctx, day)
        self.apply(actions, day)
        return actions

    def run(self, first: date, last: date, on_day: Any = None) -> None:
        day = first
        while day <= last:
            self.sweep(day)
            if on_day:
                on_day(self, day)
            day += timedelta(days=1)

    def edit(self, task_id: str, **changes: Any) -> dict[str, Any]:
        """A person changing a Task (a new version)."""
        current = self.tasks[task_id]
        new = {**current, **changes}
        self.tasks[task_id] = _versioned(new, int(current["meta"]["versionId"]) + 1)
        return self.tasks[task_id]

    def complete(self, task_id: str, day: date) -> dict[str, Any]:
        return self.edit(task_id, status="completed", executionPeriod={"end": day.isoformat()},
                         lastModified=day.isoformat())

    def of(self, activity_code: str) -> list[dict[str, Any]]:
        return sorted(
            (t for t in self.tasks.values() if any(c.get("code") == activity_code for c in t["code"].get("coding", []))),
            key=lambda t: (occurrence(t) or 0, t["id"]),
        )


def occurrence(task: dict[str, Any]) -> int | None:
    return next((e["valuePositiveInt"] for e in task.get("extension", ()) if e["url"] == EXT_OCCURRENCE), None)


def business_status(task: dict[str, Any]) -> str | None:
    for c in (task.get("businessStatus") or {}).get("coding", ()):
        if c["system"] == TASK_BUSINESS_STATUS:
            return c["code"]
    return None


def window(task: dict[str, Any]) -> tuple[str, str]:
    p = task["restriction"]["period"]
    return p["start"], p["end"]
