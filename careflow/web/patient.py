"""The patient page: the shared care plan as the team sees it, read as the signed-in member.

Every read goes through the repository port with the member's principal, so a member who may not
see the patient gets a refusal, not a page. What it shows: the patient, the shared plan and its
programme parts, the goals (the patient's own first) with the latest measured value and a small
trend chart, the Tasks per role on a timeline (open and done), the sharing consent and the care
team with their contacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from careflow.access.principal import Principal
from careflow.fhir.search_query import parse_search
from careflow.planning.shared import is_shared_plan
from careflow.store.port import Repository
from careflow.web.attachments import attached
from careflow.web.i18n import localised

LIMIT = 500


@dataclass
class GoalView:
    text: str
    mine: bool  # expressed by the patient
    measure: str | None
    target: str | None
    points: list[tuple[str, float]] = field(default_factory=list)  # (day, value), oldest first

    @property
    def latest(self) -> tuple[str, float] | None:
        return self.points[-1] if self.points else None

    def sparkline(self, width: int = 160, height: int = 36) -> str:
        """SVG polyline points of the values (empty with fewer than two)."""
        if len(self.points) < 2:
            return ""
        values = [v for _, v in self.points]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        step = width / (len(values) - 1)
        return " ".join(f"{i * step:.1f},{height - (v - low) / span * (height - 4) - 2:.1f}" for i, v in enumerate(values))


@dataclass
class TaskView:
    title: str
    status: str
    opens: str
    due: str
    done: bool
    documents: list[tuple[str, str]] = field(default_factory=list)  # (DocumentReference id, name)


@dataclass
class MemberView:
    role: str
    name: str
    phone: str | None
    ref: str


@dataclass
class PatientPage:
    patient_id: str
    name: str
    born: str | None
    plans: list[dict[str, Any]] = field(default_factory=list)
    goals: list[GoalView] = field(default_factory=list)
    lanes: dict[str, list[TaskView]] = field(default_factory=dict)
    consent: str | None = None
    team: list[MemberView] = field(default_factory=list)


def _all(uow: Any, rtype: str, params: list[tuple[str, str]]) -> list[Any]:
    found: list[Any] = uow.search(parse_search(rtype, [*params, ("_count", str(LIMIT))], strict=True)).matches
    return found


def _name(resource: dict[str, Any]) -> str:
    n = (resource.get("name") or [{}])[0]
    return " ".join([*n.get("given", []), n.get("family", "")]).strip() or n.get("text", "") or "?"


def _number(value: Any, lang: str) -> str:
    """A target's value as the reader writes numbers (``7,5`` in Dutch and French)."""
    from babel.numbers import format_decimal

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    return format_decimal(value, locale={"nl": "nl_BE", "fr": "fr_BE"}.get(lang, "en"), decimal_quantization=False)


def _target(goal: dict[str, Any], lang: str = "en") -> tuple[str | None, str | None]:
    for t in goal.get("target") or ():
        measure = (t.get("measure") or {})
        code = next((f"{c.get('system')}|{c.get('code')}" for c in measure.get("coding") or ()), None)
        q = t.get("detailQuantity")
        r = t.get("detailRange")
        text = None
        if q:
            text = f"{q.get('comparator', '')} {_number(q.get('value'), lang)} {q.get('unit', '')}".strip()
        elif r:
            low, high = r.get("low") or {}, r.get("high") or {}
            text = f"{_number(low.get('value'), lang)}–{_number(high.get('value'), lang)} {low.get('unit', '')}".strip()
        elif t.get("detailString"):
            text = str(t["detailString"])
        return code, text
    return None, None


def _role(concepts: Any, role_codes: dict[tuple[str, str], str]) -> str | None:
    """The careflow role id a role / performerType CodeableConcept names, when the programmes know it."""
    for concept in concepts or ():
        for c in (concept or {}).get("coding") or ():
            found = role_codes.get((c.get("system"), c.get("code")))
            if found:
                return found
    return None


def patient_page(repo: Repository, principal: Principal, patient_id: str, today: date, lang: str = "en",
                 role_codes: dict[tuple[str, str], str] | None = None) -> PatientPage:
    codes_of_roles = role_codes or {}
    with repo.unit_of_work(principal) as uow:
        patient = uow.read("Patient", patient_id).resource or {}
        ref = f"Patient/{patient_id}"
        plans = [s.resource for s in _all(uow, "CarePlan", [("patient", ref)]) if s.resource]
        goals = [s.resource for s in _all(uow, "Goal", [("patient", ref)]) if s.resource]
        tasks = [s.resource for s in _all(uow, "Task", [("patient", ref), ("_sort", "due-date")]) if s.resource]
        consents = [s.resource for s in _all(uow, "Consent", [("patient", ref)]) if s.resource]
        teams = _all(uow, "CareTeam", [("patient", ref)])
        codes = sorted({c for g in goals if (c := _target(g)[0])})
        observations = [s.resource for s in _all(uow, "Observation", [("patient", ref), ("code", ",".join(codes)),
                                                                         ("_sort", "date")]) if s.resource] if codes else []
        members = []
        for team in teams:
            for p in (team.resource or {}).get("participant") or ():
                member = (p.get("member") or {}).get("reference", "")
                role = _role(p.get("role"), codes_of_roles) or ((p.get("role") or [{}])[0]).get("text") or ""
                if not member or (p.get("period") or {}).get("end"):
                    continue
                name, phone = member, None
                if member.startswith("PractitionerRole/"):
                    found = uow.search(parse_search("PractitionerRole", [("_id", member.split("/", 1)[1]),
                                                                         ("_include", "PractitionerRole:practitioner")],
                                                    strict=True))
                    for s in found.included:
                        name = _name(s.resource or {})
                    for s in found.matches:
                        phone = next((t.get("value") for t in (s.resource or {}).get("telecom") or ()
                                      if t.get("system") == "phone"), None)
                elif member.startswith("RelatedPerson/"):
                    related = uow.read("RelatedPerson", member.split("/", 1)[1]).resource or {}
                    name = _name(related)
                    phone = next((t.get("value") for t in related.get("telecom") or () if t.get("system") == "phone"), None)
                members.append(MemberView(role=role, name=name, phone=phone, ref=member))
    page = PatientPage(patient_id=patient_id, name=_name(patient), born=patient.get("birthDate"))
    page.plans = sorted(({**p, "title": localised(p.get("title"), p.get("_title"), lang)} for p in plans),
                        key=lambda p: (not is_shared_plan(p), str(p.get("title"))))
    for g in goals:
        code, target = _target(g, lang)
        mine = (g.get("expressedBy") or {}).get("reference") == ref
        points = []
        for o in observations:
            if code and any(f"{c.get('system')}|{c.get('code')}" == code for c in (o.get("code") or {}).get("coding") or ()):
                value = (o.get("valueQuantity") or {}).get("value")
                if isinstance(value, (int, float)):
                    points.append((str(o.get("effectiveDateTime", ""))[:10], float(value)))
        described = g.get("description") or {}
        page.goals.append(GoalView(text=localised(described.get("text"), described.get("_text"), lang) or "?", mine=mine,
                                   measure=code, target=target, points=sorted(points)))
    page.goals.sort(key=lambda g: (not g.mine, g.text))
    for t in tasks:
        lane = _role(t.get("performerType"), codes_of_roles) or next(
            (str(c.get("text")) for c in t.get("performerType") or () if c.get("text")), "") or "—"
        period = (t.get("restriction") or {}).get("period") or {}
        page.lanes.setdefault(lane, []).append(TaskView(
            title=localised((t.get("code") or {}).get("text"), (t.get("code") or {}).get("_text"), lang) or "Task",
            status=str(t.get("status")),
            opens=str(period.get("start", "")), due=str(period.get("end", "")),
            done=t.get("status") in ("completed", "cancelled", "rejected", "failed", "entered-in-error"),
            documents=attached(t)))
    active = [c for c in consents if c.get("status") == "active"]
    page.consent = (active[0].get("dateTime") or "")[:10] if active else None
    page.team = members
    return page
