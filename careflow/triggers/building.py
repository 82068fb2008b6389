"""Tasks the trigger rules raise (escalations, observation follow-ups, reassignments, triggered
starts), built as the planner builds scheduled ones so every Task reads the same way.

Every triggered Task carries the task-trigger extension (the programme trigger id), a TASK_REASON
``reasonCode``, ``focus`` on what caused it and an id from ``ids.triggered_task_id`` keyed by that
cause: evaluating a rule twice yields the same id, so the store's create-if-absent makes it a no-op.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from careflow.naming import (
    EXT_OCCURRENCE,
    EXT_TRANSLATION,
    EXT_TRIGGER,
    PROFILE_TASK,
    TASK_BUSINESS_STATUS,
    TASK_IDENTIFIER,
    TASK_REASON,
)
from careflow.planning import ids
from careflow.planning.patient import PatientContext
from careflow.planning.planner import coding, role_concept
from careflow.programs.model import Coding, Program

REASON_DISPLAY = {
    "recurring": "Next occurrence of a recurring activity",
    "dependency": "Started when the activities it waits on were completed",
    "escalation": "Escalation of an overdue task",
    "observation": "A measurement crossed a programme threshold",
    "reassignment": "Reassigned after the task was declined",
    "review": "Review of the plan at the end of its period",
    "discharge": "Follow-up after a hospital stay",
}
BUSINESS_STATUS_DISPLAY = {"on-time": "On time", "overdue": "Overdue", "escalated": "Escalated"}


TRANSLATED_LANGUAGES = {"nl": "nl-BE", "fr": "fr-BE"}


def translated(en: str, nl: str, fr: str | None = None) -> tuple[str, dict[str, Any]]:
    """A string element in English with its Dutch (and French, when the programme has it)
    translation on the ``_element`` sibling: the standard HL7 translation extension, so any reader
    picks its language and a reader that knows none of them still has the English."""
    return en, {"extension": [
        {"url": EXT_TRANSLATION, "extension": [{"url": "lang", "valueCode": TRANSLATED_LANGUAGES[lang]},
                                               {"url": "content", "valueString": text}]}
        for lang, text in (("nl", nl), ("fr", fr)) if text
    ]}


def translations_of(element: Any) -> dict[str, str]:
    """The translations on an ``_element`` sibling, by language (``nl-BE`` -> ``nl``)."""
    out: dict[str, str] = {}
    for ext in (element or {}).get("extension") or () if isinstance(element, dict) else ():
        if not isinstance(ext, dict) or ext.get("url") != EXT_TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or () if isinstance(e, dict)}
        lang = str((parts.get("lang") or {}).get("valueCode") or "").split("-")[0]
        content = (parts.get("content") or {}).get("valueString")
        if lang and isinstance(content, str) and content:
            out.setdefault(lang, content)
    return out


def reason_concept(reason: str) -> dict[str, Any]:
    return {"coding": [{"system": TASK_REASON, "code": reason, "display": REASON_DISPLAY.get(reason, reason)}]}


def business_status(code: str) -> dict[str, Any]:
    return {"coding": [{"system": TASK_BUSINESS_STATUS, "code": code, "display": BUSINESS_STATUS_DISPLAY.get(code, code)}]}


def owner(program: Program, ctx: PatientContext, role_id: str) -> dict[str, Any]:
    """The care-team member holding ``role_id``; the patient's CareTeam when nobody does yet."""
    display = program.roles[role_id].title.en
    member = ctx.team.get(role_id)
    return {"reference": member or f"CareTeam/{ids.careteam_id(ctx.id)}", "display": display}


def role_of(task: dict[str, Any], program: Program) -> str | None:
    """The programme role a Task is for, read back from its ``performerType``."""
    for concept in task.get("performerType") or ():
        for role_id in program.roles:
            if concept.get("coding") == role_concept(program, role_id)["coding"]:
                return role_id
    return None


def triggered_task(
    program: Program,
    ctx: PatientContext,
    careplan_id: str,
    *,
    trigger_id: str,
    cause: str,
    role_id: str,
    reason: str,
    title_en: str,
    title_nl: str,
    description_en: str,
    description_nl: str,
    priority: str,
    opens: date,
    due: date,
    authored: date,
    focus: str,
    code: Coding | None = None,
    reason_reference: str | None = None,
    title_fr: str | None = None,
    description_fr: str | None = None,
) -> dict[str, Any]:
    """A new Task raised by ``trigger_id`` because of ``cause`` (the id of a Task or Observation)."""
    tid = ids.triggered_task_id(ctx.id, program.id, trigger_id, cause)
    description, description_ext = translated(description_en, description_nl, description_fr)
    concept: dict[str, Any] = {"coding": [coding(code)]} if code else {"coding": []}
    concept["text"] = title_en
    _, title_ext = translated(title_en, title_nl, title_fr)
    concept["_text"] = title_ext
    if not concept["coding"]:
        del concept["coding"]
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": tid,
        "meta": {"profile": [PROFILE_TASK]},
        "extension": [{"url": EXT_TRIGGER, "valueString": trigger_id}],
        "identifier": [{"system": TASK_IDENTIFIER, "value": f"{careplan_id}/{trigger_id}/{cause}"}],
        "basedOn": [{"reference": f"CarePlan/{careplan_id}"}],
        "status": "requested",
        "intent": "order",
        "priority": priority,
        "code": concept,
        "description": description,
        "_description": description_ext,
        "focus": {"reference": focus},
        "for": {"reference": f"Patient/{ctx.id}"},
        "authoredOn": authored.isoformat(),
        "lastModified": authored.isoformat(),
        "owner": owner(program, ctx, role_id),
        "performerType": [role_concept(program, role_id)],
        "reasonCode": reason_concept(reason),
        "restriction": {"period": {"start": opens.isoformat(), "end": due.isoformat()}},
    }
    if reason_reference:
        task["reasonReference"] = {"reference": reason_reference}
    return task


def reassigned_copy(
    program: Program,
    ctx: PatientContext,
    rejected: dict[str, Any],
    *,
    careplan_id: str,
    trigger_id: str,
    role_id: str,
    opens: date,
    due: date,
    authored: date,
) -> dict[str, Any]:
    """A fresh Task for ``role_id`` doing what the rejected one asked (the rejected one stays rejected,
    as FHIR Workflow expects: a Task's owner is not swapped under a decision already taken)."""
    task = copy.deepcopy(rejected)
    for key in ("meta", "businessStatus", "statusReason", "executionPeriod", "output", "note", "reasonReference",
                "requester", "partOf"):
        task.pop(key, None)
    task["meta"] = {"profile": [PROFILE_TASK]}
    task["id"] = ids.triggered_task_id(ctx.id, program.id, trigger_id, str(rejected["id"]))
    occurrence = [e for e in task.get("extension") or () if e.get("url") == EXT_OCCURRENCE]
    task["extension"] = occurrence + [{"url": EXT_TRIGGER, "valueString": trigger_id}]
    task["identifier"] = [{"system": TASK_IDENTIFIER, "value": f"{careplan_id}/{trigger_id}/{rejected['id']}"}]
    task["status"] = "requested"
    task["focus"] = {"reference": f"Task/{rejected['id']}"}
    task["owner"] = owner(program, ctx, role_id)
    task["performerType"] = [role_concept(program, role_id)]
    task["reasonCode"] = reason_concept("reassignment")
    task["authoredOn"] = authored.isoformat()
    task["lastModified"] = authored.isoformat()
    task["restriction"] = {"period": {"start": opens.isoformat(), "end": due.isoformat()}}
    return task


def with_business_status(task: dict[str, Any], code: str) -> dict[str, Any]:
    """A copy of ``task`` with a new businessStatus (the input is left untouched)."""
    out = dict(task)
    out["businessStatus"] = business_status(code)
    return out
