"""Revision: a new version of a programme migrates its open plans in a controlled way.

For each plan drawn up from another version of the programme:

* its ``instantiatesCanonical`` follows the new version, with a note saying when;
* open scheduled Tasks of activities the new version no longer has are cancelled, with a status
  reason naming the version; completed work is never touched;
* the new version's schedule is applied from today: an activity whose window is open (new, or
  recurring more often now) gets its current Task with its window starting today and its full time
  to do it, so nothing is overdue on creation; what opens later, the sweep opens as usual.

``revise`` returns the actions and a plain account of them (for ``careflow programs publish`` to
show before applying); applying them and revising again yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from careflow.planning.patient import PatientContext
from careflow.planning.shared import NO_SHARING, Sharing
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask, UpdatePlan, UpdateTask, version_of
from careflow.triggers.plan_status import plan_update
from careflow.triggers.schedule import openings
from careflow.triggers.task_facts import task_facts


@dataclass(frozen=True)
class PlanRevision:
    """What revising one plan does; ids and activity ids only (safe to print and log)."""

    careplan_id: str
    old_canonical: str
    new_canonical: str
    cancelled: list[tuple[str, str]] = field(default_factory=list)  # (Task id, activity id)
    opened: list[tuple[str, str]] = field(default_factory=list)  # (Task id, activity id)
    actions: list[Action] = field(default_factory=list)


def _from_today(task: dict[str, Any], program: Program, activity_id: str, today: date) -> dict[str, Any]:
    """The Task with its window moved to start today when it would have opened in the past."""
    period = (task.get("restriction") or {}).get("period") or {}
    if str(period.get("start", "")) >= today.isoformat():
        return task
    within = parse_duration(program.activity(activity_id).timing.due_within)
    out = dict(task)
    out["restriction"] = {"period": {"start": today.isoformat(), "end": within.after(today).isoformat()}}
    return out


def revise(program: Program, careplan: dict[str, Any], tasks: list[dict[str, Any]], ctx: PatientContext,
           today: date, share: Sharing = NO_SHARING) -> PlanRevision | None:
    """The migration of one plan to ``program``'s version; None when it instantiates it already."""
    old = [str(c) for c in careplan.get("instantiatesCanonical") or ()]
    if not old or old[0] == program.canonical or careplan.get("status") not in ("active", "draft"):
        return None
    keep = {a.id for a in program.activities}
    facts = [task_facts(t, program) for t in tasks]
    out = PlanRevision(str(careplan["id"]), old[0], program.canonical)
    remaining: list[dict[str, Any]] = []
    for task, f in zip(tasks, facts):
        if f.own and f.activity is not None and f.activity not in keep and not f.final and f.trigger is None:
            t = dict(task)
            t["status"] = "cancelled"
            t["statusReason"] = {"text": f"Cancelled: {program.title.en} {program.version} no longer has this activity"}
            t.pop("businessStatus", None)
            out.actions.append(UpdateTask(t, version_of(task), "revised"))
            out.cancelled.append((f.id, f.activity))
            remaining.append(t)
        else:
            remaining.append(task)
    plan = dict(careplan)
    plan["instantiatesCanonical"] = [program.canonical]
    plan["note"] = [*(careplan.get("note") or []),
                    {"time": today.isoformat(), "text": f"Revised to {program.title.en} {program.version}."}]
    created: list[dict[str, Any]] = []
    if careplan.get("status") == "active":
        known = {f.id for f in facts}
        kept_facts = [task_facts(t, program) for t in remaining]
        for c in openings(program, plan, kept_facts, ctx, today, share=share):
            if c.id in known:
                continue
            activity_id = task_facts(c.resource, program).activity or ""
            task = _from_today(c.resource, program, activity_id, today)
            out.actions.append(CreateTask(task, c.reason, c.role, c.trigger, c.focus))
            out.opened.append((c.id, activity_id))
            created.append(task)
    update = plan_update(plan, today, new_tasks=created)
    changes = ("revised",) if update is None else ("revised", *update.changes)
    out.actions.append(UpdatePlan(update.resource if update else plan, version_of(careplan), changes))
    return out
