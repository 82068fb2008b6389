"""The signed-in member's worklist, read through the repository port with their principal.

Everything here is a search the FHIR API would answer for the same caller: the store narrows each
query to the patients this person may see (consent, care team, matrix), so the page can never show
more than the API would. Grouping (overdue, due this week, later) and the filters in the URL are
presentation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Mapping

from careflow.access.principal import Principal
from careflow.fhir.search_query import parse_search
from careflow.naming import TASK_KIND
from careflow.planning.inclusion import PROPOSAL
from careflow.population.case_finding import CASE_FINDING
from careflow.programs.model import Program
from careflow.store.port import Repository, Stored
from careflow.web.i18n import localised

OPEN = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")
NEXT_ACTIONS = {  # status -> the one-click actions offered (each a legal FHIR Task transition)
    "requested": ("accept", "reject"),
    "received": ("accept", "reject"),
    "accepted": ("start", "reject"),
    "ready": ("start",),
    "in-progress": ("complete",),
    "on-hold": ("start",),
}
TRANSITION = {"accept": "accepted", "start": "in-progress", "complete": "completed", "reject": "rejected"}
# hand back: the holder returns a Task to the team's queue (owner the patient's CareTeam); work begun is
# paused (in-progress -> on-hold, a legal transition), the other statuses stay as they are
HAND_BACK_FROM = ("accepted", "ready", "in-progress", "on-hold")
OWNER_ACTIONS = ("claim", "hand-back")  # owner changes, not status transitions
PAGE = 200
QUEUED = "requested,received,accepted,ready,on-hold"  # statuses a Task waits in the team's queue with


@dataclass
class Row:
    id: str
    version: int
    title: str
    status: str
    business: str | None
    priority: str
    patient: str
    due: date | None
    opens: date | None
    owner: str | None
    queued: bool  # owned by the CareTeam: anyone of the discipline may claim it
    actions: tuple[str, ...]
    discipline: str | None = None  # the careflow role the Task is for (the board fills it in)
    reason: str | None = None  # why it was raised (a case-finding proposal's rule and evidence)


@dataclass
class Worklist:
    overdue: list[Row] = field(default_factory=list)
    this_week: list[Row] = field(default_factory=list)
    later: list[Row] = field(default_factory=list)
    queue: list[Row] = field(default_factory=list)
    capped: bool = False  # a search returned a full page: there is more than is shown (narrow the filters)

    @property
    def count(self) -> int:
        return len(self.overdue) + len(self.this_week) + len(self.later) + len(self.queue)


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _row(s: Stored, queued: bool, lang: str = "en") -> Row | None:
    t = s.resource or {}
    code = t.get("code") or {}
    title = localised(code.get("text"), code.get("_text"), lang) or localised(t.get("description"), t.get("_description"), lang)
    period = (t.get("restriction") or {}).get("period") or {}
    business = next((c.get("code") for c in (t.get("businessStatus") or {}).get("coding") or ()), None)
    status = str(t.get("status"))
    if queued:  # from the queue: take it (accepting a request claims it too)
        actions: tuple[str, ...] = ("accept",) if status in ("requested", "received") else ("claim",)
    else:
        actions = NEXT_ACTIONS.get(status, ()) + (("hand-back",) if status in HAND_BACK_FROM else ())
    return Row(
        id=s.id, version=s.version, title=title or "Task",
        status=status, business=business, priority=str(t.get("priority") or "routine"),
        patient=str((t.get("for") or {}).get("reference") or ""), due=_day(period.get("end")), opens=_day(period.get("start")),
        owner=(t.get("owner") or {}).get("reference"), queued=queued, actions=actions,
        reason=(t.get("reasonCode") or {}).get("text") if isinstance(t.get("reasonCode"), dict) else None,
    )


def _search(repo: Repository, principal: Principal, params: list[tuple[str, str]], out: Worklist) -> list[Stored]:
    query = parse_search("Task", [*params, ("_count", str(PAGE)), ("_sort", "due-date"), ("_total", "none")], strict=True)
    with repo.unit_of_work(principal) as uow:
        found = uow.search(query).matches
    out.capped = out.capped or len(found) >= PAGE
    return found


def discipline_codes(principal: Principal, programs: Mapping[str, Program]) -> list[str]:
    """``system|code`` of the caller's discipline as the programmes write it in ``performerType``."""
    out: list[str] = []
    for program in programs.values():
        role = program.roles.get(principal.discipline or "")
        for c in role.codes if role else ():
            token = f"{c.system}|{c.code}"
            if token not in out:
                out.append(token)
    return out


def worklist(repo: Repository, principal: Principal, programs: Mapping[str, Program], today: date, *,
             patient: str | None = None, overdue_only: bool = False, lang: str = "en", program: str | None = None,
             team: bool = False, proposals: bool = False) -> Worklist:
    """My open Tasks by urgency, and my discipline's queue (open Tasks nobody of the team holds yet).

    ``program`` keeps the Tasks that serve that programme (based on its CarePlan: a shared Task serves
    every programme it is based on); ``team`` shows the open Tasks of my care teams, whoever holds them
    (the store narrows any Task search to the patients whose team I am on); ``proposals`` shows the
    open proposals, case finding and inclusion, of every patient I may see, whoever they are for (a
    GP sees those of the patients whose GMD they hold; a team member those of the patients whose team
    they are on)."""
    out = Worklist()
    base = [("status", ",".join(OPEN))] + ([("patient", patient)] if patient else [])
    if proposals:
        base.append(("code", f"{TASK_KIND}|{PROPOSAL},{TASK_KIND}|{CASE_FINDING}"))
        team = True
    chosen = programs.get(program or "")
    if chosen is not None and not proposals:
        base.append(("based-on:CarePlan.instantiates-canonical", chosen.url))
    me = next((a for a in principal.acts_as if a.startswith("PractitionerRole/")), principal.id)
    week = today + timedelta(days=7)
    for s in _search(repo, principal, base if team else [("owner", me), *base], out):
        row = _row(s, queued=False, lang=lang)
        if row is None:
            continue
        if team and row.owner != me:
            row.actions = ()  # someone else's work: shown, not actionable here
        if row.due is not None and row.due < today:
            out.overdue.append(row)
        elif overdue_only:
            continue
        elif row.due is not None and row.due <= week:
            out.this_week.append(row)
        else:
            out.later.append(row)
    codes = discipline_codes(principal, programs)
    if codes and not overdue_only and not team:
        queued = [("performer", ",".join(codes)), ("status", QUEUED), *base[1:]]
        for s in _search(repo, principal, queued, out):
            owner = ((s.resource or {}).get("owner") or {}).get("reference") or ""
            if owner.startswith("CareTeam/"):
                row = _row(s, queued=True, lang=lang)
                if row is not None:
                    out.queue.append(row)
    return out
