"""PatientContexts for many patients at once, from the store.

Enrolment draws the care team from the neighbourhood (``team.TeamDirectory``); the sweep and the
event handlers read it back from the patient's CareTeam, because the CareTeam is the record people
edit (a GP hands a patient to another nurse there, and follow-up work must go to that nurse).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from careflow.engine.reading import by_ids, ref_id
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.planning import ids
from careflow.planning.only_if import fact_observation_codes, reads_medications
from careflow.planning.patient import MEDICATION_TYPES, PatientContext, context_from_resources
from careflow.planning.planner import role_concept
from careflow.programs.model import Program
from careflow.store.port import Repository


def _by_patient(resources: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        pid = ref_id(r.get("subject"), "Patient")
        if pid:
            out.setdefault(pid, []).append(r)
    return out


def team_from_careteam(careteam: dict[str, Any] | None, programs: Iterable[Program]) -> dict[str, str]:
    """role id -> member reference, read from the CareTeam's participants.

    A participant's role is recognised by the exact role concept a programme writes (its coding list)
    or by a coding in careflow's role code system."""
    if not careteam:
        return {}
    concepts: list[tuple[list[dict[str, Any]], str]] = []
    for program in programs:
        for role_id in program.roles:
            concepts.append((role_concept(program, role_id)["coding"], role_id))
    team: dict[str, str] = {}
    for p in careteam.get("participant") or ():
        member = (p.get("member") or {}).get("reference")
        if not isinstance(member, str):
            continue
        for concept in p.get("role") or ():
            coding = concept.get("coding") or []
            role_id = next((rid for c, rid in concepts if c == coding), None)
            role_id = role_id or next((c.get("code") for c in coding if c.get("system") == CARE_ROLE_SYSTEM), None)
            if role_id and role_id not in team:
                team[role_id] = member
    return team


def load_contexts(
    repo: Repository,
    patient_ids: Sequence[str],
    programs: Mapping[str, Program],
    *,
    observation_codes: Sequence[str] = (),
    teams: Mapping[str, tuple[dict[str, str], str | None]] | None = None,
) -> tuple[dict[str, PatientContext], dict[str, dict[str, Any]]]:
    """(patient id -> PatientContext, patient id -> Patient) for the patients that exist.

    ``observation_codes`` (``system|code``) limits the Observations read, beside those the programmes'
    ``only_if`` facts read; none are read when both are empty. Active MedicationStatements and
    MedicationRequests are read only when some ``only_if`` tests a medication class.
    ``teams`` given: use them; otherwise the team is read from each patient's CareTeam."""
    patients = {s.id: s.resource for s in by_ids(repo, "Patient", patient_ids) if s.resource}
    present = sorted(patients)
    conditions = _by_patient(s.resource for s in by_ids(repo, "Condition", present, "patient") if s.resource)
    observations: dict[str, list[dict[str, Any]]] = {}
    codes = sorted({*observation_codes, *fact_observation_codes(programs)})  # only_if reads these too
    if codes:
        found = by_ids(repo, "Observation", present, "patient", [("code", ",".join(codes))])
        observations = _by_patient(s.resource for s in found if s.resource)
    medications: dict[str, list[dict[str, Any]]] = {}
    if present and reads_medications(programs):
        for rtype in MEDICATION_TYPES:
            found = by_ids(repo, rtype, present, "patient", [("status", "active,intended")])
            for pid, resources in _by_patient(s.resource for s in found if s.resource).items():
                medications.setdefault(pid, []).extend(resources)
    careteams: dict[str, dict[str, Any]] = {}
    if teams is None:
        wanted = {ids.careteam_id(pid): pid for pid in present}
        for s in by_ids(repo, "CareTeam", list(wanted)):
            if s.resource:
                careteams[wanted[s.id]] = s.resource
    out: dict[str, PatientContext] = {}
    for pid in present:
        if teams is not None:
            team, org = teams.get(pid, ({}, None))
        else:
            ct = careteams.get(pid)
            team = team_from_careteam(ct, programs.values())
            orgs = (ct or {}).get("managingOrganization") or []
            org = orgs[0].get("reference") if orgs else None
        out[pid] = context_from_resources(
            patients[pid], conditions.get(pid, []), observations.get(pid, []), team=team, organization=org,
            medications=medications.get(pid, []),
        )
    return out, patients


def program_of(careplan: dict[str, Any], programs: Mapping[str, Program]) -> Program | None:
    """The loaded programme a CarePlan instantiates (matched on the canonical URL, any version)."""
    for canonical in careplan.get("instantiatesCanonical") or ():
        url = canonical.split("|", 1)[0]
        for program in programs.values():
            if program.url == url:
                return program
    return None
