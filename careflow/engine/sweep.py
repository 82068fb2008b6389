"""The daily follow-up sweep over the store: each active CarePlan brought up to ``now``.

Plans are read in batches of patients with their Tasks (``_revinclude=Task:based-on``); the pure
``careflow.triggers.sweep.sweep_plan`` decides, and each plan's actions are written in one unit of
work with If-Match. A concurrent edit of one of its Tasks or of the plan skips that plan (counted as
``conflict``); the next sweep sees the new state. Re-running a sweep at the same ``now`` writes
nothing.

Which patients: those the due-date index (``plan_due``, kept by the store) says may have work on
``now``'s day, not every patient with an active plan. A patient for whom the sweep finds nothing to do
gets their next day back (``careflow.triggers.next_due``: the earliest day the calendar alone could
give one of their plans work); any write to their record marks them due again at once. A patient the
sweep wrote for stays due, so the next sweep reads them once more and stores the day from what it
wrote. The index holds days computed with one set of programmes (a fingerprint is kept): a sweep with
other programmes first marks every patient due.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Mapping, Sequence

import orjson

from careflow.access.principal import SYSTEM
from careflow.engine import feed
from careflow.engine.apply import Applied, apply_actions
from careflow.engine.context import load_contexts, program_of
from careflow.engine.counts import Counts, Escalation
from careflow.engine.reading import chunks, ref_id, search_pages
from careflow.errors import NotFound, VersionConflict
from careflow.planning.shared import NO_SHARING, Part, is_shared_plan, shared_key, sharing
from careflow.programs.model import Program
from careflow.store.port import Repository, Stored
from careflow.triggers.next_due import fact_next_due, plan_next_due
from careflow.triggers.schedule import plan_period
from careflow.triggers.sweep import day_of, sweep_plan


def plan_patients(repo: Repository, *, page_size: int = 500) -> list[str]:
    """Ids of the patients holding at least one active CarePlan (sorted): what a sweep partitions."""
    found: set[str] = set()
    for page in search_pages(repo, "CarePlan", [("status", "active")], page_size=page_size):
        for s in page.matches:
            pid = ref_id((s.resource or {}).get("subject"), "Patient")
            if pid:
                found.add(pid)
    return sorted(found)


def programs_stamp(programs: Mapping[str, Program]) -> str:
    """A fingerprint of the programmes (their whole definitions): the due days follow from them."""
    digest = hashlib.sha256()
    for key in sorted(programs):
        digest.update(orjson.dumps([key, programs[key].model_dump(mode="json")], option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def due_patients(repo: Repository, programs: Mapping[str, Program], now: datetime | date) -> list[str]:
    """Ids of the patients the sweep may have work for on ``now``'s day (sorted): what a sweep partitions.

    With other programmes than the due days were computed with, every patient is due first."""
    stamp = programs_stamp(programs)
    with repo.unit_of_work(SYSTEM) as uow:
        if uow.due_stamp() != stamp:
            uow.due_restamp(stamp)
    with repo.unit_of_work(SYSTEM) as uow:
        return uow.due_patients(day_of(now))


def _min_day(*days: date | None) -> date | None:
    found = [d for d in days if d is not None]
    return min(found) if found else None


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
        elif c.reason == "discharge":
            counts.add("discharge-tasks", program=program, neighbourhood=neighbourhood)
        elif c.reason == "reassignment":
            counts.add("tasks-reassigned", program=program, neighbourhood=neighbourhood)
        elif c.reason == "review":
            counts.add("plan-reviews", program=program, neighbourhood=neighbourhood)
        elif c.trigger is not None:
            counts.add("tasks-started", program=program, neighbourhood=neighbourhood)
        else:
            counts.add("tasks-opened", program=program, neighbourhood=neighbourhood)
    for r in done.other_created:
        if r.reason == "task-output":
            counts.add("observations-recorded", program=program, neighbourhood=neighbourhood)
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
    record_due: bool = True,
) -> Counts:
    """Sweep the active plans of ``patient_ids`` (when None: every patient the due-date index names).

    ``record_due`` False leaves the due-date index as it was (a benchmark's full sweep beside the
    indexed one must not do the index's work for it)."""
    feed.install(repo)  # the Tasks opened, escalated and closed reach Subscriptions with their writes
    counts = Counts()
    wanted = due_patients(repo, programs, now) if patient_ids is None else sorted(set(patient_ids))
    today = day_of(now)
    for batch in chunks(wanted, max(1, min(page_size, 100))):
        with repo.unit_of_work(SYSTEM) as uow:
            generations = uow.due_generations(batch)  # before the plans: a write after this keeps them due
        settled: dict[str, date | None] = {pid: None for pid in batch}  # a patient without active plans: never
        plans, tasks_of = _plans_with_tasks(repo, batch)
        contexts, _ = load_contexts(repo, batch, programs)
        per_patient: dict[str, list[tuple[Stored, Program | None]]] = {}
        for stored in plans:
            careplan = stored.resource or {}
            pid = ref_id(careplan.get("subject"), "Patient") or ""
            per_patient.setdefault(pid, []).append((stored, None if is_shared_plan(careplan) else program_of(careplan, programs)))
        for pid, patient_plans in per_patient.items():
            ctx = contexts.get(pid)
            parts = [(s, p) for s, p in patient_plans if not is_shared_plan(s.resource or {})]
            whole = next((s for s, _ in patient_plans if is_shared_plan(s.resource or {})), None)
            if ctx is not None and whole is not None and not parts:
                settled.pop(pid, None)  # written (or conflicting): due again next time
                _close_shared_plan(repo, whole, today, counts, ctx.neighbourhood)
                continue
            share = sharing([Part(p, s.id, plan_period(s.resource or {})[0] or today) for s, p in parts if p is not None],
                            ctx, today) if ctx is not None else NO_SHARING
            bodies = {s.id: dict(s.resource or {}) for s, _ in parts}  # each part's latest version, as written
            queue = list(range(len(parts)))
            visits = 0
            while queue and visits <= 4 * len(parts):
                visits += 1
                i = queue.pop(0)
                stored, program = parts[i]
                careplan = bodies[stored.id]
                if program is None or ctx is None:
                    counts.add("skipped-unknown-program" if program is None else "missing-patient")
                    continue
                hood = ctx.neighbourhood
                if visits <= len(parts):
                    counts.add("plans", program=program.id, neighbourhood=hood)
                shared_tasks = _shared_tasks([tasks_of.get(s.id, []) for s, _ in parts])
                tasks = sorted(tasks_of.get(stored.id, []), key=lambda t: str(t.get("id")))
                actions = sweep_plan(program, careplan, tasks, ctx, now, share=share, shared_tasks=shared_tasks)
                if not actions:
                    if pid in settled:
                        settled[pid] = _min_day(settled[pid], plan_next_due(program, careplan, tasks, ctx, today))
                    continue
                settled.pop(pid, None)
                try:
                    with repo.unit_of_work(SYSTEM) as uow:
                        done = apply_actions(uow, actions)
                except (VersionConflict, NotFound):
                    counts.add("conflict", program=program.id, neighbourhood=hood)
                    continue
                count_applied(counts, done, program.id, hood)
                # what was written is what the patient's other parts see next (a shared Task this part
                # opened is theirs too, listed in their activities now, not by the next sweep: a rerun
                # then finds nothing left to do); a part that receives one is looked at again
                for j in _written(done, stored.id, bodies, tasks_of):
                    k = next(n for n, (s, _) in enumerate(parts) if s.id == j)
                    if k not in queue:
                        queue.append(k)
            if ctx is not None and whole is not None and all(b.get("status") != "active" for b in bodies.values()):
                settled.pop(pid, None)  # the last part ended just now: the whole ends with it, today
                _close_shared_plan(repo, whole, today, counts, ctx.neighbourhood)
            if pid in settled and ctx is not None and parts:
                settled[pid] = _min_day(settled[pid], fact_next_due(ctx, programs.values(), today))
        rows = [(pid, generations[pid], day) for pid, day in settled.items() if pid in generations]
        if rows and record_due:
            with repo.unit_of_work(SYSTEM) as uow:
                uow.due_settle(rows)
    return counts


def _as_written(resource: dict[str, Any], version: int) -> dict[str, Any]:
    return {**resource, "meta": {**(resource.get("meta") or {}), "versionId": str(version)}}


def _written(done: Applied, own: str, bodies: dict[str, dict[str, Any]],
             tasks_of: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Bring the batch's copies up to what ``done`` wrote (its versions too, for the next If-Match);
    returns the patient's other parts that got a Task they did not hold."""
    others: set[str] = set()
    for p in done.plan_updates:
        if p.id in bodies:
            bodies[p.id] = _as_written(p.resource, (p.if_match_version or 0) + 1)
    for u in done.task_updates:
        fresh = _as_written(u.resource, (u.if_match_version or 0) + 1)
        for tasks in tasks_of.values():
            for n, t in enumerate(tasks):
                if t.get("id") == u.id:
                    tasks[n] = fresh
    for c in done.created:
        fresh = _as_written(c.resource, 1)
        for ref in c.resource.get("basedOn") or ():
            cid = ref_id(ref, "CarePlan")
            if cid is None or cid not in bodies:
                continue
            held = tasks_of.setdefault(cid, [])
            if not any(t.get("id") == c.id for t in held):
                held.append(fresh)
                if cid != own:
                    others.add(cid)
    return others


def _shared_tasks(task_lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The patient's Tasks of shared activities, once each (a shared Task is based on several parts)."""
    seen: dict[str, dict[str, Any]] = {}
    for tasks in task_lists:
        for t in tasks:
            if shared_key(t) is not None:
                seen.setdefault(str(t.get("id")), t)
    return [seen[k] for k in sorted(seen)]


def _close_shared_plan(repo: Repository, whole: Stored, today: date, counts: Counts, hood: str | None) -> None:
    """A shared plan none of whose parts is active any more is completed: the whole ends with its parts."""
    plan = dict(whole.resource or {})
    plan["status"] = "completed"
    plan["period"] = {**(plan.get("period") or {}), "end": today.isoformat()}
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(plan, if_match=whole.version)
    except (VersionConflict, NotFound):
        counts.add("conflict", neighbourhood=hood)
        return
    counts.add("plans-completed", program="shared", neighbourhood=hood)



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
