"""What happens when a person finishes a Task: completion starts what waited on it, a refusal
hands the work to someone else.

* completed X: activities with ``after`` open as soon as all their prerequisites are done (the same
  dependency rule the sweep runs, applied at once rather than at the next sweep), and every
  ``completed: X`` trigger starts its ``then.start`` activities: one extra Task per activity, opening on
  the completion day (the trigger says "now", so the activity's own ``timing.start`` offset, which
  counts from the plan start, does not apply), keyed by (trigger, completed Task) so it is raised once.
  When the dependency rule opens the same activity in the same evaluation, the triggered start is
  left out (one Task for one reason to act).
* rejected X: each ``rejected: X | any`` trigger with ``reassign_to`` raises a NEW Task for that role
  copying the rejected one (FHIR Workflow: the rejected Task stays rejected as the record of the
  refusal; swapping its owner would rewrite history). It keeps the occurrence number, so completing the
  copy counts for dependencies as completing the original. It is due at the original due day, or
  after the activity's ``due_within`` from today when that day has passed. A Task rejected by the role
  it would be reassigned to is not bounced back to the same role.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from careflow.naming import BASE, EXT_OCCURRENCE, EXT_TRIGGER, TASK_IDENTIFIER
from careflow.planning import ids
from careflow.planning.patient import PatientContext
from careflow.planning.planner import applies, build_task
from careflow.planning.shared import NO_SHARING, Sharing
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program, Trigger
from careflow.triggers.actions import Action, CreateResource, CreateTask
from careflow.triggers.building import reason_concept, reassigned_copy, role_of, triggered_task
from careflow.triggers.plan_status import plan_update
from careflow.triggers.renewal import is_review, renewal
from careflow.triggers.schedule import openings, plan_period
from careflow.triggers.sweep import day_of
from careflow.triggers.task_facts import task_facts


def started_task(
    program: Program, activity_id: str, ctx: PatientContext, careplan_id: str, *, trigger_id: str, cause: str,
    focus: str, opens: date, today: date,
) -> dict[str, Any]:
    """An extra Task of ``activity_id`` started by a trigger (not one of its scheduled occurrences).

    Its id is keyed by the trigger, the activity and the cause: a trigger that starts two activities,
    or starts one beside the task it creates, gets a Task for each."""
    task = build_task(program, program.activity(activity_id), ctx, careplan_id, 1, opens, today)
    task["id"] = ids.triggered_task_id(ctx.id, program.id, f"{trigger_id}:{activity_id}", cause)
    task["extension"] = [e for e in task["extension"] if e.get("url") != EXT_OCCURRENCE]
    task["extension"].append({"url": EXT_TRIGGER, "valueString": trigger_id})
    task["identifier"] = [{"system": TASK_IDENTIFIER, "value": f"{careplan_id}/{trigger_id}/{cause}"}]
    task["reasonCode"] = reason_concept("dependency")
    task["focus"] = {"reference": focus}
    return task


def starts(
    program: Program, careplan: dict[str, Any], ctx: PatientContext, trigger_id: str, activity_ids: list[str],
    *, cause: str, focus: str, opens: date, today: date, skip: frozenset[str] | set[str] = frozenset(),
) -> list[CreateTask]:
    """``then.start`` of a trigger fired by ``cause``: one extra Task per activity the patient's plan
    includes (``only_if``), except those in ``skip``."""
    start, _ = plan_period(careplan)
    out = []
    for activity_id in activity_ids:
        activity = program.activity(activity_id)
        if activity_id in skip or not applies(activity, program, ctx, start or today):
            continue
        task = started_task(program, activity_id, ctx, str(careplan["id"]), trigger_id=trigger_id, cause=cause,
                            focus=focus, opens=opens, today=today)
        out.append(CreateTask(task, "dependency", activity.role, trigger_id, focus))
    return out


OUTPUT_OBSERVATION_ID = "task-output"
# the LOINC codes of FHIR R4's vital-signs profiles: such an output is a vital-signs Observation (so the
# disciplines the access matrix lets see vital signs see it too)
VITAL_SIGNS = frozenset({"85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "8302-2", "9843-4", "29463-7",
                         "39156-5", "85354-9", "8480-6", "8462-4"})
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def output_observations(task: dict[str, Any], careplan_id: str, today: date) -> list[CreateResource]:
    """A completed Task's measured outputs as Observations, so the programme's observation rules see
    them like any other measurement (a weight entered while completing a home visit can raise the
    weight-gain Task). An output counts when it has a coded ``type`` (the measurement, e.g. LOINC
    29463-7) and a ``valueQuantity``; its id is keyed by the Task and the output's place, so
    handling the completion twice records it once."""
    pid = ((task.get("for") or {}).get("reference") or "")
    if not pid.startswith("Patient/"):
        return []
    when = ((task.get("executionPeriod") or {}).get("end")) or task.get("lastModified") or today.isoformat()
    out = []
    for n, o in enumerate(task.get("output") or ()):
        if not isinstance(o, dict) or not isinstance(o.get("valueQuantity"), dict):
            continue
        codings = [c for c in (o.get("type") or {}).get("coding") or () if isinstance(c, dict) and c.get("code")]
        if not codings:
            continue
        vital = any(c.get("system") == "http://loinc.org" and c.get("code") in VITAL_SIGNS for c in codings)
        category = "vital-signs" if vital else "exam"
        out.append(CreateResource({
            "resourceType": "Observation",
            "id": ids.task_output_id(str(task.get("id")), n),
            "identifier": [{"system": f"{BASE}/sid/{OUTPUT_OBSERVATION_ID}", "value": f"{task.get('id')}/{n}"}],
            "basedOn": [{"reference": f"CarePlan/{careplan_id}"}],
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
            "code": {"coding": codings, **({"text": o["type"]["text"]} if o["type"].get("text") else {})},
            "subject": {"reference": pid},
            "effectiveDateTime": when,
            "valueQuantity": o["valueQuantity"],
            "note": [{"text": f"Recorded when completing Task/{task.get('id')}."}],
        }, "task-output"))
    return out


def fired(
    program: Program, careplan: dict[str, Any], ctx: PatientContext, trigger: Trigger, *, cause: str, focus: str,
    reason: str, today: date,
) -> tuple[list[CreateTask], bool]:
    """What a trigger fired by ``cause`` (an Observation, an Encounter) does to one plan: its
    ``create_task`` (keyed by trigger and cause, reason ``reason``, focused on ``focus``), its ``start``s,
    and whether it raises the plan's flag. The Tasks open today, due ``due_within`` later."""
    then = trigger.then
    created: list[CreateTask] = []
    new = then.create_task
    if new is not None:
        task = triggered_task(
            program, ctx, str(careplan["id"]),
            trigger_id=trigger.id, cause=cause, role_id=new.role, reason=reason,
            title_en=new.title.en, title_nl=new.title.nl, title_fr=new.title.fr,
            description_en=(new.description or new.title).en, description_nl=(new.description or new.title).nl,
            description_fr=(new.description or new.title).fr,
            priority=new.priority, opens=today, due=parse_duration(new.due_within).after(today),
            authored=today, focus=focus, code=new.code, reason_reference=focus,
        )
        created.append(CreateTask(task, reason, new.role, trigger.id, focus))
    if then.start:
        created += starts(program, careplan, ctx, trigger.id, then.start, cause=cause, focus=focus, opens=today,
                          today=today)
    return created, then.flag_plan


def task_event_actions(
    program: Program,
    careplan: dict[str, Any],
    tasks: list[dict[str, Any]],
    task: dict[str, Any],
    ctx: PatientContext,
    now: datetime | date,
    share: Sharing = NO_SHARING,
) -> list[Action]:
    """Actions for ``task`` (one of ``tasks``, as now stored) having become completed or rejected."""
    if careplan.get("status") != "active":
        return []
    today = day_of(now)
    facts = [task_facts(t, program) for t in tasks]
    f = task_facts(task, program)
    known = {x.id for x in facts}
    created: list[CreateTask] = []
    recorded: list[CreateResource] = []
    if f.status == "completed":
        recorded = output_observations(task, str(careplan["id"]), today)
        created = [c for c in openings(program, careplan, facts, ctx, today, only_dependent=True, share=share) if c.id not in known]
        opened_ids = {a for c in created if (a := task_facts(c.resource, program).activity) is not None}
        for trigger in program.triggers:
            if trigger.when.completed is None or trigger.when.completed != f.activity or not trigger.then.start:
                continue
            created += [c for c in starts(program, careplan, ctx, trigger.id, trigger.then.start, cause=f.id,
                                          focus=f"Task/{f.id}", opens=f.completed_on or today, today=today,
                                          skip=opened_ids) if c.id not in known]
    elif f.status == "rejected" and not is_review(task):  # a rejected review means: let the plan end
        for trigger in program.triggers:
            rule = trigger.when.rejected
            role = trigger.then.reassign_to
            if rule is None or role is None or rule not in ("any", f.activity) or role_of(task, program) == role:
                continue
            due = f.due if f.due is not None and f.due >= today else None
            if due is None:
                within = program.activity(f.activity).timing.due_within if f.activity else "P14D"
                due = parse_duration(within).after(today)
            copy = reassigned_copy(program, ctx, task, careplan_id=str(careplan["id"]), trigger_id=trigger.id,
                                   role_id=role, opens=today, due=due, authored=today)
            if copy["id"] not in known:
                created.append(CreateTask(copy, "reassignment", role, trigger.id, f"Task/{f.id}"))
    out: list[Action] = [*created, *recorded]
    new = [c.resource for c in created]
    renewed = renewal(program, careplan, task, ctx, today) if f.status == "completed" and is_review(task) else None
    plan = renewed.resource if renewed is not None else careplan
    update = plan_update(plan, today, new_tasks=new, all_tasks=[*tasks, *new])
    if update is not None and renewed is not None:
        update = replace(update, changes=(*renewed.changes, *update.changes))
    update = update or renewed
    if update is not None:
        out.append(update)
    return out
