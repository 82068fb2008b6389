"""Inclusion as the Zorgzaam Leuven flow has it: propose, include, talk it through, then act.

1. **Proposal**: a team member (or the engine, when the region enrols by proposal) proposes a patient
   for one or more programmes: a Task (``intent: proposal``, code ``inclusion-proposal``) for the GP,
   or the care coach where the patient has no GP on the team, naming the programmes in ``input``.
2. **Inclusion**: the GP or care coach completes the proposal (rejecting it ends it; it is not
   proposed again). The plan is drawn up as a *draft*: the shared plan and the programme parts,
   with only the care-planning conversation (*zorgplangesprek*) opened.
3. **Conversation**: completing that Task with its outputs records what the patient wants: the
   patient's own Goals (``expressedBy`` the patient, referenced from ``output``), the level of
   self-management (*zelfregie*) and the coordination step (self -> care team -> care coach ->
   case manager). Only then is the plan active; its period starts that day, so nothing the sweep
   opens afterwards is overdue on creation.

Pure functions over FHIR dicts; the engine (``careflow.engine.inclusion``) reads and writes.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping

from careflow.naming import (
    COORDINATION_STEP,
    EXT_COORDINATION_STEP,
    EXT_SELF_MANAGEMENT,
    SELF_MANAGEMENT,
    TASK_KIND,
)
from careflow.planning import ids
from careflow.planning.patient import PatientContext
from careflow.planning.shared import is_shared_plan
from careflow.programs.durations import parse_duration
from careflow.programs.model import Program

PROPOSAL = "inclusion-proposal"
PROPOSAL_DUE_WITHIN = "P14D"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
SELF_MANAGEMENT_LEVELS = ("high", "moderate", "low")  # how much of the plan the patient steers
COORDINATION_STEPS = ("self", "care-team", "care-coach", "case-manager")  # who coordinates


def _nl(text: str) -> dict[str, Any]:
    return {"extension": [{"url": TRANSLATION, "extension": [{"url": "lang", "valueCode": "nl-BE"},
                                                             {"url": "content", "valueString": text}]}]}


def proposal_task(ctx: PatientContext, programs: Iterable[Program], today: date, *,
                  requester: str | None = None) -> dict[str, Any]:
    """The proposal to include ``ctx`` in ``programs``; its id is keyed by patient and programmes, so
    proposing the same thing twice is one Task (and a rejected proposal is not made again)."""
    progs = sorted(programs, key=lambda p: p.id)
    names_en = ", ".join(p.title.en for p in progs)
    names_nl = ", ".join(p.title.nl for p in progs)
    to = ctx.team.get("gp") or ctx.team.get("care-coach")
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": ids.proposal_id(ctx.id, [p.id for p in progs]),
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_KIND, "code": PROPOSAL, "display": "Proposal to include in a care programme"}],
                 "text": "Inclusion proposal"},
        "description": f"Proposed for inclusion in: {names_en}. Include the patient or reject the proposal.",
        "_description": _nl(f"Voorgesteld voor opname in: {names_nl}. Neem de patiënt op of wijs het voorstel af."),
        "for": {"reference": f"Patient/{ctx.id}"},
        "authoredOn": today.isoformat(),
        "lastModified": today.isoformat(),
        "restriction": {"period": {"start": today.isoformat(),
                                   "end": parse_duration(PROPOSAL_DUE_WITHIN).after(today).isoformat()}},
        "input": [{"type": {"text": "programme"}, "valueCanonical": p.canonical} for p in progs],
    }
    if to:
        task["owner"] = {"reference": to}
    elif ctx.organization:
        task["owner"] = {"reference": ctx.organization}
    if requester:
        task["requester"] = {"reference": requester}
    return task


def is_proposal(task: Mapping[str, Any]) -> bool:
    return any(c.get("system") == TASK_KIND and c.get("code") == PROPOSAL
               for c in (task.get("code") or {}).get("coding") or () if isinstance(c, dict))


def proposed_programs(task: Mapping[str, Any], programs: Mapping[str, Program]) -> list[Program]:
    """The loaded programmes a proposal names (by canonical URL, any version)."""
    urls = {str(i.get("valueCanonical", "")).split("|", 1)[0] for i in task.get("input") or () if isinstance(i, dict)}
    return [p for p in programs.values() if p.url in urls]


def patient_goals(task: Mapping[str, Any]) -> list[str]:
    """``Goal/<id>`` references among a conversation Task's outputs (the patient's own goals)."""
    out = []
    for o in task.get("output") or ():
        ref = ((o or {}).get("valueReference") or {}).get("reference")
        if isinstance(ref, str) and ref.startswith("Goal/") and ref not in out:
            out.append(ref)
    return out


def coded_output(task: Mapping[str, Any], system: str) -> dict[str, Any] | None:
    """The first output CodeableConcept carrying a coding of ``system``."""
    for o in task.get("output") or ():
        concept = (o or {}).get("valueCodeableConcept")
        if isinstance(concept, dict) and any(c.get("system") == system for c in concept.get("coding") or ()):
            return concept
    return None


def activated(plans: list[dict[str, Any]], conversation: Mapping[str, Any], today: date,
              programs: Mapping[str, Program], goals_expressed: list[str]) -> list[dict[str, Any]]:
    """The draft plans as they become active after the conversation: each part's period starts
    today (so its first Tasks are due from now), the shared plan gains the patient's goals, the
    self-management level and the coordination step."""
    out = []
    for plan in plans:
        if plan.get("status") != "draft":
            continue
        p = dict(plan)
        p["status"] = "active"
        if is_shared_plan(plan):
            p["period"] = {"start": today.isoformat()}
            have = list(plan.get("goal") or [])
            p["goal"] = have + [{"reference": g} for g in goals_expressed if {"reference": g} not in have]
            exts = [e for e in plan.get("extension") or () if e.get("url") not in (EXT_SELF_MANAGEMENT, EXT_COORDINATION_STEP)]
            for url, system in ((EXT_SELF_MANAGEMENT, SELF_MANAGEMENT), (EXT_COORDINATION_STEP, COORDINATION_STEP)):
                concept = coded_output(conversation, system)
                if concept is not None:
                    exts.append({"url": url, "valueCodeableConcept": concept})
            if exts:
                p["extension"] = exts
        else:
            program = next((pr for pr in programs.values()
                            if any(str(c).split("|", 1)[0] == pr.url for c in plan.get("instantiatesCanonical") or ())), None)
            if program is not None:
                p["period"] = {"start": today.isoformat(), "end": parse_duration(program.plan_period).after(today).isoformat()}
        out.append(p)
    return out


def conversation_problems(conversation: Mapping[str, Any], goals: Mapping[str, Mapping[str, Any]], patient_id: str) -> list[str]:
    """Why a conversation's outputs cannot activate the plan (empty when they can): each referenced
    Goal must exist, be the patient's and be expressed by the patient."""
    problems = []
    for ref in patient_goals(conversation):
        goal = goals.get(ref.split("/", 1)[1])
        if goal is None:
            problems.append(f"{ref} does not exist")
        elif (goal.get("subject") or {}).get("reference") != f"Patient/{patient_id}":
            problems.append(f"{ref} is another patient's goal")
        elif (goal.get("expressedBy") or {}).get("reference") != f"Patient/{patient_id}":
            problems.append(f"{ref} is not expressed by the patient")
    return problems
