"""The quality indicators over the store: compute the rows (set-wise in SQL, the reference evaluator
on the memory twin), store the Measures and the summary MeasureReports, and answer drill-downs for a
caller through the repository port.

A summary MeasureReport (id ``<measure>-<period>``) is written only when its content changed, so a
rerun over a closed period leaves the stored bytes alone; on the SQL store only the patients whose
compartment changed since the last run are recomputed (``careflow.store.measures_sql``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Sequence

from careflow.access.principal import SYSTEM, Principal
from careflow.engine.reading import chunks, search_all
from careflow.errors import Gone, NotFound
from careflow.fhir.search_query import parse_search
from careflow.measures import reference
from careflow.measures.model import MeasureDef, measures_of
from careflow.measures.period import Period
from careflow.measures.report import measure_resource, report_id, subject_list_report, summary_report
from careflow.measures.rows import Row, Summary, summarise
from careflow.store.port import Repository


@dataclass
class Refresh:
    """What one run did, for the command line and the flow."""

    period: str
    recomputed_patients: int = 0
    full: bool = False
    reports_written: int = 0
    measures_written: int = 0
    summaries: dict[str, Summary] = field(default_factory=dict)


def _sql_engine(repo: Repository) -> Any:
    from careflow.store.sql import SqlRepository

    return repo.engine if isinstance(repo, SqlRepository) else None


def world(repo: Repository) -> reference.World:
    """Every resource of the types the indicators read, as the system (the memory twin's input)."""
    return reference.World(s.resource for t in reference.TYPES for s in search_all(repo, t, []) if s.resource)


def whole_sets(measures: Sequence[MeasureDef]) -> list[MeasureDef]:
    """Every Measure of the indicator sets ``measures`` come from: a set is computed as a whole."""
    sets: dict[str, Any] = {}
    for m in measures:
        sets.setdefault(m.set.id, m.set)
    return measures_of(list(sets.values()))


def compute(repo: Repository, measures: Sequence[MeasureDef], period: Period, *, rows: bool = True
            ) -> tuple[dict[str, list[Row]], Refresh]:
    """The rows of every Measure of the sets of ``measures`` over ``period``: on SQL the stored rows
    brought up to date (per indicator set, only the changed patients recomputed), on the memory twin
    evaluated afresh. ``rows`` False: bring the stored rows up to date without reading them back
    (the SQL summaries count them in the database)."""
    done = Refresh(period.label)
    todo_measures = whole_sets(measures)
    engine = _sql_engine(repo)
    if engine is None:
        w = world(repo)
        done.full = True
        done.recomputed_patients = len({d.patient for t in w.by_type.values() for d in t.values() if d.patient})
        return {m.id: reference.evaluate(m, w, period) for m in todo_measures}, done
    from careflow.store import measures_sql as q

    out: dict[str, list[Row]] = {}
    by_set: dict[str, list[MeasureDef]] = {}
    for m in todo_measures:
        by_set.setdefault(m.set.id, []).append(m)
    with engine.begin() as conn:
        for set_id, group in by_set.items():
            marks = q.fingerprints(conn, q.definitions_hash(group))
            changed, gone, seen = q.changed_patients(conn, set_id, period, marks)
            everyone = not seen
            if everyone or changed or gone:
                todo = sorted(marks) if everyone else sorted(set(changed) | set(gone))
                fresh = {m.id: q.evaluate(conn, m, period, None if everyone else todo) for m in group}
                q.replace_rows(conn, set_id, period, group, todo, fresh, marks, everyone=everyone)
                done.recomputed_patients = max(done.recomputed_patients, len(todo))
                done.full = done.full or everyone
            if rows:
                out.update({m.id: q.stored_rows(conn, m.id, period) for m in group})
    return out, done


def summaries(repo: Repository, measures: Sequence[MeasureDef], period: Period,
              rows: dict[str, list[Row]] | None = None, teams: frozenset[str] | None = None) -> dict[str, Summary]:
    """The counts per Measure (only ``teams``' patients when given): GROUP BY in SQL, else in Python."""
    engine = _sql_engine(repo)
    if engine is None:
        assert rows is not None, "the memory twin keeps no rows: pass them"
        return {m.id: summarise(rows[m.id], teams=teams) for m in measures}
    from careflow.store import measures_sql as q

    with engine.connect() as conn:
        return {m.id: q.summary(conn, m.id, period, teams) for m in measures}


def _same(stored: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if stored is None:
        return False
    return {k: v for k, v in stored.items() if k != "meta"} == new


def refresh(repo: Repository, measures: Sequence[MeasureDef], period: Period, today: date) -> Refresh:
    """Bring the rows, the Measures and the period's summary MeasureReports up to date."""
    measures = whole_sets(measures)
    sql = _sql_engine(repo) is not None
    rows, done = compute(repo, measures, period, rows=not sql)
    done.summaries = summaries(repo, measures, period, None if sql else rows)
    closed = period.closed(today)
    writes: list[dict[str, Any]] = []
    for m in measures:
        for new in (measure_resource(m), summary_report(m, period, done.summaries[m.id], closed=closed)):
            try:
                old = repo.read(new["resourceType"], new["id"]).resource
            except (NotFound, Gone):  # a deleted report is written again
                old = None
            if not _same(old, new):
                writes.append(new)
    if writes:
        with repo.unit_of_work(SYSTEM) as uow:
            for res in writes:
                uow.update(res)
    done.measures_written = sum(r["resourceType"] == "Measure" for r in writes)
    done.reports_written = sum(r["resourceType"] == "MeasureReport" for r in writes)
    return done


def visible_patients(repo: Repository, principal: Principal, patients: Sequence[str]) -> set[str]:
    """The patients among ``patients`` whose record ``principal`` may see (the API's own narrowing)."""
    seen: set[str] = set()
    with repo.unit_of_work(principal) as uow:
        for batch in chunks(sorted(set(patients)), 200):
            result = uow.search(parse_search("Patient", [("_id", ",".join(batch)), ("_count", str(len(batch))),
                                                          ("_total", "none")]))
            seen |= {s.id for s in result.matches}
    return seen


def subject_list(repo: Repository, principal: Principal, m: MeasureDef, period: Period, today: date,
                 rows: Sequence[Row]) -> dict[str, Any]:
    """The subject-list MeasureReport of the subjects ``principal`` may see (Patient/<id> or Task/<id>)."""
    mine = visible_patients(repo, principal, [r.patient for r in rows])
    return subject_list_report(m, period, [r for r in rows if r.patient in mine], closed=period.closed(today))


__all__ = ["Refresh", "compute", "refresh", "report_id", "subject_list", "summaries", "visible_patients", "world"]


def live_rows(repo: Repository, m: MeasureDef, period: Period) -> list[Row]:
    """``m``'s rows computed now and stored nowhere (the API's ``$evaluate-measure``): the same
    set-wise query on SQL, read-only, so concurrent callers never contend for the stored rows."""
    engine = _sql_engine(repo)
    if engine is None:
        return reference.evaluate(m, world(repo), period)
    from careflow.store import measures_sql as q

    with engine.connect() as conn:
        return q.evaluate(conn, m, period)


def regions(repo: Repository) -> frozenset[str]:
    """The region's Organizations: those the neighbourhood teams are ``partOf``."""
    parents = {(s.resource or {}).get("partOf", {}).get("reference") for s in search_all(repo, "Organization", [])}
    return frozenset(p for p in parents if isinstance(p, str) and p.startswith("Organization/"))


def evaluate_for(repo: Repository, principal: Principal, m: MeasureDef, period: Period, today: date,
                 report_type: str, subject: str | None = None) -> dict[str, Any]:
    """One MeasureReport for ``principal`` (``$evaluate-measure``): ``population`` the summary (the
    region's, or a coach's own team's), ``subject-list`` the subjects they may see, ``subject`` one
    patient they may see (NotFound otherwise, as a read of a hidden patient answers)."""
    from careflow.measures.access import aggregate_teams
    from careflow.measures.report import individual_report

    if report_type == "population":
        teams = aggregate_teams(principal, regions(repo))  # refuse before computing anything
    rows = live_rows(repo, m, period)
    closed = period.closed(today)
    if report_type == "population":
        counted = summarise(rows, teams=teams)
        reporter = next(iter(teams)) if teams is not None and len(teams) == 1 else None
        return summary_report(m, period, counted, closed=closed, reporter=reporter)
    if report_type == "subject-list":
        return subject_list(repo, principal, m, period, today, rows)
    assert subject is not None
    pid = subject.split("/", 1)[1] if subject.startswith("Patient/") else subject
    with repo.unit_of_work(principal) as uow:
        uow.read("Patient", pid)  # NotFound for a patient the caller may not see
    return individual_report(m, period, pid, rows, closed=closed)
