"""Publishing a programme version over the store: every open plan of the programme, revised.

``publish`` finds the active and draft plans drawn up from another version of the programme, asks
``careflow.triggers.revision.revise`` what migrating each means, and (with ``apply``) writes each
plan's changes in one unit of work with If-Match: a plan someone is editing right now is skipped
and reported, and publishing again picks it up. Without ``apply`` nothing is written: the report
is what ``careflow programs publish`` shows first.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from careflow.access.principal import SYSTEM
from careflow.engine import feed
from careflow.engine.apply import apply_actions
from careflow.engine.context import load_contexts, program_of
from careflow.engine.counts import Counts
from careflow.engine.reading import by_ids, ref_id, search_pages
from careflow.errors import NotFound, VersionConflict
from careflow.planning.shared import Part, is_shared_plan, sharing
from careflow.programs.model import Program
from careflow.store.port import Repository, Stored
from careflow.triggers.revision import PlanRevision, revise
from careflow.triggers.schedule import plan_period


def publish(repo: Repository, program: Program, programs: Mapping[str, Program], today: date, *,
            apply: bool = False) -> tuple[list[PlanRevision], Counts]:
    """The revision of every open plan of ``program``'s other versions; written when ``apply`` (the
    cancelled and opened Tasks and the revised plans reach Subscriptions)."""
    if apply:
        feed.install(repo)
    counts = Counts()
    catalogue = {**programs, program.id: program}
    revisions: list[PlanRevision] = []
    params = [("instantiates-canonical", program.url), ("status", "active,draft"), ("_revinclude", "Task:based-on")]
    for page in search_pages(repo, "CarePlan", params, page_size=200):
        tasks_of: dict[str, list[dict[str, Any]]] = {}
        for t in page.included:
            if t.type == "Task" and t.resource:
                for ref in t.resource.get("basedOn") or ():
                    cid = ref_id(ref, "CarePlan")
                    if cid:
                        tasks_of.setdefault(cid, []).append(t.resource)
        plans = [s for s in page.matches if s.resource and not is_shared_plan(s.resource)]
        pids = sorted({pid for s in plans if (pid := ref_id((s.resource or {}).get("subject"), "Patient"))})
        contexts, _ = load_contexts(repo, pids, catalogue)
        others = _active_parts(repo, pids, catalogue)
        for stored in plans:
            careplan = stored.resource or {}
            pid = ref_id(careplan.get("subject"), "Patient") or ""
            ctx = contexts.get(pid)
            if ctx is None:
                counts.add("missing-patient")
                continue
            share = sharing(others.get(pid, []), ctx, today)
            tasks = sorted(tasks_of.get(stored.id, []), key=lambda t: str(t.get("id")))
            revision = revise(program, careplan, tasks, ctx, today, share)
            if revision is None:
                continue
            revisions.append(revision)
            counts.add("plans-to-revise", program=program.id, neighbourhood=ctx.neighbourhood)
            if not apply:
                continue
            try:
                with repo.unit_of_work(SYSTEM) as uow:
                    apply_actions(uow, revision.actions)
            except (VersionConflict, NotFound):
                counts.add("conflict", program=program.id, neighbourhood=ctx.neighbourhood)
                continue
            counts.add("plans-revised", program=program.id, neighbourhood=ctx.neighbourhood)
            counts.add("tasks-cancelled", len(revision.cancelled), program=program.id)
            counts.add("tasks-opened", len(revision.opened), program=program.id)
    return revisions, counts


def _active_parts(repo: Repository, pids: list[str], catalogue: Mapping[str, Program]) -> dict[str, list[Part]]:
    """Per patient, the active programme parts, the revised programme's in its new version (they
    decide who leads a shared activity)."""
    out: dict[str, list[Part]] = {}
    found: list[Stored] = by_ids(repo, "CarePlan", pids, "patient", [("status", "active")]) if pids else []
    for s in found:
        cp = s.resource or {}
        program = None if is_shared_plan(cp) else program_of(cp, catalogue)
        pid = ref_id(cp.get("subject"), "Patient")
        begun = plan_period(cp)[0]
        if program is not None and pid and begun:
            out.setdefault(pid, []).append(Part(program, s.id, begun))
    return out
