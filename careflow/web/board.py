"""The care coach's board: the neighbourhood team's open work at a glance, and who takes what.

Read through the repository port as the coach (the store narrows it to the patients the coach may
see): escalated Tasks first, then unassigned ones (owned by the patient's CareTeam: nobody of the
team holds the role yet), and the load per team member (open Tasks each holds). The coach assigns a
Task to a member of the team with one form; that is an ordinary Task update with If-Match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from careflow.access.principal import Principal
from careflow.fhir.search_query import parse_search
from careflow.naming import CARE_ROLE_SYSTEM, TASK_REASON
from careflow.store.port import Repository, Stored
from careflow.web.worklist import OPEN, QUEUED, Row, _row

COACHES = frozenset({"care-coach", "case-manager"})
LIMIT = 1000


@dataclass
class Member:
    ref: str
    name: str
    discipline: str
    load: int = 0


@dataclass
class Board:
    escalated: list[Row] = field(default_factory=list)
    unassigned: list[Row] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    patients: int = 0

    def queues(self) -> list[str]:
        """The disciplines of the team, each a queue a Task can be put in for whoever takes it first."""
        return sorted({m.discipline for m in self.members if m.discipline})

    def members_for(self, row: Row) -> list[Member]:
        """Who of the team could take ``row``: the members of its discipline first (least loaded
        first), then everyone else of the team (a coach may hand work to another discipline)."""
        return sorted(self.members, key=lambda m: (m.discipline != row.discipline, m.load, m.name))


def _discipline(task: dict[str, Any], by_code: dict[tuple[str, str], str]) -> str | None:
    for concept in task.get("performerType") or ():
        for c in (concept or {}).get("coding") or ():
            found = by_code.get((c.get("system"), c.get("code")))
            if found:
                return found
    return None


def team_members(repo: Repository, principal: Principal) -> list[Member]:
    """The active PractitionerRoles of the coach's organisation(s), with their discipline and name."""
    orgs = [o for o in principal.organizations if o.startswith("Organization/")]
    if not orgs:
        return []
    with repo.unit_of_work(principal) as uow:
        roles = uow.search(parse_search("PractitionerRole", [("organization", ",".join(orgs)), ("active", "true"),
                                                             ("_include", "PractitionerRole:practitioner"),
                                                             ("_count", str(LIMIT))], strict=True))
    names = {f"Practitioner/{s.id}": s.resource or {} for s in roles.included if s.type == "Practitioner"}
    out = []
    for s in roles.matches:
        role = s.resource or {}
        discipline = next((c.get("code") for cc in role.get("code") or () for c in cc.get("coding") or ()
                           if c.get("system") == CARE_ROLE_SYSTEM), None)
        who = names.get((role.get("practitioner") or {}).get("reference", ""), {})
        name = " ".join([*(who.get("name") or [{}])[0].get("given", []), (who.get("name") or [{}])[0].get("family", "")]).strip()
        out.append(Member(ref=f"PractitionerRole/{s.id}", name=name or s.id, discipline=discipline or ""))
    return sorted(out, key=lambda m: (m.discipline, m.name))


def _open_tasks(uow: Any, params: list[tuple[str, str]]) -> list[Stored]:
    query = parse_search("Task", [*params, ("_count", str(LIMIT)), ("_sort", "due-date"), ("_total", "none")], strict=True)
    return list(uow.search(query).matches)


def _count(uow: Any, rtype: str, params: list[tuple[str, str]]) -> int:
    return int(uow.search(parse_search(rtype, [*params, ("_summary", "count")], strict=True)).total or 0)


def board(repo: Repository, principal: Principal, role_codes: dict[tuple[str, str], str], today: date,
          lang: str = "en") -> Board:
    """A handful of narrow searches, not every open Task of the neighbourhood: the escalated ones,
    the escalation Tasks (they have a focus), the queue (owned by an active CareTeam), and one count
    per team member; so the page costs the same with 50 patients or 5,000 and nothing is cut off."""
    out = Board(members=team_members(repo, principal))
    status = ("status", ",".join(OPEN))
    seen: set[str] = set()

    def add(s: Stored, to: list[Row]) -> None:
        if s.id in seen:
            return
        task = s.resource or {}
        owner = (task.get("owner") or {}).get("reference") or ""
        row = _row(s, queued=owner.startswith("CareTeam/"), lang=lang)
        if row is not None:
            seen.add(s.id)
            row.discipline = _discipline(task, role_codes)
            to.append(row)

    with repo.unit_of_work(principal) as uow:
        for s in _open_tasks(uow, [status, ("business-status", "escalated")]):
            add(s, out.escalated)
        for s in _open_tasks(uow, [status, ("focus:missing", "false")]):
            if any(c.get("system") == TASK_REASON and c.get("code") == "escalation"
                   for c in ((s.resource or {}).get("reasonCode") or {}).get("coding") or ()):
                add(s, out.escalated)
        out.escalated.sort(key=lambda r: (r.due or date.max, r.id))
        for s in _open_tasks(uow, [("status", QUEUED), ("owner:CareTeam.status", "active")]):
            add(s, out.unassigned)
        for m in out.members:
            m.load = _count(uow, "Task", [("owner", m.ref), status])
        out.patients = _count(uow, "CareTeam", [("status", "active")])
    return out
