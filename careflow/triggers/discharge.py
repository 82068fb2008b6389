"""Transitional care: when a patient goes home after a hospital stay, the follow-up the programmes
ask for (``when: {discharged: hospital}``) is raised within days.

* A discharge is an Encounter that reaches ``finished`` with an inpatient class (HL7 v3 ActCode
  ``IMP``, ``ACUTE``, ``NONAC``) or a ``hospitalization`` element; it counts once, the first time it
  is finished (a later edit of the same stay raises nothing).
* Each active plan whose programme has a ``discharged`` trigger gets that trigger's ``then``: a new
  Task (``create_task``), extra Tasks of activities (``start``), the attention flag. The Tasks open
  on the day the engine learns of the discharge and are due ``due_within`` later, so a discharge
  reported late is still followed up in full rather than arriving overdue. Ids are keyed by the
  trigger and the Encounter, so handling the event twice creates nothing twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping, Sequence

from careflow.planning.patient import PatientContext
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask
from careflow.triggers.plan_status import plan_update
from careflow.triggers.sweep import day_of
from careflow.triggers.task_events import fired

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
INPATIENT = frozenset({"IMP", "ACUTE", "NONAC"})


def is_hospital_stay(encounter: Mapping[str, Any]) -> bool:
    cls = encounter.get("class") or {}
    if isinstance(cls, dict) and cls.get("code") in INPATIENT:
        return True
    return isinstance(encounter.get("hospitalization"), dict) and bool(encounter["hospitalization"])


def is_discharge(encounter: Mapping[str, Any], before: Mapping[str, Any] | None) -> bool:
    """Whether this version of the Encounter is the discharge (``before``: the previous version)."""
    if encounter.get("status") != "finished" or not is_hospital_stay(encounter):
        return False
    return before is None or before.get("status") != "finished"


def discharge_actions(
    encounter: dict[str, Any],
    plans: Sequence[tuple[Program, dict[str, Any]]],
    ctx: PatientContext,
    now: datetime | date,
) -> list[Action]:
    """What the patient's active ``plans`` (programme, CarePlan) call for after this discharge."""
    if not encounter.get("id") or encounter.get("status") != "finished" or not is_hospital_stay(encounter):
        return []
    today = day_of(now)
    ref = f"Encounter/{encounter['id']}"
    out: list[Action] = []
    for program, careplan in plans:
        if careplan.get("status") != "active":
            continue
        created: list[CreateTask] = []
        flag = False
        for trigger in program.triggers:
            if trigger.when.discharged is None:
                continue
            tasks, flags = fired(program, careplan, ctx, trigger, cause=str(encounter["id"]), focus=ref,
                                 reason="discharge", today=today)
            created += tasks
            flag = flag or flags
        out += created
        update = plan_update(careplan, today, new_tasks=[c.resource for c in created], raise_flag=flag)
        if update is not None:
            out.append(update)
    return out
