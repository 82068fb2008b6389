"""Team financing over the store: the recorded versions read once, the pure calculation run on them.

Reads as the system (an aggregate over the whole region: no person's narrowing applies to it; who
may see which team's lines is ``careflow.population.shared_views``'s). Everything comes from
``_history`` (every version of every Patient, programme CarePlan and Consent), so a statement as of
a past moment is reproduced from what was recorded up to then. Type-wide history is read in large
pages newest first; a version written meanwhile only shifts a page (versions are de-duplicated by
id and number), and versions recorded after the as-of moment are left out by the calculation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Mapping

import orjson

from careflow.access.policy import default_policy
from careflow.access.principal import SYSTEM
from careflow.engine.reading import ref_id, search_all
from careflow.planning.shared import is_shared_plan
from careflow.population.financing import (
    PatientHistory,
    Statement,
    Version,
    statement,
    year_period,
)
from careflow.store.port import Repository, Stored, UnitOfWork

PAGE = 5000


@dataclass(frozen=True)
class Directory:
    """Display names of the teams and practices a statement names (directory data)."""

    teams: Mapping[str, str]  # Organization/<id> -> name
    practices: Mapping[str, str]  # PractitionerRole/<id> (or Practitioner/...) -> name
    regions: frozenset[str] = frozenset()  # Organizations other organisations are part of (the region)

    def team(self, ref: str | None) -> str:
        return self.teams.get(ref or "", ref or "(no team)")

    def practice(self, ref: str | None) -> str:
        return self.practices.get(ref or "", ref or "(no GP)")


KEPT = frozenset({"resourceType", "id", "meta", "identifier", "status", "period", "created", "subject", "patient",
                  "provision", "category", "dateTime", "deceasedBoolean", "deceasedDateTime", "managingOrganization",
                  "generalPractitioner"})


@dataclass(frozen=True)
class Slim:
    """One version with only the elements the financing reads (parsed with orjson: a CarePlan's
    activities and notes are most of its bytes and none of its money)."""

    id: str
    version: int
    last_updated: datetime
    resource: dict[str, Any] | None


def _slim(s: Stored) -> Slim:
    raw = None if s.deleted else s.raw
    body = {k: v for k, v in orjson.loads(raw).items() if k in KEPT} if raw else None
    return Slim(s.id, s.version, s.last_updated, body)


def _versions(uow: UnitOfWork, rtype: str) -> dict[str, list[Slim]]:
    """Every version of every resource of ``rtype``, per id, oldest first."""
    seen: dict[tuple[str, int], Slim] = {}
    offset = 0
    while True:
        total, page = uow.history(rtype, count=PAGE, offset=offset)
        for s in page:
            seen[(s.id, s.version)] = _slim(s)
        offset += len(page)
        if not page or offset >= total:
            break
    out: dict[str, list[Slim]] = {}
    for (rid, _), slim in sorted(seen.items()):
        out.setdefault(rid, []).append(slim)
    for versions in out.values():
        versions.sort(key=lambda v: v.version)
    return out


def _version(s: Slim) -> Version:
    moment = s.last_updated if s.last_updated.tzinfo else s.last_updated.replace(tzinfo=timezone.utc)
    return Version(moment, s.resource)


def _patient_of(versions: list[Slim], field: str) -> str | None:
    for s in reversed(versions):
        if s.resource is not None:
            return ref_id(s.resource.get(field), "Patient")
    return None


def _name(resource: Mapping[str, Any]) -> str | None:
    names = resource.get("name")
    if isinstance(names, str):
        return names
    for n in names or ():
        if isinstance(n, dict):
            text = n.get("text") or " ".join([*(n.get("prefix") or []), *(n.get("given") or []), n.get("family") or ""])
            if str(text).strip():
                return str(text).strip()
    return None


def read_histories(repo: Repository) -> tuple[list[PatientHistory], Directory, dict[str, str]]:
    """Per patient with a programme part: the versions the calculation needs; the directory; and
    per GP role the team Organization (``team_of`` falls back on it)."""
    with repo.unit_of_work(SYSTEM) as uow:
        plans = _versions(uow, "CarePlan")
        consents = _versions(uow, "Consent")
        patients = _versions(uow, "Patient")
        orgs = {f"Organization/{s.id}": s.resource for s in search_all(uow, "Organization", []) if s.resource}  # type: ignore[arg-type]
        roles = {f"PractitionerRole/{s.id}": s.resource for s in search_all(uow, "PractitionerRole", []) if s.resource}  # type: ignore[arg-type]
        practitioner_ids = sorted({pid for r in roles.values() if (pid := ref_id(r.get("practitioner"), "Practitioner"))})
        people = {f"Practitioner/{s.id}": s.resource for s in search_all(uow, "Practitioner", []) if s.resource  # type: ignore[arg-type]
                  and s.id in set(practitioner_ids)}
    parts: dict[str, list[list[Version]]] = {}
    for versions in plans.values():
        if any(s.resource is not None and is_shared_plan(s.resource) for s in versions):
            continue
        pid = _patient_of(versions, "subject")
        if pid:
            parts.setdefault(pid, []).append([_version(s) for s in versions])
    given: dict[str, list[list[Version]]] = {}
    for versions in consents.values():
        pid = _patient_of(versions, "patient")
        if pid:
            given.setdefault(pid, []).append([_version(s) for s in versions])
    histories = [PatientHistory(pid, [_version(s) for s in patients.get(pid, [])], parts[pid], given.get(pid, []))
                 for pid in sorted(parts)]
    teams = {ref: _name(o) or ref for ref, o in orgs.items()}
    practices: dict[str, str] = {}
    role_team: dict[str, str] = {}
    for ref, role in roles.items():
        person = people.get(str((role.get("practitioner") or {}).get("reference") or ""))
        practices[ref] = (_name(person) if person else None) or str((role.get("practitioner") or {}).get("display") or ref)
        team = (role.get("organization") or {}).get("reference")
        if isinstance(team, str):
            role_team[ref] = team
    parents = [(o.get("partOf") or {}).get("reference") for o in orgs.values()]
    regions = frozenset(p for p in parents if isinstance(p, str) and p in orgs)
    return histories, Directory(teams, practices, regions), role_team


def team_resolver(role_team: Mapping[str, str]) -> Any:
    """The patient's neighbourhood team: ``managingOrganization``, else the organisation of the GP's
    PractitionerRole (as ``careflow.engine.team`` picks it for enrolment)."""
    def team_of(patient: Mapping[str, Any]) -> str | None:
        managing = (patient.get("managingOrganization") or {}).get("reference")
        if isinstance(managing, str) and managing:
            return managing
        for gp in patient.get("generalPractitioner") or ():
            org = role_team.get(str((gp or {}).get("reference") or ""))
            if org:
                return org
        return None
    return team_of


def financing(repo: Repository, year: int, as_of: datetime | None = None,
              today: date | None = None) -> tuple[Statement, Directory]:
    """The statement of ``year`` as recorded up to ``as_of`` (default: now), days up to ``today``
    (default: the as-of day; a server with a pinned clock passes its own day)."""
    moment = as_of or datetime.now(timezone.utc)
    histories, directory, role_team = read_histories(repo)
    policy = getattr(repo, "policy", None) or default_policy()
    start, end = year_period(year)
    return statement(histories, start, end, moment, team_of=team_resolver(role_team),
                     categories=frozenset(policy.consent_categories()),
                     consent_required=bool(policy.model.consent.required), today=today), directory


def end_of_day(day: date) -> datetime:
    """An as-of day means everything recorded by the end of that day in the region's time zone."""
    from careflow.population.financing import LOCAL_TIME

    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=LOCAL_TIME)
