"""Team financing: €100 per enrolled patient per year to the neighbourhood team, pro rata per day.

Pure: the calculation works on recorded versions of FHIR resources (what the store's ``_history``
holds), never on a live store, so the same history and the same as-of moment always give the same
statement, to the cent. The adapter (``careflow.engine.financing``) reads the versions.

The rules, as an accountant would audit them:

* **A paid day** is a day on which the patient has at least one *enrolled* programme part (a
  programme's CarePlan, not the shared whole, status active, on-hold, completed or revoked; never
  draft, which is an inclusion not yet talked through, nor entered-in-error), *and* an active sharing
  Consent, *and* is alive. Days are whole calendar days with **both ends inclusive** (FHIR's
  ``Period.end`` includes its day; 1 March to 31 August is 184 days). A patient in three programmes
  is paid once: the union of the parts' days, gaps between plans stay unpaid.
* **Inclusion** is the part's ``period.start`` (an inclusion's draft gets its start on the day of
  the care-planning conversation, when it becomes active). **The end** is the part's
  ``period.end``; a plan completed or revoked without one ends on the day that status was recorded.
  The day of death (``deceasedDateTime``; for ``deceasedBoolean`` the day it was recorded) and the
  day consent was withdrawn (``provision.period.end``, else the day the Consent was recorded as no
  longer active) are the last paid days. Consent given again opens a new stretch.
* **As of**: only versions recorded up to the as-of moment count, so a statement for a closed period
  is reproduced exactly later (``--as-of``). A later correction that carries its own date (a plan's
  period.end moved back, a backdated death) changes a rerun without ``--as-of``: the data says so.
  A resource whose latest version (as of then) is entered-in-error or deleted never counted.
  Days after the as-of day have not happened yet and are not paid.
* **Money**: per patient ``100 × paid days ÷ days in that year`` (366 in a leap year) in Decimal,
  rounded to the cent half-up; every line (team, group, practice) is the sum of its patients'
  amounts and the total the sum of the team lines, so the lines add up to the total to the cent and
  every cent can be traced to one patient.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from careflow.naming import POPULATION_GROUP
from careflow.population.shared_views import suppressed

YEARLY_AMOUNT = Decimal("100.00")  # euro per enrolled patient per full year
CENT = Decimal("0.01")
LOCAL_TIME = ZoneInfo("Europe/Brussels")  # the region's calendar day of a recorded instant

ENROLLED_PLAN = frozenset({"active", "on-hold", "completed", "revoked"})
FINAL_PLAN = frozenset({"completed", "revoked"})

Interval = tuple[date, date]  # both ends inclusive


@dataclass(frozen=True)
class Version:
    """One recorded version of a resource: when the store recorded it, and what it said (``None``
    for a deletion)."""

    recorded: datetime  # timezone-aware
    resource: Mapping[str, Any] | None

    @property
    def day(self) -> date:
        return self.recorded.astimezone(LOCAL_TIME).date()


@dataclass(frozen=True)
class PatientHistory:
    """Everything the financing needs of one patient: the versions of the Patient, of each programme
    part and of each Consent (each list in the order recorded)."""

    id: str
    patient: Sequence[Version]
    plans: Sequence[Sequence[Version]] = ()
    consents: Sequence[Sequence[Version]] = ()


@dataclass(frozen=True)
class PatientLine:
    patient: str
    team: str | None
    group: str | None
    practice: str | None
    days: int
    amount: Decimal


@dataclass(frozen=True)
class Line:
    """One line of the statement: a team, or one group / practice within a team."""

    team: str | None
    key: str | None  # the group or practice; None on a team line
    patients: int
    days: int
    amount: Decimal

    @property
    def suppressed(self) -> bool:
        return suppressed(self.patients)


@dataclass(frozen=True)
class Statement:
    start: date
    end: date
    as_of: datetime
    patients: tuple[PatientLine, ...]
    teams: tuple[Line, ...] = field(default=())
    groups: tuple[Line, ...] = field(default=())
    practices: tuple[Line, ...] = field(default=())

    @property
    def total(self) -> Decimal:
        return sum((t.amount for t in self.teams), Decimal("0.00"))

    @property
    def total_patients(self) -> int:
        return sum(t.patients for t in self.teams)

    @property
    def total_days(self) -> int:
        return sum(t.days for t in self.teams)

    def for_teams(self, teams: Iterable[str | None] | None) -> Statement:
        """The statement narrowed to some teams (a coach's own); ``None``: all of them."""
        if teams is None:
            return self
        keep = set(teams)
        return Statement(self.start, self.end, self.as_of, tuple(p for p in self.patients if p.team in keep),
                         *(tuple(x for x in lines if x.team in keep) for lines in (self.teams, self.groups, self.practices)))


# ---- what the records say -------------------------------------------------------------------


def _day(value: object) -> date | None:
    """The calendar day of a FHIR date or dateTime (in the region's time zone when it has one)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return date(int(text), 1, 1)
        if len(text) == 7:
            return date(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(LOCAL_TIME).date() if moment.tzinfo else moment.date()


def _end_day(value: object) -> date | None:
    """The last day a FHIR end date covers (``2026-08`` covers the whole of August)."""
    if isinstance(value, str) and len(value.strip()) == 4:
        return date(int(value.strip()), 12, 31)
    if isinstance(value, str) and len(value.strip()) == 7:
        y, m = int(value[:4]), int(value[5:7])
        return date(y, m, calendar.monthrange(y, m)[1])
    return _day(value)


def group_of(patient: Mapping[str, Any]) -> str | None:
    """The patient's pyramid group (A-D). The one place the financing reads it: today the demo's
    ``meta.tag``; point it at the stratification's RiskAssessment when that exists."""
    for tag in (patient.get("meta") or {}).get("tag") or ():
        if isinstance(tag, dict) and tag.get("system") == POPULATION_GROUP and isinstance(tag.get("code"), str):
            return str(tag["code"])
    return None


def practice_of(patient: Mapping[str, Any]) -> str | None:
    """The practice: the GP holding the global medical file (first ``generalPractitioner``)."""
    for gp in patient.get("generalPractitioner") or ():
        ref = (gp or {}).get("reference") if isinstance(gp, dict) else None
        if isinstance(ref, str) and ref:
            return ref
    return None


def _as_of(versions: Sequence[Version], as_of: datetime) -> list[Version]:
    return [v for v in versions if v.recorded <= as_of]


def _stretches(versions: Sequence[Version], counts: Callable[[Mapping[str, Any]], bool],
               start_of: Callable[[Mapping[str, Any]], date | None],
               end_of: Callable[[Mapping[str, Any]], date | None],
               final: Callable[[Mapping[str, Any]], bool] = lambda r: False) -> list[Interval]:
    """The stretches of days a resource's versions say something held (a plan enrolled, consent given).

    A stretch opens at a version that ``counts`` (on its own start date: a first record may be
    backdated; a later reopening starts on its recorded day unless it names a later start) and closes
    at the next version that does not (on that version's own end date, else its recorded day), or else
    on the last version's end date (open: ``date.max``). A ``final`` status without an end date
    (a plan completed or revoked) ends on the day it was recorded. The latest version being a
    deletion or entered-in-error means it never counted at all."""
    if not versions or versions[-1].resource is None or versions[-1].resource.get("status") == "entered-in-error":
        return []
    out: list[Interval] = []
    opened: tuple[date, Version] | None = None
    final_since: date | None = None
    for v in versions:
        r = v.resource or {}
        if counts(r):
            if opened is None:
                start = start_of(r)
                if out and (start is None or start <= out[-1][1]):
                    start = v.day
                opened = (start or v.day, v)
            else:
                opened = (opened[0], v)
            final_since = (final_since or v.day) if final(r) else None
        elif opened is not None:
            end = min(end_of(r) or v.day, v.day)  # effective when recorded at the latest; earlier if it says so
            out.append((opened[0], min(end, end_of(opened[1].resource or {}) or date.max)))
            opened, final_since = None, None
    if opened is not None:
        last = opened[1].resource or {}
        out.append((opened[0], end_of(last) or final_since or date.max))
    return [(a, b) for a, b in out if a <= b]


def plan_stretches(versions: Sequence[Version]) -> list[Interval]:
    """The days a programme part had the patient enrolled."""
    def period(r: Mapping[str, Any]) -> Mapping[str, Any]:
        p = r.get("period")
        return p if isinstance(p, dict) else {}

    return _stretches(versions, lambda r: r.get("status") in ENROLLED_PLAN,
                      lambda r: _day(period(r).get("start")) or _day(r.get("created")),
                      lambda r: _end_day(period(r).get("end")),
                      lambda r: r.get("status") in FINAL_PLAN)


def _sharing(consent: Mapping[str, Any], categories: frozenset[tuple[str, str]]) -> bool:
    """An active opt-in to sharing (the access policy's consent categories; a permit provision)."""
    if consent.get("status") != "active":
        return False
    provision = consent.get("provision") or {}
    if isinstance(provision, dict) and provision.get("type", "permit") != "permit":
        return False
    codings = {(str(c.get("system") or ""), str(c.get("code") or ""))
               for concept in consent.get("category") or () if isinstance(concept, dict)
               for c in concept.get("coding") or () if isinstance(c, dict)}
    return not categories or bool(codings & categories)


def consent_stretches(versions: Sequence[Version], categories: frozenset[tuple[str, str]]) -> list[Interval]:
    """The days one Consent permitted sharing."""
    def period(r: Mapping[str, Any]) -> Mapping[str, Any]:
        p = (r.get("provision") or {}).get("period") if isinstance(r.get("provision"), dict) else None
        return p if isinstance(p, dict) else {}

    return _stretches(versions, lambda r: _sharing(r, categories),
                      lambda r: _day(period(r).get("start")) or _day(r.get("dateTime")),
                      lambda r: _end_day(period(r).get("end")))


def last_alive_day(versions: Sequence[Version]) -> date:
    """The day of death (the last paid day), or ``date.max`` for a living patient."""
    if not versions or versions[-1].resource is None:
        return date.max
    patient = versions[-1].resource
    died = _day(patient.get("deceasedDateTime"))
    if died is not None:
        return died
    if patient.get("deceasedBoolean") is True:
        since = next((v.day for v in versions if (v.resource or {}).get("deceasedBoolean") is True), versions[-1].day)
        return since
    return date.max


# ---- days and money --------------------------------------------------------------------------


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching stretches merged (a day is counted once)."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in xs:
        for c, d in ys:
            lo, hi = max(a, c), min(b, d)
            if lo <= hi:
                out.append((lo, hi))
    return union(out)


def days_in(intervals: Iterable[Interval]) -> int:
    return sum((b - a).days + 1 for a, b in intervals)


def year_days(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def amount(paid: Sequence[Interval]) -> Decimal:
    """€100 a year pro rata per day, each day at its own year's rate, rounded half-up to the cent."""
    exact = Decimal(0)
    for a, b in paid:
        for year in range(a.year, b.year + 1):
            lo, hi = max(a, date(year, 1, 1)), min(b, date(year, 12, 31))
            exact += YEARLY_AMOUNT * Decimal((hi - lo).days + 1) / Decimal(year_days(year))
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def paid_days(history: PatientHistory, start: date, end: date, as_of: datetime,
              categories: frozenset[tuple[str, str]] = frozenset(), consent_required: bool = True,
              today: date | None = None) -> list[Interval]:
    """The days of [start, end] up to ``today`` (default: the as-of day) this patient is paid for, as
    recorded up to ``as_of``."""
    patient = _as_of(history.patient, as_of)
    if not patient or patient[-1].resource is None:
        return []
    last = min(end, last_alive_day(patient), today or as_of.astimezone(LOCAL_TIME).date())
    if last < start:
        return []
    window = [(start, last)]
    enrolled = union(s for plan in history.plans for s in plan_stretches(_as_of(plan, as_of)))
    consented = (union(s for c in history.consents for s in consent_stretches(_as_of(c, as_of), categories))
                 if consent_required else window)
    return intersect(intersect(enrolled, consented), window)


def year_period(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def statement(histories: Iterable[PatientHistory], start: date, end: date, as_of: datetime, *,
              team_of: Callable[[Mapping[str, Any]], str | None],
              categories: frozenset[tuple[str, str]] = frozenset(), consent_required: bool = True,
              today: date | None = None) -> Statement:
    """The payment for [start, end] per team, and per group and practice within each team (days up to
    ``today``, default the as-of day, as recorded up to ``as_of``)."""
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    lines: list[PatientLine] = []
    for h in histories:
        paid = paid_days(h, start, end, as_of, categories, consent_required, today)
        if not paid:
            continue
        patient = _as_of(h.patient, as_of)[-1].resource or {}
        lines.append(PatientLine(h.id, team_of(patient), group_of(patient), practice_of(patient), days_in(paid),
                                 amount(paid)))
    lines.sort(key=lambda p: (p.team or "", p.patient))

    def roll(key: Callable[[PatientLine], str | None] | None) -> tuple[Line, ...]:
        acc: dict[tuple[str | None, str | None], list[PatientLine]] = {}
        for p in lines:
            acc.setdefault((p.team, key(p) if key else None), []).append(p)
        return tuple(Line(t, k, len(ps), sum(p.days for p in ps), sum((p.amount for p in ps), Decimal("0.00")))
                     for (t, k), ps in sorted(acc.items(), key=lambda kv: (kv[0][0] or "~", kv[0][1] or "~")))

    return Statement(start, end, as_of, tuple(lines), roll(None), roll(lambda p: p.group), roll(lambda p: p.practice))
