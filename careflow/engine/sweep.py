"""The daily follow-up sweep over the store: each active CarePlan brought up to ``now``.

Plans are read in batches of patients with their Tasks (``_revinclude=Task:based-on``); the pure
``careflow.triggers.sweep.sweep_plan`` decides, and each plan's actions are written in one unit of
work with If-Match. A concurrent edit of one of its Tasks or of the plan skips that plan (counted as
``conflict``); the next sweep sees the new state. Re-running a sweep at the same ``now`` writes
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from careflow.access.principal import SYSTEM
from careflow.engine.apply import Applied, apply_actions
from careflow.engine.context import load_contexts, program_of
from careflow.engine.counts import Counts, Escalation
from careflow.engine.reading import chunks, ref_id, search_pages
from careflow.errors import NotFound, VersionConflict
from careflow.programs.model import Program
from careflow.store.port import Repository, Stored
from careflow.triggers.sweep import sweep_plan


def plan_patients(repo: Repository, *, page_size: int = 500) -> list[str]:
    """Ids of the patients holding at least one active CarePlan (sorted): what a sweep partitions."""
    found: set[str] = set()
    for page in search_pages(repo, "CarePlan", [("status", "active")], page_size=page_size):
        for s in page.matches:
            pid = ref_id((s.resource or {}).get("subject"), "Patient")
            if pid:
                found.add(pid)
    return sorted(found)


def count_applied(counts: Counts, done: Applied, program: str, neighbourhood: str | None) -> None:
    for c in done.created:
        if c.reason == "escalation":
            counts.add("escalated", program=program, neighbourhood=neighbourhood)
            counts.escalations.append(Escalation(
                task_id=c.id, overdue_task_id=(c.focus or "").split("/")[-1], program=program,
                trigger=c.trigger or "", role=c.role, neighbourhood=neighbourhood,
            ))
        elif c.reason == "observation":
            counts.add("observation-tasks", program=program, neighbourhood=neighbourhood)
        elif c.reason == "reassignment":
            counts.add("tasks-reassigned", program=program, neighbourhood=neighbourhood)
        elif c.trigger is not None:
            counts.add("tasks-started", program=program, neighbourhood=neighbourhood)
        else:
            counts.add("tasks-opened", program=program, neighbourhood=neighbourhood)
    for u in done.task_updates:
        if u.change == "overdue":
            counts.add("tasks-overdue", program=program, neighbourhood=neighbourhood)
    for p in done.plan_updates:
        for change in p.changes:
            if change != "activity":
                counts.add(f"plans-{change}", program=program, neighbourhood=neighbourhood)


def sweep(
    repo: Repository,
    programs: Mapping[str, Program],
    now: datetime,
    patient_ids: Sequence[str] | None = None,
    *,
    page_size: int = 200,
) -> Counts:
    """Sweep the active plans of ``patient_ids`` (all patients with an active plan when None)."""
    counts = Counts()
    wanted = plan_patients(repo) if patient_ids is None else sorted(set(patient_ids))
    for batch in chunks(wanted, max(1, min(page_size, 100))):
        plans, tasks_of = _plans_with_tasks(repo, batch)
        contexts, _ = load_contexts(repo, batch, programs)
        for stored in plans:
            careplan = stored.resource or {}
            program = program_of(careplan, programs)
            pid = ref_id(careplan.get("subject"), "Patient")
            ctx = contexts.get(pid or "")
            if program is None or ctx is None:
                counts.add("skipped-unknown-program" if program is None else "missing-patient")
                continue
            hood = ctx.neighbourhood
            counts.add("plans", program=program.id, neighbourhood=hood)
            tasks = sorted(tasks_of.get(stored.id, []), key=lambda t: str(t.get("id")))
            actions = sweep_plan(program, careplan, tasks, ctx, now)
            if not actions:
                continue
            try:
                with repo.unit_of_work(SYSTEM) as uow:
                    done = apply_actions(uow, actions)
            except (VersionConflict, NotFound):
                counts.add("conflict", program=program.id, neighbourhood=hood)
                continue
            count_applied(counts, done, program.id, hood)
    return counts



def _plans_with_tasks(repo: Repository, batch: list[str]) -> tuple[list[Stored], dict[str, list[dict[str, Any]]]]:
    """The batch's active CarePlans and, per plan id, the Tasks based on it (one paged search)."""
    plans: list[Stored] = []
    tasks_of: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    params = [("patient", ",".join(batch)), ("status", "active"), ("_revinclude", "Task:based-on")]
    for page in search_pages(repo, "CarePlan", params, page_size=1000):
        plans += page.matches
        for t in page.included:
            if t.type != "Task" or t.id in seen or t.resource is None:
                continue
            seen.add(t.id)
            for ref in t.resource.get("basedOn") or ():
                cid = ref_id(ref, "CarePlan")
                if cid:
                    tasks_of.setdefault(cid, []).append(t.resource)
    return plans, tasks_of
