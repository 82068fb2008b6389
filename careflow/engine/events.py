"""Event-driven follow-up through the transactional outbox.

``install(repo)`` adds a listener that records, in the same transaction as the write:

* ``observation.created`` {"id"} for every new Observation;
* ``task.status`` {"id", "status"} when a Task's status changes to completed or rejected;
* ``patient.ended`` {"id"} when a Patient record stops being a current, living patient (died,
  merged into another record, made inactive): the patient's plans end and open Tasks are cancelled.

``process_events`` claims events, runs the observation / task-event rules and applies their actions,
then marks the events done. Every action is idempotent (deterministic ids, If-Match), so a crash
between applying and marking done only replays harmless work. An event whose plan was edited
concurrently is left unmarked: the outbox lease hands it out again later, with fresh data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from careflow.access.principal import SYSTEM
from careflow.engine import inclusion
from careflow.engine.apply import apply_actions
from careflow.engine.context import load_contexts, program_of
from careflow.engine.counts import Counts
from careflow.engine.reading import ref_id, search_all
from careflow.engine.sweep import count_applied
from careflow.errors import Gone, NotFound, VersionConflict
from careflow.planning import ids
from careflow.planning.carers import is_carer, with_carers
from careflow.planning.inclusion import is_proposal, proposed_programs
from careflow.planning.shared import Part, sharing
from careflow.population.case_finding import is_case_finding
from careflow.programs.model import Program
from careflow.store.port import Action, Repository, Stored, UnitOfWork
from careflow.triggers.actions import Action as RuleAction
from careflow.triggers.discharge import discharge_actions, is_discharge
from careflow.triggers.end_of_care import end_of_care_actions, end_reason
from careflow.triggers.observations import history_codes, history_since, observation_actions
from careflow.triggers.schedule import plan_period
from careflow.triggers.task_events import task_event_actions

OBSERVATION_CREATED = "observation.created"
TASK_STATUS = "task.status"
PATIENT_ENDED = "patient.ended"
DISCHARGED = "encounter.discharged"
CARER_CHANGED = "relatedperson.carer"
SUBSCRIPTION_TOPICS = ("subscription.resource", "subscription.changed")
WATCHED_TASK_STATUSES = frozenset({"completed", "rejected"})
_INSTALLED_ATTR = "_careflow_engine_events"


def outbox_listener(action: Action, stored: Stored, uow: UnitOfWork) -> None:
    """Record the events the follow-up rules react to (runs inside the writing transaction)."""
    if stored.resource is None:
        return
    if stored.type == "Observation" and action == "create":
        uow.outbox_add(OBSERVATION_CREATED, {"id": stored.id})
    elif stored.type == "Patient" and action == "update" and end_reason(stored.resource):
        try:
            before = uow.vread("Patient", stored.id, stored.version - 1).resource or {}
        except NotFound:
            before = {}
        if end_reason(before) is None:
            uow.outbox_add(PATIENT_ENDED, {"id": stored.id})
    elif stored.type == "RelatedPerson" and action in ("create", "update"):
        was = False
        if action == "update":
            try:
                was = is_carer(uow.vread("RelatedPerson", stored.id, stored.version - 1).resource or {})
            except NotFound:
                was = False
        if was or is_carer(stored.resource):
            uow.outbox_add(CARER_CHANGED, {"id": stored.id})
    elif stored.type == "Encounter" and action in ("create", "update"):
        before: dict[str, Any] | None = None
        if action == "update":
            try:
                before = uow.vread("Encounter", stored.id, stored.version - 1).resource or {}
            except NotFound:
                before = None
        if is_discharge(stored.resource, before):
            uow.outbox_add(DISCHARGED, {"id": stored.id})
    elif stored.type == "Task" and action == "update":
        status = stored.resource.get("status")
        if status not in WATCHED_TASK_STATUSES:
            return
        try:
            before = uow.vread("Task", stored.id, stored.version - 1).resource or {}
        except NotFound:
            before = {}
        if before.get("status") != status:
            uow.outbox_add(TASK_STATUS, {"id": stored.id, "status": status})


def install(repo: Repository) -> None:
    """Register the outbox listener on ``repo`` once (calling it again is a no-op)."""
    if getattr(repo, _INSTALLED_ATTR, False):
        return
    repo.add_listener(outbox_listener)
    setattr(repo, _INSTALLED_ATTR, True)


def _apply(repo: Repository, actions: list[RuleAction], counts: Counts, program: str, hood: str | None) -> None:
    if not actions:
        return
    with repo.unit_of_work(SYSTEM) as uow:
        done = apply_actions(uow, actions)
    count_applied(counts, done, program, hood)


def _active_plans(repo: Repository, patient_id: str, programs: Mapping[str, Program]) -> list[tuple[Program, dict[str, Any]]]:
    out = []
    for s in search_all(repo, "CarePlan", [("patient", patient_id), ("status", "active")]):
        program = program_of(s.resource or {}, programs)
        if program is not None and s.resource:
            out.append((program, s.resource))
    return out


def _earlier(repo: Repository, patient_id: str, obs: dict[str, Any], since: datetime,
             programs: list[Program]) -> list[dict[str, Any]]:
    """The patient's Observations since ``since`` of the codes the rules on ``obs`` read (a rule may name
    several codes for one measurement, so this is wider than the codes ``obs`` itself carries)."""
    codes = ",".join(history_codes(obs, programs))
    if not codes:
        return []
    found: dict[str, dict[str, Any]] = {}
    for param in ("code", "component-code"):
        params = [("patient", patient_id), (param, codes), ("date", f"ge{since.isoformat()}")]
        for s in search_all(repo, "Observation", params):
            if s.resource and s.id != obs.get("id"):
                found[s.id] = s.resource
    return [found[k] for k in sorted(found)]


def handle_observation(repo: Repository, programs: Mapping[str, Program], observation_id: str, now: datetime,
                       counts: Counts) -> None:
    obs = repo.read("Observation", observation_id).resource or {}
    pid = ref_id(obs.get("subject"), "Patient")
    if not pid:
        counts.add("skipped")
        return
    plans = _active_plans(repo, pid, programs)
    if not plans:
        counts.add("skipped")
        return
    since = history_since(obs, [p for p, _ in plans])
    earlier: list[dict[str, Any]] = []
    if since is not None:
        earlier = _earlier(repo, pid, obs, since, [p for p, _ in plans])
    contexts, _ = load_contexts(repo, [pid], programs)
    ctx = contexts.get(pid)
    if ctx is None:
        counts.add("skipped")
        return
    _apply_per_program(repo, observation_actions(obs, earlier, plans, ctx, now), plans, counts, ctx.neighbourhood)


def _apply_per_program(repo: Repository, actions: list[RuleAction], plans: list[tuple[Program, dict[str, Any]]],
                       counts: Counts, hood: str | None) -> None:
    """Apply a rule's actions over several plans, one unit of work and count per programme."""
    by_program: dict[str, list[RuleAction]] = {}
    plan_program = {str(cp["id"]): p.id for p, cp in plans}
    for a in actions:
        cid = (ref_id((a.resource.get("basedOn") or [{}])[0], "CarePlan") if a.resource.get("resourceType") == "Task"
               else a.resource.get("id"))
        by_program.setdefault(plan_program.get(str(cid), "?"), []).append(a)
    for program_id, acts in by_program.items():
        _apply(repo, acts, counts, program_id, hood)


def handle_carer(repo: Repository, related_id: str, now: datetime, counts: Counts) -> None:
    """A mantelzorger added, changed or ended: the patient's CareTeam follows (when it exists)."""
    related = repo.read("RelatedPerson", related_id).resource or {}
    pid = ref_id(related.get("patient"), "Patient")
    try:
        team = repo.read("CareTeam", ids.careteam_id(pid)) if pid else None
    except (NotFound, Gone):
        team = None  # no plan yet: enrolment adds the carer with the team
    merged = with_carers(team.resource or {}, [related], now.date()) if team is not None and team.resource else None
    if merged is None or team is None:
        counts.add("skipped")
        return
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(merged, if_match=team.version)
    counts.add("team-updated")


def handle_discharge(repo: Repository, programs: Mapping[str, Program], encounter_id: str, now: datetime,
                     counts: Counts) -> None:
    """Transitional care: the follow-up the patient's programmes ask for after a hospital stay."""
    encounter = repo.read("Encounter", encounter_id).resource or {}
    pid = ref_id(encounter.get("subject"), "Patient")
    plans = _active_plans(repo, pid, programs) if pid else []
    contexts, _ = load_contexts(repo, [pid], programs) if plans and pid else ({}, {})
    ctx = contexts.get(pid or "")
    if ctx is None:
        counts.add("skipped")
        return
    _apply_per_program(repo, discharge_actions(encounter, plans, ctx, now), plans, counts, ctx.neighbourhood)
    counts.add("discharges")


def handle_task(repo: Repository, programs: Mapping[str, Program], task_id: str, now: datetime, counts: Counts) -> None:
    task = repo.read("Task", task_id).resource or {}
    if is_proposal(task):  # completed: the patient is included; rejected: the proposal ends there
        if task.get("status") == "completed":
            inclusion.include(repo, programs, task, now, counts)
        else:
            counts.add("proposals-rejected")
        return
    if is_case_finding(task):  # accepted: the inclusion path for the programme it names, if loaded
        if task.get("status") == "completed" and proposed_programs(task, programs):
            inclusion.include(repo, programs, task, now, counts)
        else:
            counts.add("case-finding-" + ("accepted" if task.get("status") == "completed" else "closed"))
        return
    if inclusion.is_conversation(task) and inclusion.activate(repo, programs, task, now, counts):
        return
    cid = next((c for ref in task.get("basedOn") or () if (c := ref_id(ref, "CarePlan"))), None)
    if cid is None:
        counts.add("skipped")
        return
    careplan = repo.read("CarePlan", cid).resource or {}
    program = program_of(careplan, programs)
    pid = ref_id(careplan.get("subject"), "Patient")
    if program is None or pid is None or careplan.get("status") != "active":
        counts.add("skipped")
        return
    tasks = [s.resource for s in search_all(repo, "Task", [("based-on", f"CarePlan/{cid}")]) if s.resource]
    contexts, _ = load_contexts(repo, [pid], programs)
    ctx = contexts.get(pid)
    if ctx is None:
        counts.add("skipped")
        return
    current = next((t for t in tasks if t.get("id") == task_id), task)
    parts = [Part(p, str(cp["id"]), plan_period(cp)[0] or now.date()) for p, cp in _active_plans(repo, pid, programs)]
    share = sharing(parts, ctx, now.date())
    _apply(repo, task_event_actions(program, careplan, tasks, current, ctx, now, share), counts, program.id,
           ctx.neighbourhood)


def handle_patient_end(repo: Repository, patient_id: str, now: datetime, counts: Counts) -> None:
    """End the care of a patient who died or whose record was merged or made inactive."""
    patient = repo.read("Patient", patient_id).resource or {}
    plans = [s.resource for s in search_all(repo, "CarePlan", [("patient", patient_id)]) if s.resource]
    tasks = [s.resource for s in search_all(repo, "Task", [("patient", patient_id)]) if s.resource]
    teams = [s.resource for s in search_all(repo, "CareTeam", [("patient", patient_id)]) if s.resource]
    actions = end_of_care_actions(patient, plans, tasks, teams[0] if teams else None, now.date())
    if not actions:
        counts.add("skipped")
        return
    with repo.unit_of_work(SYSTEM) as uow:
        done = apply_actions(uow, actions)
    counts.add("care-ended")
    counts.add("tasks-cancelled", len(done.task_updates))
    counts.add("plans-ended", len(done.plan_updates))


def process_events(repo: Repository, programs: Mapping[str, Program], now: datetime, limit: int = 100) -> Counts:
    """Claim up to ``limit`` outbox events and apply the follow-up rules they call for."""
    counts = Counts()
    done: list[int] = []
    try:
        # the Subscription matcher (careflow.engine.subscriptions) drains its own topics of this outbox
        for event in repo.outbox_claim(limit, exclude=SUBSCRIPTION_TOPICS):
            counts.add("events")
            rid = str(event.payload.get("id", ""))
            try:
                if event.topic == OBSERVATION_CREATED:
                    handle_observation(repo, programs, rid, now, counts)
                elif event.topic == TASK_STATUS:
                    handle_task(repo, programs, rid, now, counts)
                elif event.topic == CARER_CHANGED:
                    handle_carer(repo, rid, now, counts)
                elif event.topic == DISCHARGED:
                    handle_discharge(repo, programs, rid, now, counts)
                elif event.topic == PATIENT_ENDED:
                    handle_patient_end(repo, rid, now, counts)
                else:
                    counts.add("skipped")
            except (NotFound, Gone):
                counts.add("skipped")
            except VersionConflict:
                counts.add("conflict")
                continue  # not marked done: the lease hands it out again, to be re-read fresh
            done.append(event.id)
    finally:
        if done:
            repo.outbox_done(done)
    return counts
