"""The follow-up sweep for one care plan: every rule that depends on the calendar, in one pass.

``sweep_plan`` is what the engine runs for each active CarePlan each day: open the Tasks whose window
has come (``schedule``), mark late ones overdue and escalate them (``overdue``), then bring the plan
itself up to date (``plan_status``). It returns actions and never mutates its inputs; running it twice
on the same state yields the same ids, and on the state after applying them yields nothing new.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any, Sequence

from careflow.planning.patient import PatientContext
from careflow.planning.shared import NO_SHARING, Sharing
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask, UpdateTask
from careflow.triggers.overdue import overdue_actions
from careflow.triggers.plan_status import plan_update
from careflow.triggers.renewal import review_actions
from careflow.triggers.schedule import openings
from careflow.triggers.task_facts import task_facts


def day_of(now: datetime | date) -> date:
    """The care day ``now`` falls on (a date is taken as is)."""
    return now.date() if isinstance(now, datetime) else now


def sweep_plan(
    program: Program,
    careplan: dict[str, Any],
    tasks: list[dict[str, Any]],
    ctx: PatientContext,
    now: datetime | date,
    *,
    share: Sharing = NO_SHARING,
    shared_tasks: Sequence[dict[str, Any]] = (),
) -> list[Action]:
    """Actions that bring one active plan up to ``now``; [] for a plan that is not active.

    ``tasks`` are the Tasks based on the plan; ``shared_tasks`` the patient's other Tasks of shared
    activities (based on other parts only), which the schedule reads as coverage and nothing else."""
    if careplan.get("status") != "active":
        return []
    today = day_of(now)
    facts = [task_facts(t, program) for t in tasks]
    known = {f.id for f in facts}
    others = [f for t in shared_tasks if (f := task_facts(t, program)).id not in known and not f.own]
    opened = [c for c in openings(program, careplan, [*facts, *others], ctx, today, share=share)
              if c.id not in known and c.id not in {o.id for o in others}]
    # a Task opened late (after downtime) may already be overdue: judge it in the same pass, folding
    # its status into the create, so a second sweep finds nothing left to do
    everything = [*tasks, *(c.resource for c in opened)]
    late = overdue_actions(program, careplan, everything, [*facts, *(task_facts(c.resource, program) for c in opened)],
                           ctx, today, share)
    fresh = {c.id: c for c in opened}
    for a in [a for a in late if isinstance(a, UpdateTask) and a.id in fresh]:
        fresh[a.id] = replace(fresh[a.id], resource=a.resource)
        late.remove(a)
    opened = [fresh[c.id] for c in opened]
    review = review_actions(program, careplan, facts, ctx, today)
    created = [a.resource for a in (*opened, *late, *review) if isinstance(a, CreateTask)]
    out: list[Action] = [*opened, *late, *review]
    update = plan_update(careplan, today, new_tasks=created, all_tasks=[*tasks, *created])
    if update is not None:
        out.append(update)
    return out
