"""The quality indicators computed set-wise in the SQL store: one query per indicator over the search
index tables (the resource contents are encrypted; the codes, references, instants and values the
indicators look at are index rows in clear), the per-subject rows kept in ``measure_result`` and
counted with GROUP BY.

The rows are those of the reference evaluator (``careflow.measures.reference``), which the tests use
as the oracle. ``measure_watermark`` keeps, per period and patient, a fingerprint of the patient's
compartment (the newest ``resource.last_updated`` and the number of resources in it) and of the
definitions: a rerun recomputes only the patients whose fingerprint changed.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, text

from careflow.measures.model import (
    AnyCriterion,
    Criterion,
    MeasureDef,
    MedicationCriterion,
    ObservationCriterion,
    TaskCriterion,
    TaskDoneCriterion,
)
from careflow.measures.period import Period, window_since
from careflow.measures.reference import CONDITION_ACTIVE, OBSERVATION_STATUSES, PLAN_STATUSES
from careflow.measures.rows import STRATIFIERS, Counts, Row, Summary
from careflow.naming import POPULATION_GROUP, TASK_BUSINESS_STATUS
from careflow.programs.codes import ATC
from careflow.store.sql import HOT_SQL
from careflow.store.tables import measure_result, measure_watermark

CHUNK = 500  # patient ids per restricted query


class _Sql:
    """Builds one query's text and its named parameters."""

    def __init__(self, dialect: str) -> None:
        self.params: dict[str, Any] = {}
        self.hot = HOT_SQL["postgresql" if dialect == "postgresql" else "sqlite"]

    def p(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def ts(self, moment: Any) -> str:
        return self.p(self.hot.ts(moment))

    def codes(self, alias: str, pairs: Iterable[tuple[str, str]]) -> str:
        return "(" + " OR ".join(f"({alias}.system = {self.p(s)} AND {alias}.code = {self.p(c)})" for s, c in pairs) + ")"

    def code_in(self, alias: str, codes: Iterable[str]) -> str:
        return f"{alias}.code IN (" + ", ".join(self.p(c) for c in codes) + ")"

    def token(self, alias: str, rtype: str, param: str, cond: str, on: str = "x.pk") -> str:
        return (f"EXISTS (SELECT 1 FROM idx_token {alias} WHERE {alias}.res_pk = {on} AND {alias}.rtype = '{rtype}'"
                f" AND {alias}.param = '{param}' AND {cond})")


def _pairs(codings: Iterable[Any]) -> list[tuple[str, str]]:
    return [(c.system, c.code) for c in codings]


def _dated(q: _Sql, rtype: str, param: str, since: Any, period: Period, on: str = "x.pk", alias: str = "dd") -> str:
    return (f"EXISTS (SELECT 1 FROM idx_date {alias} WHERE {alias}.res_pk = {on} AND {alias}.rtype = '{rtype}' AND"
            f" {alias}.param = '{param}' AND {alias}.low >= {q.ts(since)} AND {alias}.low < {q.ts(period.after)})")


def _criterion(q: _Sql, c: Criterion, period: Period) -> str:
    if isinstance(c, AnyCriterion):
        return "(" + " OR ".join(_criterion(q, x, period) for x in c.any) + ")"
    if isinstance(c, ObservationCriterion):
        o = c.observation
        since = window_since(o, period)
        match = (f"x.patient = t.pid AND x.type = 'Observation'"
                 f" AND {q.token('oc', 'Observation', 'code', q.codes('oc', _pairs(o.codes)))}"
                 f" AND {q.token('os', 'Observation', 'status', q.code_in('os', OBSERVATION_STATUSES))}")
        window = (f"d.res_pk = x.pk AND d.rtype = 'Observation' AND d.param = 'date' AND d.low >= {q.ts(since)}"
                  f" AND d.low < {q.ts(period.after)}")
        if o.below is None:
            return f"EXISTS (SELECT 1 FROM resource x JOIN idx_date d ON {window} WHERE {match})"
        latest = f"(SELECT MAX(d.low) FROM resource x JOIN idx_date d ON {window} WHERE {match})"
        value = (f"(SELECT MAX(v.value) FROM resource x JOIN idx_date d ON {window}"
                 f" JOIN idx_quantity v ON v.res_pk = x.pk AND v.rtype = 'Observation' AND v.param = 'value-quantity'"
                 f" WHERE {match} AND d.low = {latest})")
        groups = " ".join(f"WHEN {q.p(g)} THEN {q.p(float(v))}" for g, v in sorted((o.below_for_group or {}).items()))
        target = f"CASE t.grp {groups} ELSE {q.p(float(o.below))} END" if groups else q.p(float(o.below))
        return f"COALESCE({value} < {target}, {'false' if q.hot.pg else '0'})"
    if isinstance(c, TaskDoneCriterion):
        td = c.task_done
        since = window_since(td, period)
        return (f"EXISTS (SELECT 1 FROM resource x WHERE x.patient = t.pid AND x.type = 'Task'"
                f" AND {q.token('tc', 'Task', 'code', q.codes('tc', _pairs(td.codes)))}"
                f" AND {q.token('ts', 'Task', 'status', 'ts.code = ' + q.p('completed'))}"
                f" AND {_dated(q, 'Task', 'modified', since, period)})")
    if isinstance(c, MedicationCriterion):
        med = c.medication
        atc = "(" + " OR ".join(f"mc.code LIKE {q.p(a + '%')}" for a in med.atc) + f") AND mc.system = {q.p(ATC)}"
        alts: list[str] = []
        if "active" in med.status:
            alts.append(f"(x.type IN ('MedicationStatement', 'MedicationRequest') AND"
                        f" EXISTS (SELECT 1 FROM idx_token ms WHERE ms.res_pk = x.pk AND ms.param = 'status' AND ms.code = {q.p('active')}))")
        if "not-taken" in med.status:
            alts.append(f"(x.type = 'MedicationStatement' AND"
                        f" EXISTS (SELECT 1 FROM idx_token ms WHERE ms.res_pk = x.pk AND ms.param = 'status' AND ms.code = {q.p('not-taken')}))")
        return (f"EXISTS (SELECT 1 FROM resource x WHERE x.patient = t.pid AND x.type IN ('MedicationStatement', 'MedicationRequest')"
                f" AND EXISTS (SELECT 1 FROM idx_token mc WHERE mc.res_pk = x.pk AND mc.param = 'code' AND {atc})"
                f" AND ({' OR '.join(alts)}))")
    if isinstance(c, TaskCriterion):
        ts = c.task
        if ts.done_on_time:
            return (f"({q.token('ts', 'Task', 'status', 'ts.code = ' + q.p('completed'), on='t.tpk')}"
                    f" AND (SELECT MIN(m.low) FROM idx_date m WHERE m.res_pk = t.tpk AND m.rtype = 'Task' AND m.param = 'modified')"
                    f" < (SELECT MAX(u.high) FROM idx_date u WHERE u.res_pk = t.tpk AND u.rtype = 'Task' AND u.param = 'due-date'))")
        pairs = [(TASK_BUSINESS_STATUS, b) for b in ts.business_status or ()]
        return q.token("bs", "Task", "business-status", q.codes("bs", pairs), on="t.tpk")
    raise TypeError(f"unknown criterion {type(c).__name__}")  # pragma: no cover


def _exclusions(q: _Sql, m: MeasureDef, period: Period) -> str:
    parts: list[str] = []
    for ex in m.set.exclusions:
        kind = ex.kind
        if kind == "deceased":
            parts.append(f"EXISTS (SELECT 1 FROM resource x JOIN idx_date dd ON dd.res_pk = x.pk AND dd.rtype = 'Patient'"
                         f" AND dd.param = 'death-date' AND dd.low < {q.ts(period.after)} WHERE x.type = 'Patient' AND x.id = t.pid)")
        elif kind == "consent_withdrawn":
            def consent(cond: str) -> str:
                return (f"EXISTS (SELECT 1 FROM resource x WHERE x.patient = t.pid AND x.type = 'Consent'"
                        f" AND {q.token('cs', 'Consent', 'status', cond)})")
            parts.append(f"({consent(q.code_in('cs', ('inactive', 'rejected')))} AND NOT {consent('cs.code = ' + q.p('active'))})")
        elif kind == "condition":
            assert ex.condition is not None
            parts.append(f"EXISTS (SELECT 1 FROM resource x WHERE x.patient = t.pid AND x.type = 'Condition'"
                         f" AND {q.token('cc', 'Condition', 'code', q.codes('cc', _pairs(ex.condition.codes)))}"
                         f" AND {q.token('ck', 'Condition', 'clinical-status', q.code_in('ck', CONDITION_ACTIVE))})")
        elif kind == "task_status" and m.set.subject == "task":
            parts.append(q.token("xs", "Task", "status", q.code_in("xs", ex.task_status or ()), on="t.tpk"))
    return "(" + " OR ".join(parts) + ")" if parts else ("false" if q.hot.pg else "0")


def _subjects(q: _Sql, m: MeasureDef, period: Period, patients: Sequence[str] | None) -> str:
    only = f" AND r.patient IN ({', '.join(q.p(p) for p in patients)})" if patients is not None else ""
    if m.set.subject == "patient":
        program = m.set.program
        target = "" if program == "*" else f" AND ic.url = {q.p(program)}"
        return (f"SELECT DISTINCT r.patient AS pid, 'Patient/' || r.patient AS subject, 0 AS tpk FROM resource r"
                f" JOIN idx_reference ic ON ic.res_pk = r.pk AND ic.rtype = 'CarePlan' AND ic.param = 'instantiates-canonical'{target}"
                f" WHERE r.type = 'CarePlan' AND r.patient IS NOT NULL AND r.patient <> ''{only}"
                f" AND {q.token('st', 'CarePlan', 'status', q.code_in('st', PLAN_STATUSES), on='r.pk')}"
                f" AND EXISTS (SELECT 1 FROM idx_date pd WHERE pd.res_pk = r.pk AND pd.rtype = 'CarePlan' AND pd.param = 'date'"
                f" AND pd.low < {q.ts(period.after)} AND pd.high > {q.ts(period.low)})")
    assert m.discipline is not None
    return (f"SELECT r.patient AS pid, 'Task/' || r.id AS subject, r.pk AS tpk FROM resource r"
            f" WHERE r.type = 'Task' AND r.patient IS NOT NULL AND r.patient <> ''{only}"
            f" AND {q.token('pf', 'Task', 'performer', q.codes('pf', _pairs(m.discipline.codes)), on='r.pk')}"
            f" AND EXISTS (SELECT 1 FROM idx_date dd WHERE dd.res_pk = r.pk AND dd.rtype = 'Task' AND dd.param = 'due-date'"
            f" AND dd.low >= {q.ts(period.low)} AND dd.low < {q.ts(period.after)})")


def _strata(q: _Sql) -> str:
    gp = ("(SELECT MIN(g.target_type || '/' || g.target_id) FROM resource pt JOIN idx_reference g ON g.res_pk = pt.pk"
          " AND g.rtype = 'Patient' AND g.param = 'general-practitioner' WHERE pt.type = 'Patient' AND pt.id = s.pid)")
    managing = ("(SELECT MIN('Organization/' || g.target_id) FROM resource pt JOIN idx_reference g ON g.res_pk = pt.pk"
                " AND g.rtype = 'Patient' AND g.param = 'organization' AND g.target_type = 'Organization'"
                " WHERE pt.type = 'Patient' AND pt.id = s.pid)")
    return (f"SELECT s.pid, s.subject, s.tpk,"
            f" (SELECT MIN(gt.code) FROM resource ra JOIN idx_token gt ON gt.res_pk = ra.pk AND gt.rtype = 'RiskAssessment'"
            f" AND gt.param = 'population-group' AND gt.system = {q.p(POPULATION_GROUP)}"
            f" WHERE ra.patient = s.pid AND ra.type = 'RiskAssessment') AS grp,"
            f" (SELECT MIN(nt.code) FROM resource pt JOIN idx_token nt ON nt.res_pk = pt.pk AND nt.rtype = 'Patient'"
            f" AND nt.param = 'neighbourhood' WHERE pt.type = 'Patient' AND pt.id = s.pid) AS hood,"
            f" {gp} AS gp, {managing} AS managing")


def _practice(gp_alias: str) -> str:
    role_org = ("(SELECT MIN('Organization/' || o.target_id) FROM resource pr JOIN idx_reference o ON o.res_pk = pr.pk"
                " AND o.rtype = 'PractitionerRole' AND o.param = 'organization' AND o.target_type = 'Organization'"
                f" WHERE pr.type = 'PractitionerRole' AND pr.id = substr({gp_alias}, 18))")
    return (f"CASE WHEN {gp_alias} LIKE 'Organization/%' THEN {gp_alias}"
            f" WHEN {gp_alias} LIKE 'PractitionerRole/%' THEN {role_org} END")


def rows_sql(m: MeasureDef, period: Period, dialect: str, patients: Sequence[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The query giving ``m``'s rows over ``period`` (only ``patients``' when given)."""
    q = _Sql(dialect)
    subjects = _subjects(q, m, period, patients)
    strata = _strata(q)
    excluded = _exclusions(q, m, period)
    numerator = " AND ".join(_criterion(q, c, period) for c in m.indicator.numerator)
    one, zero = ("true", "false") if q.hot.pg else ("1", "0")
    # the subjects and their strata are materialised once (CTEs), so the planner neither repeats the
    # strata subqueries inside every criterion nor joins the subjects before it knows how many there are
    sql = (f"WITH s AS MATERIALIZED ({subjects}), u AS MATERIALIZED ({strata} FROM s),"
           f" t AS MATERIALIZED (SELECT u.*, {_practice('u.gp')} AS practice FROM u)"
           f" SELECT t.subject, t.pid, CASE WHEN {excluded} THEN {one} ELSE {zero} END AS excluded,"
           f" CASE WHEN {numerator} THEN {one} ELSE {zero} END AS numerator, t.grp, t.hood,"
           f" t.practice, COALESCE(t.managing, t.practice) AS team FROM t ORDER BY t.subject")
    return sql, q.params


def evaluate(conn: Connection, m: MeasureDef, period: Period, patients: Sequence[str] | None = None) -> list[Row]:
    """``m``'s rows, computed by the database."""
    out: list[Row] = []
    chunks = [None] if patients is None else [list(patients[i:i + CHUNK]) for i in range(0, len(patients), CHUNK)]
    for chunk in chunks:
        sql, params = rows_sql(m, period, conn.dialect.name, chunk)
        for r in conn.execute(text(sql), params):
            excluded = bool(r.excluded)
            out.append(Row(r.subject, r.pid, excluded, bool(r.numerator) and not excluded, r.grp, r.hood, r.practice, r.team))
    return sorted(out)


# --- stored rows and incremental refresh --------------------------------------------------------------------


def definitions_hash(measures: Sequence[MeasureDef]) -> str:
    """Changes when any definition changes: every patient is recomputed then."""
    h = hashlib.sha256()
    for m in measures:
        h.update(f"{m.id}\n{m.version}\n{m.set.model_dump_json()}\n".encode())
    return h.hexdigest()[:16]


def fingerprints(conn: Connection, defs: str) -> dict[str, str]:
    """patient id -> fingerprint of their compartment (newest change, resource count) and the definitions."""
    rows = conn.execute(text("SELECT patient, MAX(last_updated) AS lu, COUNT(*) AS n FROM resource"
                             " WHERE patient IS NOT NULL AND patient <> '' GROUP BY patient"))
    return {r.patient: f"{defs}:{r.lu}:{r.n}" for r in rows}


def _marks(set_id: str, period: Period) -> Any:
    return (measure_watermark.c.measure_set == set_id, measure_watermark.c.period == period.label)


def changed_patients(conn: Connection, set_id: str, period: Period, now: dict[str, str]) -> tuple[list[str], list[str], bool]:
    """(patients to recompute, patients whose stored fingerprint is gone, whether the set was ever
    computed for ``period``)."""
    stored = {r.patient: r.fingerprint for r in conn.execute(measure_watermark.select().where(*_marks(set_id, period)))}
    changed = sorted(p for p, f in now.items() if stored.get(p) != f)
    gone = sorted(set(stored) - set(now))
    return changed, gone, bool(stored)


def replace_rows(conn: Connection, set_id: str, period: Period, measures: Sequence[MeasureDef], patients: Sequence[str],
                 rows: dict[str, list[Row]], marks: dict[str, str], *, everyone: bool) -> None:
    """Store the recomputed rows of one indicator set's ``measures`` for ``patients`` (every patient
    when ``everyone``) and their fingerprints."""
    ids = [m.id for m in measures]
    mine = (measure_result.c.period == period.label, measure_result.c.measure.in_(ids))
    if everyone:
        conn.execute(measure_result.delete().where(*mine))
        conn.execute(measure_watermark.delete().where(*_marks(set_id, period)))
    else:
        for i in range(0, len(patients), CHUNK):
            chunk = list(patients[i:i + CHUNK])
            conn.execute(measure_result.delete().where(*mine, measure_result.c.patient.in_(chunk)))
            conn.execute(measure_watermark.delete().where(*_marks(set_id, period), measure_watermark.c.patient.in_(chunk)))
    batch = [{"measure": mid, "period": period.label, "subject": r.subject, "patient": r.patient,
              "excluded": r.excluded, "numerator": r.numerator, "grp": r.group, "hood": r.neighbourhood,
              "practice": r.practice, "team": r.team} for mid in ids for r in rows.get(mid, ())]
    for i in range(0, len(batch), 5000):
        conn.execute(measure_result.insert(), batch[i:i + 5000])
    mark_rows = [{"measure_set": set_id, "period": period.label, "patient": p, "fingerprint": marks[p]} for p in patients if p in marks]
    for i in range(0, len(mark_rows), 5000):
        conn.execute(measure_watermark.insert(), mark_rows[i:i + 5000])


def stored_rows(conn: Connection, measure: str, period: Period, teams: frozenset[str] | None = None) -> list[Row]:
    stmt = measure_result.select().where(measure_result.c.measure == measure, measure_result.c.period == period.label)
    if teams is not None:
        stmt = stmt.where(measure_result.c.team.in_(sorted(teams)))
    return sorted(Row(r.subject, r.patient, bool(r.excluded), bool(r.numerator), r.grp, r.hood, r.practice, r.team)
                  for r in conn.execute(stmt))


_COLUMN = {"population-group": "grp", "neighbourhood": "hood", "practice": "practice", "team": "team"}


def summary(conn: Connection, measure: str, period: Period, teams: frozenset[str] | None = None) -> Summary:
    """The counts of the stored rows, by GROUP BY in the database (``careflow.measures.rows.summarise``
    is the Python twin)."""
    where = "measure = :m AND period = :p"
    params: dict[str, Any] = {"m": measure, "p": period.label}
    if teams is not None:
        where += " AND team IN (" + ", ".join(f":t{i}" for i in range(len(teams))) + ")"
        params.update({f"t{i}": t for i, t in enumerate(sorted(teams))})
    counts = ("COUNT(*) AS n, SUM(CASE WHEN excluded THEN 1 ELSE 0 END) AS x,"
              " SUM(CASE WHEN numerator AND NOT excluded THEN 1 ELSE 0 END) AS k")
    r = conn.execute(text(f"SELECT {counts} FROM measure_result WHERE {where}"), params).one()
    total = Counts(int(r.n), int(r.x or 0), int(r.k or 0))
    strata: dict[str, dict[str, Counts]] = {}
    for s in STRATIFIERS:
        col = _COLUMN[s]
        got = conn.execute(text(f"SELECT {col} AS v, {counts} FROM measure_result WHERE {where} AND {col} IS NOT NULL"
                                f" GROUP BY {col}"), params)
        strata[s] = dict(sorted((g.v, Counts(int(g.n), int(g.x or 0), int(g.k or 0))) for g in got))
    return Summary(total, strata)
