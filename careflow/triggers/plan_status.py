"""The CarePlan's own state as its Tasks move: activity references, status and the attention flag.

Status policy (explicit, because FHIR leaves it to the implementer):

* a plan stays ``active`` for its whole period: activities keep recurring until ``period.end``;
* it becomes ``completed`` once the period has ended (today >= ``period.end``) and every Task based
  on it is in a final state (completed, cancelled, rejected, failed, entered-in-error);
* a plan whose period ended with open Tasks stays active until they are finished (the engine opens
  no new occurrences after the end, and overdue/escalation keep working on what is open);
* the engine never revokes, suspends or cancels a plan: ending care is a clinical decision.

Attention flag (extension ``careplan-attention``, valueBoolean): raised when an observation trigger
with ``flag_plan`` fires; cleared by the sweep once the plan has observation-raised Tasks and all of
them are final (the concern has been looked at). A flag raised by a trigger that creates no Task
stays until a person clears it.

New Tasks are referenced from ``CarePlan.activity`` (one reference per top-level Task, as the
planner does); a Task the plan does not reference yet is added on the next plan update, so a lost
update heals itself.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from careflow.naming import EXT_ATTENTION, TASK_REASON
from careflow.triggers.actions import UpdatePlan, version_of
from careflow.triggers.task_facts import FINAL_STATUSES, coded, parse_date


def attention(careplan: dict[str, Any]) -> bool:
    for ext in careplan.get("extension") or ():
        if ext.get("url") == EXT_ATTENTION:
            return bool(ext.get("valueBoolean"))
    return False


def _set_attention(plan: dict[str, Any], value: bool) -> None:
    exts = [e for e in plan.get("extension") or () if e.get("url") != EXT_ATTENTION]
    exts.append({"url": EXT_ATTENTION, "valueBoolean": value})
    plan["extension"] = exts


def plan_update(
    careplan: dict[str, Any],
    today: date,
    *,
    new_tasks: Iterable[dict[str, Any]] = (),
    all_tasks: list[dict[str, Any]] | None = None,
    raise_flag: bool = False,
) -> UpdatePlan | None:
    """The plan's next version, or None when nothing changes.

    ``all_tasks``: every Task based on the plan (including ``new_tasks``); when None (an event that
    sees only part of the plan) status and flag clearing are left to the sweep."""
    referenced = {
        ((a.get("reference") or {}).get("reference")) for a in careplan.get("activity") or () if isinstance(a, dict)
    }
    candidates = list(new_tasks) + (all_tasks or [])
    missing: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in candidates:
        ref = f"Task/{t['id']}"
        if ref not in referenced and ref not in seen and not t.get("partOf"):
            seen.add(ref)
            missing.append(t)
    changes: list[str] = []
    plan = dict(careplan)  # every change below replaces a top-level element; nested ones stay shared
    if missing:
        plan["activity"] = list(plan.get("activity") or []) + [
            {"reference": {"reference": f"Task/{t['id']}", "display": (t.get("code") or {}).get("text", "Task")}}
            for t in missing
        ]
        changes.append("activity")
    flagged = attention(careplan)
    if raise_flag and not flagged:
        _set_attention(plan, True)
        changes.append("flagged")
    elif all_tasks is not None and flagged and not raise_flag:
        observation_tasks = [t for t in all_tasks if coded(t.get("reasonCode"), TASK_REASON) == "observation"]
        if observation_tasks and all(t.get("status") in FINAL_STATUSES for t in observation_tasks):
            _set_attention(plan, False)
            changes.append("unflagged")
    if all_tasks is not None and careplan.get("status") == "active":
        end = parse_date((careplan.get("period") or {}).get("end"))
        if end is not None and today >= end and all(t.get("status") in FINAL_STATUSES for t in all_tasks):
            plan["status"] = "completed"
            changes.append("completed")
    if not changes:
        return None
    return UpdatePlan(plan, version_of(careplan), tuple(changes))
