"""Enrolment: find the patients a programme is for and give each a plan, once.

Atomic per patient (one unit of work writes the patient's CareTeam, Goals, CarePlans and first
Tasks, or nothing), idempotent by the planner's deterministic ids: a patient already holding a
programme's CarePlan is left alone, and re-running enrolment changes nothing. A patient who later
qualifies for another programme gets that plan, sharing the existing CareTeam, to which the new
programme's roles are added (existing participants are never changed), and the new part joins the
patient's one shared plan: its goals are added to the whole, and an activity the patient already has
open through another programme (the flu vaccination, the care-planning conversation) is not opened
again (``careflow.planning.shared``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any, Mapping, Sequence

from careflow.access.principal import SYSTEM
from careflow.engine.context import load_contexts, program_of
from careflow.engine.counts import Counts
from careflow.engine.inclusion import open_proposals
from careflow.engine.reading import by_ids, chunks, ref_id, search_pages
from careflow.engine.team import TeamDirectory, stable_hash
from careflow.errors import VersionConflict
from careflow.planning import ids
from careflow.planning.carers import with_carers
from careflow.planning.eligibility import eligible_programs, qualifying_conditions, record_problem
from careflow.planning.inclusion import proposal_task
from careflow.planning.patient import ConditionFact, PatientContext, condition_fact
from careflow.planning.planner import plan_all
from careflow.planning.shared import Part, is_shared_plan, shared_key
from careflow.programs.codes import ICD10, ICPC2
from careflow.programs.model import Program
from careflow.store.port import Repository, Stored
from careflow.triggers.schedule import plan_period
from careflow.triggers.task_facts import FINAL_STATUSES


def _code_params(programs: Mapping[str, Program]) -> str:
    """Condition ``code`` values: exact codes, and whole systems where codes match by prefix (ICD-10 I50
    covers I50.9), filtered precisely afterwards."""
    values: set[str] = set()
    for p in programs.values():
        for c in p.eligibility.conditions:
            values.add(f"{c.system}|" if c.system in (ICD10, ICPC2) else f"{c.system}|{c.code}")
    return ",".join(sorted(values))


def find_candidates(repo: Repository, programs: Mapping[str, Program], *, page_size: int = 500) -> list[str]:
    """Ids of patients with an active Condition coded for any active programme (sorted)."""
    active = {k: p for k, p in programs.items() if p.status == "active"}
    if not active:
        return []
    found: set[str] = set()
    for page in search_pages(repo, "Condition", [("code", _code_params(active))], page_size=page_size):
        for s in page.matches:
            cond = s.resource or {}
            pid = ref_id(cond.get("subject"), "Patient")
            if not pid or pid in found:
                continue
            fact: ConditionFact = condition_fact(cond)
            probe = PatientContext(id=pid, conditions=(fact,))
            if any(qualifying_conditions(p, probe) for p in active.values()):
                found.add(pid)
    return sorted(found)


def partition(ids_: Sequence[str], n: int) -> list[list[str]]:
    """``n`` parts by a stable hash of each id: the same patient always lands in the same part."""
    if n < 1:
        raise ValueError("the number of parts must be at least 1")
    parts: list[list[str]] = [[] for _ in range(n)]
    for pid in ids_:
        parts[stable_hash(pid) % n].append(pid)
    return parts


def _merged_careteam(existing: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any] | None:
    """The existing CareTeam plus the planned participants whose role it lacks; None if none is new."""
    have = [p.get("role") for p in existing.get("participant") or ()]
    new = [p for p in planned.get("participant") or () if p.get("role") not in have]
    if not new:
        return None
    out = dict(existing)
    out["participant"] = list(existing.get("participant") or []) + new
    return out


def _goal_codes(programs: Mapping[str, Program]) -> list[str]:
    return sorted({f"{t.measure.system}|{t.measure.code}" for p in programs.values() for g in p.goals for t in g.targets})


def _merged_shared_plan(existing: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any] | None:
    """The existing shared plan plus the new part's goals and conditions; None if nothing is new."""
    out = dict(existing)
    changed = False
    for element in ("goal", "addresses"):
        have = list(existing.get(element) or [])
        new = [r for r in planned.get(element) or () if r not in have]
        if new:
            out[element] = have + new
            changed = True
    return out if changed else None


def _write(uow: Any, result: Any, current: Stored | None, whole: Stored | None) -> tuple[int, bool]:
    """Write one patient's plan in ``uow``: (resources created, whether the CareTeam was merged)."""
    created = 0
    merged_team = False
    if current is None:
        created += uow.create_if_absent(result.careteam)[1]
    else:
        merged = _merged_careteam(current.resource or {}, result.careteam)
        if merged is not None:
            uow.update(merged, if_match=current.version)
            merged_team = True
    if whole is None or whole.resource is None:
        created += uow.create_if_absent(result.shared)[1]
    else:
        grown = _merged_shared_plan(whole.resource, result.shared)
        if grown is not None:
            uow.update(grown, if_match=whole.version)
    for r in [*result.goals, *result.careplans, *result.tasks]:
        created += uow.create_if_absent(r)[1]
    return created, merged_team


def _open_shared_keys(repo: Repository, patient_ids: list[str]) -> dict[str, set[str]]:
    """Per patient, the shared-activity keys of their open Tasks."""
    out: dict[str, set[str]] = {}
    if not patient_ids:
        return out
    for s in by_ids(repo, "Task", patient_ids, "patient"):
        task = s.resource or {}
        if task.get("status") in FINAL_STATUSES:
            continue
        key = shared_key(task)
        pid = ref_id(task.get("for"), "Patient")
        if key and pid:
            out.setdefault(pid, set()).add(key)
    return out


MODES = ("active", "proposals", "draft")
BATCH_SIZE = 50  # patients per unit of work (one commit each)


def enrol(
    repo: Repository, programs: Mapping[str, Program], patient_ids: Sequence[str], start: date, *, batch_size: int = BATCH_SIZE,
    mode: str = "active",
) -> Counts:
    """Plan every programme each patient qualifies for on ``start`` and is not enrolled in yet.

    ``mode`` is the region's choice (``careflow.planning.inclusion``): ``active`` plans straight from
    the diagnosis codes; ``proposals`` writes one inclusion proposal per patient for the GP instead
    (never for programmes an open or rejected proposal already names); ``draft`` is the inclusion
    itself, a draft plan with only the care-planning conversation open.

    A batch of patients is written in one unit of work (one commit, not one per patient: commits
    dominate otherwise); each patient's resources are all in it, so every patient is atomic. If a
    CareTeam changed under us (VersionConflict), the batch is rolled back and written patient by
    patient, so only the conflicting patient is skipped (and picked up by the next run)."""
    if mode not in MODES:
        raise ValueError(f"enrolment mode {mode!r} is not one of {', '.join(MODES)}")
    counts = Counts()
    directory = TeamDirectory(repo)
    goal_codes = _goal_codes(programs)
    for batch in chunks(sorted(set(patient_ids)), max(1, batch_size)):
        if mode == "proposals":
            _propose(repo, programs, batch, start, directory, goal_codes, counts)
            continue
        stored_plans = by_ids(repo, "CarePlan", batch, "patient")
        plans = {s.id for s in stored_plans}
        wholes = {s.id: s for s in stored_plans if s.resource and is_shared_plan(s.resource)}
        active_parts: dict[str, list[Part]] = {}
        for s in stored_plans:
            cp = s.resource or {}
            program = None if is_shared_plan(cp) else program_of(cp, programs)
            pid = ref_id(cp.get("subject"), "Patient")
            begun = plan_period(cp)[0]
            if program is not None and pid and begun and cp.get("status") == "active":
                active_parts.setdefault(pid, []).append(Part(program, s.id, begun))
        careteams = {s.id: s for s in by_ids(repo, "CareTeam", [ids.careteam_id(p) for p in batch]) if s.resource}
        contexts, patients = load_contexts(repo, batch, programs, observation_codes=goal_codes, teams={})
        open_keys = _open_shared_keys(repo, sorted(active_parts))
        planned: list[tuple[Any, Any, list[Program], Stored | None, Stored | None]] = []
        for pid in batch:
            ctx0 = contexts.get(pid)
            if ctx0 is None:
                counts.add("missing-patient")
                continue
            problem = record_problem(ctx0)
            if problem:  # died, merged or inactive: never enrolled (and never proposed)
                counts.add("deceased" if ctx0.deceased else "inactive-record", neighbourhood=ctx0.neighbourhood)
                continue
            eligible = eligible_programs(programs.values(), ctx0, start)
            if not eligible:
                counts.add("not-eligible", neighbourhood=ctx0.neighbourhood)
                continue
            new = [p for p in eligible if ids.careplan_id(pid, p.id) not in plans]
            if not new:
                counts.add("already-enrolled", neighbourhood=ctx0.neighbourhood)
                continue
            team, org = directory.team_for(patients[pid])
            ctx = replace(ctx0, team=team, organization=org)
            result = plan_all(new, ctx, start, existing=active_parts.get(pid, ()), open_shared=open_keys.get(pid, ()),
                              draft=mode == "draft")
            planned.append((ctx, result, new, careteams.get(ids.careteam_id(pid)), wholes.get(ids.shared_careplan_id(pid))))

        if planned:  # the patients' informal carers join the CareTeam being drawn up
            related: dict[str, list[dict[str, Any]]] = {}
            for r in by_ids(repo, "RelatedPerson", [c.id for c, *_ in planned], "patient"):
                if r.resource and (owner := ref_id(r.resource.get("patient"), "Patient")):
                    related.setdefault(owner, []).append(r.resource)
            for i, (c, res, new, current, whole) in enumerate(planned):
                team = with_carers(res.careteam, related.get(c.id, ()), start)
                if team is not None:
                    planned[i] = (c, replace(res, careteam=team), new, current, whole)

        def done(ctx: Any, new: list[Program], created: int, merged_team: bool) -> None:
            if merged_team:
                counts.add("team-updated", neighbourhood=ctx.neighbourhood)
            counts.add("resources-created", created)
            counts.add("enrolled", neighbourhood=ctx.neighbourhood)
            for p in new:
                counts.add("plans-created", program=p.id, neighbourhood=ctx.neighbourhood)

        try:
            outcomes = []
            with repo.unit_of_work(SYSTEM) as uow:
                for ctx, result, new, current, whole in planned:
                    outcomes.append((ctx, new, *_write(uow, result, current, whole)))
            for outcome in outcomes:
                done(*outcome)
        except VersionConflict:
            for ctx, result, new, current, whole in planned:
                try:
                    with repo.unit_of_work(SYSTEM) as uow:
                        created, merged_team = _write(uow, result, current, whole)
                except VersionConflict:
                    counts.add("conflict", neighbourhood=ctx.neighbourhood)
                    continue
                done(ctx, new, created, merged_team)
    return counts


def _propose(repo: Repository, programs: Mapping[str, Program], batch: list[str], start: date,
             directory: TeamDirectory, goal_codes: list[str], counts: Counts) -> None:
    """One batch in ``proposals`` mode: an inclusion proposal for each patient who qualifies."""
    plans = {s.id for s in by_ids(repo, "CarePlan", batch, "patient")}
    contexts, patients = load_contexts(repo, batch, programs, observation_codes=goal_codes, teams={})
    proposed = open_proposals(repo, batch)
    tasks = []
    for pid in batch:
        ctx0 = contexts.get(pid)
        if ctx0 is None:
            counts.add("missing-patient")
            continue
        if record_problem(ctx0):
            counts.add("deceased" if ctx0.deceased else "inactive-record", neighbourhood=ctx0.neighbourhood)
            continue
        eligible = eligible_programs(programs.values(), ctx0, start)
        new = [p for p in eligible if ids.careplan_id(pid, p.id) not in plans and p.url not in proposed.get(pid, ())]
        if not eligible:
            counts.add("not-eligible", neighbourhood=ctx0.neighbourhood)
        elif not new:
            counts.add("already-proposed-or-enrolled", neighbourhood=ctx0.neighbourhood)
        else:
            team, org = directory.team_for(patients[pid])
            tasks.append((ctx0.neighbourhood, proposal_task(replace(ctx0, team=team, organization=org), new, start)))
    with repo.unit_of_work(SYSTEM) as uow:
        for hood, task in tasks:
            if uow.create_if_absent(task)[1]:
                counts.add("proposed", neighbourhood=hood)
