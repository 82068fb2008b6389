"""When a patient's record stops being a living, current patient: the plan ends with them.

A death (``Patient.deceased[x]``), a merge into another record (``link`` replaced-by) or a record
set inactive ends every open CarePlan of the patient and cancels every open Task with the reason in
``statusReason``, so no nurse is sent to a patient who has died and no worklist keeps their Tasks.
The team is told by one Communication addressed to the CareTeam and its members.

Pure: the rule returns frozen actions; the engine applies them in one unit of work with If-Match.
A plan ends as ``revoked`` (terminated before its period ran out, in FHIR's words) with a note: the
engine otherwise never ends care on its own (see ``plan_status``), and a death is the one fact that
needs no clinical decision to end it.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from careflow.planning import ids
from careflow.planning.patient import is_deceased, replaced_by
from careflow.triggers.actions import Action, CreateResource, UpdatePlan, UpdateTask, version_of
from careflow.triggers.task_facts import FINAL_STATUSES

ENDED_PLAN_STATUSES = frozenset({"revoked", "completed", "entered-in-error"})
COMMUNICATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"


def end_reason(patient: dict[str, Any]) -> str | None:
    """Why care ends for this Patient record, in words for the team; None while it is a current patient."""
    if is_deceased(patient):
        when = str(patient.get("deceasedDateTime") or "")[:10]
        return f"the patient died{' on ' + when if when else ''}"
    other = replaced_by(patient)
    if other:
        return f"the record was merged into {other}"
    if patient.get("active") is False:
        return "the Patient record was made inactive"
    return None


def end_of_care_actions(
    patient: dict[str, Any],
    careplans: Iterable[dict[str, Any]],
    tasks: Iterable[dict[str, Any]],
    careteam: dict[str, Any] | None,
    today: date,
) -> list[Action]:
    """The writes that end the care of ``patient``: nothing when the record is still current or
    everything has ended already (so replaying the event changes nothing)."""
    reason = end_reason(patient)
    if reason is None:
        return []
    pid = str(patient.get("id"))
    out: list[Action] = []
    for task in tasks:
        if task.get("status") in FINAL_STATUSES:
            continue
        t = dict(task)
        t["status"] = "cancelled"
        t["statusReason"] = {"text": f"Cancelled: {reason}"}
        t.pop("businessStatus", None)
        out.append(UpdateTask(t, version_of(task), "ended"))
    ended: list[str] = []
    for plan in careplans:
        if plan.get("status") in ENDED_PLAN_STATUSES:
            continue
        p = dict(plan)
        p["status"] = "revoked"
        period = dict(p.get("period") or {})
        if not period.get("end") or str(period["end"]) > today.isoformat():
            period["end"] = max(today.isoformat(), str(period.get("start") or ""))
        p["period"] = period
        p["note"] = [*(p.get("note") or []), {"time": today.isoformat(), "text": f"Plan ended: {reason}."}]
        out.append(UpdatePlan(p, version_of(plan), ("ended",)))
        ended.append(str(plan.get("title") or plan.get("id")))
    if not out:
        return []
    recipients = []
    if careteam and careteam.get("id"):
        recipients.append({"reference": f"CareTeam/{careteam['id']}"})
        for part in careteam.get("participant") or ():
            ref = (part.get("member") or {}).get("reference") if isinstance(part, dict) else None
            if isinstance(ref, str) and not ref.startswith("Patient/") and {"reference": ref} not in recipients:
                recipients.append({"reference": ref})
    cancelled = sum(isinstance(a, UpdateTask) for a in out)
    text = (f"Care ended: {reason}. " + (f"Ended plans: {', '.join(ended)}. " if ended else "")
            + f"{cancelled} open task{'s' if cancelled != 1 else ''} cancelled.")
    out.append(CreateResource({
        "resourceType": "Communication",
        "id": ids.end_of_care_id(pid),
        "status": "completed",
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": "notification",
                                  "display": "Notification"}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "sent": today.isoformat(),
        "recipient": recipients,
        "payload": [{"contentString": text}],
    }, "ended"))
    return out
