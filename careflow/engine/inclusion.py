"""Inclusion over the store: proposals in, draft plans drawn up, plans activated after the conversation.

The rules are ``careflow.planning.inclusion``'s; this module reads what they need and writes what
they return, each step in one unit of work with If-Match, so a concurrent edit makes the step
wait for the event's next delivery instead of overwriting someone's change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from careflow.access.principal import SYSTEM
from careflow.engine.counts import Counts
from careflow.engine.reading import by_ids, ref_id, search_all
from careflow.planning.inclusion import activated, conversation_problems, patient_goals, proposed_programs
from careflow.planning.shared import CONVERSATION_KEY, shared_key
from careflow.programs.model import Program
from careflow.store.port import Repository
from careflow.triggers.task_facts import FINAL_STATUSES


def include(repo: Repository, programs: Mapping[str, Program], proposal: dict[str, Any], now: datetime,
            counts: Counts) -> None:
    """A completed proposal: draw up the draft plan for the programmes it names (still eligible)."""
    from careflow.engine.enrolment import enrol

    pid = ref_id(proposal.get("for"), "Patient")
    named = {p.id: p for p in proposed_programs(proposal, programs)}
    if not pid or not named:
        counts.add("skipped")
        return
    done = enrol(repo, named, [pid], now.date(), mode="draft")
    counts.add("included" if done["enrolled"] else "not-included")


def is_conversation(task: Mapping[str, Any]) -> bool:
    return shared_key(task) == CONVERSATION_KEY


def activate(repo: Repository, programs: Mapping[str, Program], conversation: dict[str, Any], now: datetime,
             counts: Counts) -> bool:
    """The care-planning conversation was completed: activate the patient's draft plans. False when
    there was nothing in draft (a conversation of an active plan is ordinary work)."""
    pid = ref_id(conversation.get("for"), "Patient")
    if not pid or conversation.get("status") != "completed":
        return False
    stored = [s for s in search_all(repo, "CarePlan", [("patient", pid), ("status", "draft")]) if s.resource]
    if not stored:
        return False
    refs = patient_goals(conversation)
    goals = {s.id: s.resource for s in by_ids(repo, "Goal", [r.split("/", 1)[1] for r in refs]) if s.resource}
    problems = conversation_problems(conversation, goals, pid)
    kept = [r for r in refs if not any(p.startswith(f"{r} ") for p in problems)]
    versions = {s.id: s.version for s in stored}
    with repo.unit_of_work(SYSTEM) as uow:
        for plan in activated([s.resource for s in stored if s.resource], conversation, now.date(), programs, kept):
            uow.update(plan, if_match=versions[str(plan["id"])])
    counts.add("plans-activated", len(stored))
    if problems:
        counts.add("goals-not-linked", len(problems))
    from careflow.engine.sweep import sweep

    counts.merge(sweep(repo, programs, now, [pid]))  # open the plan's first Tasks, due from today
    return True


def open_proposals(repo: Repository, patient_ids: list[str]) -> dict[str, set[str]]:
    """Per patient, the programme canonicals (without version) named by a proposal still open or
    rejected: those are not proposed again (a rejection stands until someone proposes anew)."""
    from careflow.naming import TASK_KIND
    from careflow.planning.inclusion import PROPOSAL

    out: dict[str, set[str]] = {}
    if not patient_ids:
        return out
    for s in by_ids(repo, "Task", patient_ids, "patient", [("code", f"{TASK_KIND}|{PROPOSAL}")]):
        task = s.resource or {}
        if task.get("status") in FINAL_STATUSES - {"rejected"}:
            continue
        pid = ref_id(task.get("for"), "Patient")
        if pid:
            out.setdefault(pid, set()).update(
                str(i.get("valueCanonical", "")).split("|", 1)[0] for i in task.get("input") or ())
    return out
