"""The region's shared dashboard: four panels of aggregates, each a table the chart, the text
alternative and the CSV download are all drawn from (so they cannot disagree).

* **pyramid**: patients per neighbourhood and pyramid group (``Patient?neighbourhood=…&population-group=…``,
  the group the stored stratification keeps on the Patient in step with its RiskAssessment);
* **enrolment**: patients with a programme part (its CarePlan; not a draft) covering each of the last
  12 months (``CarePlan?instantiates-canonical=…&date=ge…&date=le…``);
* **work**: open Tasks per discipline (``performer`` = the role's codes) that are escalated or overdue
  (``business-status``); a discipline with neither is left out;
* **indicators**: the quality indicators per team, per period, and the region's average, from the
  stored summary MeasureReports (``MeasureReport?subject:missing=true&status=complete``), titled from
  their Measure (``Measure?url=…``) when there is one.

Who and what: :func:`careflow.population.shared_views.aggregate_reader` gives the principal every read
runs as (a team coach: the patients they may see; the region: every patient), marked ``shared``, so
the store itself counts only patients whose sharing Consent holds; a caller who may see no aggregates
is refused before anything is read. Counts of 1 to 4 are shown as ``<5`` (``shown``), and an indicator
whose denominator is 1 to 4 shows no score. A team coach sees the indicator lines of their own team(s)
beside the region's average; the team strata of the report are picked by the same ``visible_teams``
rule as the financing's lines.

What a page costs (each a count inside the database or a short page of directory data and stored
reports, never a read of every patient): the teams 1 search (a team coach 2: is their organisation
the region, and its name); the pyramid 1 Location search and 4 counts per neighbourhood; the
enrolment 12 counts per programme; the work 2 counts per discipline; the indicators 1 search per 500
summary reports since 1 January of the first month's year, and 1 Measure search. With
the demo region's 8 neighbourhoods, 4 programmes and 12 disciplines: about 110 queries, each answered
from the search index; one panel's CSV costs the teams' search and that panel's queries only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable

from careflow.access.principal import Principal
from careflow.fhir.search_query import parse_search
from careflow.population.shared_views import aggregate_reader, shown, suppressed
from careflow.store.port import Repository, Stored
from careflow.web.worklist import OPEN

GROUPS = ("A", "B", "C", "D")
MONTHS = 12
ENROLLED = "active,on-hold,completed,revoked"  # a programme part the patient is in (never a draft)
WORK = ("escalated", "overdue")
MEASURE_BASE = "https://careflow.dev/fhir/Measure/"
STRATIFIER = "https://careflow.dev/fhir/CodeSystem/stratifier"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
PANELS = ("pyramid", "enrolment", "work", "indicators")
PAGE = 500

Value = int | float | None  # a count, a score (0..1), or None: suppressed / not known


@dataclass
class Row:
    key: str
    label: str
    values: list[Value]
    region: bool = False  # the region's average line of an indicator


@dataclass
class Table:
    """One chart's numbers: rows (a neighbourhood, programme, discipline or team) by columns (a
    group, month, kind of work or period). ``score``: values are proportions, else patient counts."""

    id: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    score: bool = False
    title: str = ""  # an indicator's title

    @property
    def empty(self) -> bool:
        return not self.rows or all(v is None or v == 0 for r in self.rows for v in r.values)

    def maximum(self) -> float:
        return max([1.0, *(float(v) for r in self.rows for v in r.values if v is not None)])


@dataclass
class Dashboard:
    everything: bool  # the region's view
    teams: list[tuple[str, str]]  # (Organization/id, name) shown
    pyramid: Table | None = None
    enrolment: Table | None = None
    work: Table | None = None
    indicators: list[Table] = field(default_factory=list)


def _count(uow: Any, rtype: str, params: list[tuple[str, str]]) -> int:
    return int(uow.search(parse_search(rtype, [*params, ("_summary", "count")], strict=True)).total or 0)


def _all(uow: Any, rtype: str, params: list[tuple[str, str]]) -> Iterable[Stored]:
    """Every match, page by page (keyset cursor): for directory data and stored reports only."""
    cursor: str | None = None
    while True:
        page = [*params, ("_count", str(PAGE)), ("_total", "none"), *((("_cursor", cursor),) if cursor else ())]
        found = uow.search(parse_search(rtype, page, strict=True))
        yield from found.matches
        cursor = found.next_cursor
        if not cursor:
            return


def _months(today: date) -> list[tuple[date, date]]:
    first = today.replace(day=1)
    out = []
    for _ in range(MONTHS):
        end = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        out.append((first, end))
        first = (first - timedelta(days=1)).replace(day=1)
    return out[::-1]


def _teams(uow: Any, principal: Principal) -> tuple[list[str], dict[str, str]]:
    """The regions among the caller's organisations, and the teams (id -> name) the region has."""
    orgs = [o for o in principal.organizations if o.startswith("Organization/")]
    names: dict[str, str] = {}
    if principal.is_system:
        found = list(_all(uow, "Organization", [("partof:missing", "false")]))
    elif orgs:
        found = list(_all(uow, "Organization", [("partof", ",".join(orgs))]))
    else:
        found = []
    regions = sorted({str(((s.resource or {}).get("partOf") or {}).get("reference")) for s in found} & set(orgs))
    for s in found:
        names[s.reference] = str((s.resource or {}).get("name") or s.id)
    if not regions and orgs:
        for s in _all(uow, "Organization", [("_id", ",".join(o.split("/", 1)[1] for o in orgs))]):
            names[s.reference] = str((s.resource or {}).get("name") or s.id)
    return regions, names


def dashboard(repo: Repository, principal: Principal, programs: dict[str, Any], role_codes: dict[tuple[str, str], str],
              today: date, lang: str, only: str | None = None) -> Dashboard:
    """Every panel (or ``only`` one) for ``principal``. Raises NotForYou before reading any patient
    data for a caller who may see no aggregates."""
    from careflow.population.shared_views import NotForYou, may_see_aggregates

    if not may_see_aggregates(principal):
        raise NotForYou("the dashboard is for the team coach and the region")
    with repo.unit_of_work(principal) as uow:
        regions, names = _teams(uow, principal)
    reader, teams = aggregate_reader(principal, regions)
    shown_teams = sorted(names.items() if teams is None else ((t, names.get(t, t.split("/", 1)[1])) for t in teams),
                         key=lambda kv: kv[1])
    out = Dashboard(everything=teams is None, teams=shown_teams)
    team_refs = [t for t, _ in shown_teams]
    with repo.unit_of_work(reader) as uow:
        if only in (None, "pyramid"):
            out.pyramid = _pyramid(uow, team_refs)
        if only in (None, "enrolment"):
            out.enrolment = _enrolment(uow, programs, today, lang)
        if only in (None, "work"):
            out.work = _work(uow, role_codes)
        if only in (None, "indicators"):
            out.indicators = _indicators(uow, today, shown_teams, teams is None)
    return out


def _pyramid(uow: Any, teams: list[str]) -> Table:
    table = Table("pyramid", list(GROUPS))
    hoods: set[str] = set()
    if teams:
        for s in _all(uow, "Location", [("organization", ",".join(teams)), ("partof:missing", "true")]):
            name = (s.resource or {}).get("name")
            if name:
                hoods.add(str(name))
    for hood in sorted(hoods):
        counts = [_count(uow, "Patient", [("neighbourhood", hood), ("population-group", g)]) for g in GROUPS]
        table.rows.append(Row(hood, hood, [shown(n) for n in counts]))
    return table


def _enrolment(uow: Any, programs: dict[str, Any], today: date, lang: str) -> Table:
    months = _months(today)
    table = Table("enrolment", [m.strftime("%Y-%m") for m, _ in months])
    for pid, program in sorted(programs.items()):
        counts = [_count(uow, "CarePlan", [("instantiates-canonical", program.url), ("status", ENROLLED),
                                           ("date", f"ge{start.isoformat()}"), ("date", f"le{end.isoformat()}")])
                  for start, end in months]
        title = program.title.nl if lang == "nl" else program.title.en
        table.rows.append(Row(pid, title, [shown(n) for n in counts]))
    return table


def _work(uow: Any, role_codes: dict[tuple[str, str], str]) -> Table:
    table = Table("work", list(WORK))
    by_role: dict[str, list[str]] = {}
    for (system, code), role in sorted(role_codes.items()):
        by_role.setdefault(role, []).append(f"{system}|{code}")
    status = ("status", ",".join(OPEN))
    for role, codes in sorted(by_role.items()):
        counts = [_count(uow, "Task", [status, ("business-status", kind), ("performer", ",".join(codes))]) for kind in WORK]
        if any(counts):  # a discipline with no late work is left out: the chart shows where work waits
            table.rows.append(Row(role, role, [shown(n) for n in counts]))
    return table


# --------------------------------------------------------------------------- the indicators


def _coded(concept: Any, system: str) -> str | None:
    for c in (concept or {}).get("coding") or ():
        if c.get("system") == system:
            return str(c.get("code"))
    return None


def _populations(part: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pop in part.get("population") or ():
        code = _coded(pop.get("code"), POPULATION)
        if code and isinstance(pop.get("count"), int):
            out[code] = pop["count"]
    return out


def score_of(part: dict[str, Any]) -> float | None:
    """The measureScore a shared view may show: none without a denominator, or when the denominator
    (after exclusions) is 1 to 4 patients."""
    counts = _populations(part)
    denominator = counts.get("denominator", 0) - counts.get("denominator-exclusion", 0)
    value = (part.get("measureScore") or {}).get("value")
    if not isinstance(value, (int, float)) or denominator <= 0 or suppressed(denominator):
        return None
    return float(value)


def _period_key(report: dict[str, Any]) -> tuple[str, str] | None:
    """("month", "2026-05") or ("year", "2026"), or None for another kind of period."""
    period = report.get("period") or {}
    start, end = str(period.get("start") or "")[:10], str(period.get("end") or "")[:10]
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        return None
    if first.day == 1 and first.month == 1 and last == date(first.year, 12, 31):
        return "year", f"{first.year}"
    month_end = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    if first.day == 1 and last == month_end:
        return "month", first.strftime("%Y-%m")
    return None


def _team_strata(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    group = (report.get("group") or [{}])[0]
    out: dict[str, dict[str, Any]] = {}
    for strat in group.get("stratifier") or ():
        code = ((strat.get("code") or [{}])[0].get("coding") or [{}])[0]
        if code.get("system") == STRATIFIER and code.get("code") == "team":
            for stratum in strat.get("stratum") or ():
                text = str((stratum.get("value") or {}).get("text") or "")
                if text:
                    out[text] = stratum
    return out


def _stratum_for(team: str, name: str, strata: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The team's stratum, whichever way the report names it (``Organization/id``, ``id`` or name)."""
    for key in (team, team.split("/", 1)[-1], name):
        if key in strata:
            return strata[key]
    return None


def _indicators(uow: Any, today: date, teams: list[tuple[str, str]], everything: bool) -> list[Table]:
    since = _months(today)[0][0].replace(month=1)  # the year of the first month shown, for yearly reports too
    latest: dict[tuple[str, str, str], tuple[Any, dict[str, Any]]] = {}
    for s in _all(uow, "MeasureReport", [("subject:missing", "true"), ("status", "complete"),
                                         ("period", f"ge{since.isoformat()}")]):
        report = s.resource or {}
        measure = str(report.get("measure") or "").split("|")[0]
        key = _period_key(report)
        if report.get("type") != "summary" or not measure.startswith(MEASURE_BASE) or key is None:
            continue
        slot = (measure, *key)
        if slot not in latest or latest[slot][0] < s.last_updated:
            latest[slot] = (s.last_updated, report)
    urls = sorted({m for m, _, _ in latest})
    titles: dict[str, str] = {}
    if urls:
        for s in _all(uow, "Measure", [("url", ",".join(urls))]):
            m = s.resource or {}
            if m.get("url") and (m.get("title") or m.get("name")):
                titles[str(m["url"])] = str(m.get("title") or m.get("name"))
    out = []
    for url in urls:
        kinds = {k for m, k, _ in latest if m == url}
        kind = "month" if "month" in kinds else "year"
        periods = sorted(p for m, k, p in latest if m == url and k == kind)
        reports = [latest[(url, kind, p)][1] for p in periods]
        ident = url.removeprefix(MEASURE_BASE)
        table = Table(ident, periods, score=True, title=titles.get(url, ident))
        for team, name in teams:
            values: list[Value] = []
            for r in reports:
                stratum = _stratum_for(team, name, _team_strata(r))
                values.append(None if stratum is None else score_of(stratum))
            table.rows.append(Row(team, name, values))
        table.rows.append(Row("region", "", [score_of((r.get("group") or [{}])[0]) for r in reports], region=True))
        out.append(table)
    return out


# --------------------------------------------------------------------------- CSV


def cell_text(value: Value, score: bool) -> str:
    """A cell as the table and the CSV show it: ``<5`` for a suppressed count, a score in per cent."""
    if value is None:
        return "" if score else "<5"
    if score:
        return f"{100 * float(value):.1f}"
    return str(value)


def table_csv(table: Table) -> str:
    """A count panel as CSV: one line per row, one column per group / month / kind of work, the
    cells exactly as the chart and its table show them (``<5`` for a suppressed count)."""
    return _csv([["row", *table.columns], *([r.key, *(cell_text(v, False) for v in r.values)] for r in table.rows)])


def indicators_csv(tables: list[Table]) -> str:
    """The indicators as CSV: one line per indicator, team (or ``region``, the average) and period,
    the score in per cent as the chart draws it (empty: no score, or a denominator under 5)."""
    lines = [["indicator", "team", "period", "score_percent"]]
    for t in tables:
        for r in t.rows:
            lines.extend([t.id, r.label if not r.region else "region", p, cell_text(v, True)]
                         for p, v in zip(t.columns, r.values))
    return _csv(lines)


def _csv(lines: Iterable[list[str]]) -> str:
    import csv
    import io

    from careflow.population.spreadsheet import text_cell

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([text_cell(c) for c in line] for line in lines)  # names: never formulas
    return buf.getvalue()
