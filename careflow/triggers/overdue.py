"""Overdue Tasks and their escalation.

* A Task is overdue when its window's end (``restriction.period.end``, a day) lies before today and
  it is not in a final state. It is marked with the local businessStatus ``overdue`` and is never
  cancelled: the work still has to happen, and who does it is a person's decision.
* An ``overdue`` trigger (``activity: X | any``, ``by: P3D``) fires once the Task is overdue by at
  least ``by`` (today >= due + by): a new Task for ``escalate_to`` (owner from the patient's care
  team, priority ``then.priority`` or urgent, focus on the overdue Task, reason ``escalation``,
  basedOn the CarePlan, due after ESCALATION_DUE_WITHIN). Its id is keyed by (trigger, overdue Task),
  so re-running the sweep never duplicates it. The overdue Task's businessStatus becomes
  ``escalated`` and never goes back to ``overdue``.
* An escalation Task is itself marked overdue when late but never escalated again (an ``any``
  trigger would otherwise chain escalations of escalations to the same coach).
* One overdue Task is escalated once, however many rules match: the first matching trigger in the
  programme's order raises the escalation, and a Task already ``escalated`` raises none.
* A Task of a shared activity is judged by the programme that leads its key for the patient only
  (``careflow.planning.shared``), whichever programme opened it: a Task three programmes share is
  not escalated three times, and one whose programme the patient left is still followed up.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from careflow.planning.patient import PatientContext
from careflow.planning.shared import NO_SHARING, Sharing
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask, UpdateTask
from careflow.triggers.building import translations_of, triggered_task, with_business_status
from careflow.triggers.task_facts import TaskFacts

ESCALATION_DUE_WITHIN = "P7D"


def is_overdue(f: TaskFacts, today: date) -> bool:
    return not f.final and f.due is not None and f.due < today


def _escalation(program: Program, ctx: PatientContext, careplan_id: str, task: dict[str, Any], f: TaskFacts,
                trigger_id: str, role_id: str, priority: str, today: date) -> dict[str, Any]:
    code = task.get("code") or {}
    title = code.get("text") or "task"
    said = translations_of(code.get("_text"))  # the overdue Task's own title in each language
    title_nl, title_fr = said.get("nl", title), said.get("fr", title)
    days = (today - f.due).days if f.due else 0
    due_text = f.due.isoformat() if f.due else "?"
    return triggered_task(
        program, ctx, careplan_id,
        trigger_id=trigger_id, cause=f.id, role_id=role_id, reason="escalation",
        title_en=f"Overdue: {title}", title_nl=f"Te laat: {title_nl}", title_fr=f"En retard : {title_fr}",
        description_en=f"'{title}' was due on {due_text} and is {days} days overdue. Follow up with the care team.",
        description_nl=f"'{title_nl}' moest klaar zijn op {due_text} en is {days} dagen te laat. Volg op met het zorgteam.",
        description_fr=(f"« {title_fr} » était prévu pour le {due_text} et a {days} jours de retard. "
                        "Faites le suivi avec l'équipe de soins."),
        priority=priority, opens=today, due=parse_duration(ESCALATION_DUE_WITHIN).after(today), authored=today,
        focus=f"Task/{f.id}",
    )


def _judges(program: Program, f: TaskFacts, share: Sharing) -> bool:
    """Whether ``program``'s rules judge this Task: its own, or a shared one whose key it leads."""
    if f.shared is None:
        return f.own
    local = program.shared_activity(f.shared)
    return local is not None and share.leads(program, local) if share.leader else f.own


def overdue_actions(
    program: Program,
    careplan: dict[str, Any],
    tasks: list[dict[str, Any]],
    facts: list[TaskFacts],
    ctx: PatientContext,
    today: date,
    share: Sharing = NO_SHARING,
) -> list[Action]:
    """Mark late Tasks overdue and raise the escalations their lateness calls for."""
    existing = {f.id for f in facts}
    careplan_id = str(careplan["id"])
    out: list[Action] = []
    for task, f in zip(tasks, facts):
        if not is_overdue(f, today) or not _judges(program, f, share):
            continue
        escalated = f.business_status == "escalated"
        if f.reason != "escalation" and not escalated:
            for trigger in program.triggers:
                rule = trigger.when.overdue
                if rule is None or trigger.then.escalate_to is None or rule.activity not in ("any", f.activity):
                    continue
                if parse_duration(rule.by).after(f.due) > today:  # type: ignore[arg-type]
                    continue
                escalated = True
                esc = _escalation(program, ctx, careplan_id, task, f, trigger.id, trigger.then.escalate_to,
                                  trigger.then.priority or "urgent", today)
                if esc["id"] not in existing:
                    existing.add(esc["id"])
                    out.append(CreateTask(esc, "escalation", trigger.then.escalate_to, trigger.id, f"Task/{f.id}"))
                break
        target = "escalated" if escalated else "overdue"
        if f.business_status != target:
            out.append(UpdateTask(with_business_status(task, target), f.version, target))
    return out
