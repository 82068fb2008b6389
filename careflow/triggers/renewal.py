"""Renewal: at the end of its period a programme's plan is reviewed, and renewed while the patient
still qualifies.

* ``REVIEW_LEAD`` before a part's ``period.end`` the sweep opens one review Task (trigger
  ``plan-review``, reason ``review``) for the GP, or the care coach when the programme has no GP role,
  focused on the plan and due on the end day. Its id is keyed by the plan and the end day, so each
  period is reviewed once.
* Completing the review renews the plan when the patient still qualifies (eligibility as on that
  day, and a current Patient record): the same CarePlan gets a new ``period.end`` one plan period
  later and a note, so its history (``_history``) keeps every period, its recurring activities go on
  counting, and seasonal ones open again next season. Rejecting the review, or a patient who no
  longer qualifies, lets the plan complete as usual once its open Tasks are done.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from careflow.planning.eligibility import ineligibility, record_problem
from careflow.planning.patient import PatientContext
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program
from careflow.triggers.actions import Action, CreateTask, UpdatePlan, version_of
from careflow.triggers.building import triggered_task
from careflow.triggers.task_facts import TaskFacts, parse_date

REVIEW_TRIGGER = "plan-review"
REVIEW_LEAD = "P1M"


def review_role(program: Program) -> str:
    for role in ("gp", "care-coach"):
        if role in program.roles:
            return role
    return next(iter(program.roles))


def review_actions(program: Program, careplan: dict[str, Any], facts: list[TaskFacts], ctx: PatientContext,
                   today: date) -> list[Action]:
    """The review Task of this period, once ``today`` is within ``REVIEW_LEAD`` of the plan's end."""
    end = parse_date((careplan.get("period") or {}).get("end"))
    if careplan.get("status") != "active" or end is None or today < parse_duration(REVIEW_LEAD).before(end):
        return []
    cause = end.isoformat()
    role = review_role(program)
    title = program.title
    task = triggered_task(
        program, ctx, str(careplan["id"]), trigger_id=REVIEW_TRIGGER, cause=cause, role_id=role, reason="review",
        title_en=f"Review the care plan: {title.en}", title_nl=f"Zorgplan herbekijken: {title.nl}",
        title_fr=f"Revoir le plan de soins : {title.in_language('fr')}",
        description_en=(f"The plan period ends on {cause}. Review it with the patient: complete this task to renew "
                        "the plan for another period, or reject it to let the plan end."),
        description_nl=(f"De zorgplanperiode loopt af op {cause}. Bekijk het plan met de patiënt: rond deze taak af "
                        "om het plan te verlengen, of wijs ze af om het plan te laten aflopen."),
        description_fr=(f"La période du plan se termine le {cause}. Revoyez-le avec le patient : clôturez cette tâche "
                        "pour renouveler le plan pour une nouvelle période, ou refusez-la pour laisser le plan se terminer."),
        priority="routine", opens=today, due=max(end, today), authored=today, focus=f"CarePlan/{careplan['id']}",
    )
    if any(f.id == task["id"] for f in facts):
        return []
    return [CreateTask(task, "review", role, REVIEW_TRIGGER, f"CarePlan/{careplan['id']}")]


def is_review(task: dict[str, Any]) -> bool:
    return any(e.get("url", "").endswith("/task-trigger") and e.get("valueString") == REVIEW_TRIGGER
               for e in task.get("extension") or () if isinstance(e, dict))


def renewal(program: Program, careplan: dict[str, Any], review: dict[str, Any], ctx: PatientContext,
            today: date) -> UpdatePlan | None:
    """The renewed plan after its review was completed, or None when it is not renewed."""
    if review.get("status") != "completed" or careplan.get("status") != "active":
        return None
    end = parse_date((careplan.get("period") or {}).get("end"))
    reviewed = parse_date(((review.get("restriction") or {}).get("period") or {}).get("end"))
    if end is None or reviewed != end:
        return None  # a review of an earlier period: that one was renewed already
    if record_problem(ctx) or ineligibility(program, ctx, today) is not None:
        return None
    new_end = parse_duration(program.plan_period).after(end)
    plan = dict(careplan)
    plan["period"] = {**(careplan.get("period") or {}), "end": new_end.isoformat()}
    plan["note"] = [*(careplan.get("note") or []),
                    {"time": today.isoformat(), "text": f"Reviewed and renewed until {new_end.isoformat()}."}]
    return UpdatePlan(plan, version_of(careplan), ("renewed",))
