"""The FHIR R4 Measure of each indicator and its MeasureReports (summary, subject-list, individual).

Everything here is deterministic: ids from the Measure and the period, strata sorted, no timestamp,
so a rerun over a closed period gives the same bytes and the store keeps the version it has.
"""

from __future__ import annotations

from typing import Any, Iterable

from careflow.measures.model import MeasureDef
from careflow.measures.period import Period
from careflow.measures.rows import STRATIFIERS, Counts, Row, Summary

POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
SCORING = "http://terminology.hl7.org/CodeSystem/measure-scoring"
STRATIFIER = "https://careflow.dev/fhir/CodeSystem/stratifier"
_POP_DISPLAY = {"initial-population": "Initial Population", "denominator": "Denominator",
                "denominator-exclusion": "Denominator Exclusion", "numerator": "Numerator"}
_STRAT_DISPLAY = {"population-group": "population-pyramid group (A-D)", "neighbourhood": "neighbourhood",
                  "practice": "practice (Organization of the GP)", "team": "neighbourhood team"}


def report_id(m: MeasureDef, period: Period, kind: str = "summary") -> str:
    return f"{m.id}-{period.label}" if kind == "summary" else f"{m.id}-{period.label}-{kind}"


def measure_resource(m: MeasureDef) -> dict[str, Any]:
    """The Measure (canonical ``https://careflow.dev/fhir/Measure/<id>``, version = the file's)."""
    criteria = "Tasks" if m.set.subject == "task" else "patients"
    program = "any programme" if m.set.program == "*" else m.set.program
    out: dict[str, Any] = {
        "resourceType": "Measure", "id": m.id, "url": m.url, "version": m.version,
        "identifier": [{"system": "https://careflow.dev/fhir/sid/measure", "value": m.id}],
        "name": m.id.replace("-", "_"), "title": m.title, "status": "active",
        "description": m.indicator.description or f"{m.title} ({m.set.title}; {criteria} of {program})",
        "scoring": {"coding": [{"system": SCORING, "code": "proportion"}]},
        "improvementNotation": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                                            "code": "decrease" if m.indicator.id in ("tasks-overdue", "tasks-escalated") else "increase"}]},
        "group": [{
            "population": [{"code": _code(c), "description": _criteria_text(m, c), "criteria": _criteria(m, c)}
                           for c in _POP_DISPLAY],
            "stratifier": [{"code": _strat_code(s), "description": _STRAT_DISPLAY[s],
                            "criteria": {"language": "application/x-fhir-query", "reference": _definition(m)}}
                           for s in STRATIFIERS],
        }],
    }
    return out


def _definition(m: MeasureDef) -> str:
    """Where the criteria are written: the declarative indicator file (R4 Expression.reference)."""
    return f"https://careflow.dev/measures/{m.set.id}/{m.set.version}#{m.indicator.id}"


def _criteria(m: MeasureDef, code: str) -> dict[str, Any]:
    """The initial population as the FHIR query that finds its CarePlans (or Tasks); the other
    populations by reference to the indicator file that defines them."""
    if code in ("initial-population", "denominator"):
        if m.set.subject == "task":
            assert m.discipline is not None
            performer = ",".join(f"{c.system}|{c.code}" for c in m.discipline.codes)
            return {"language": "application/x-fhir-query", "expression": f"Task?performer={performer}&due-date=ge{{{{periodStart}}}}&due-date=le{{{{periodEnd}}}}"}
        return {"language": "application/x-fhir-query",
                "expression": f"CarePlan?instantiates-canonical={m.set.program}&status=active,on-hold,completed,revoked"
                              "&date=le{{periodEnd}}&date=ge{{periodStart}}"}
    return {"language": "application/x-fhir-query", "reference": _definition(m)}


def _criteria_text(m: MeasureDef, code: str) -> str:
    if code in ("initial-population", "denominator"):
        return ("Tasks of the discipline due in the period" if m.set.subject == "task"
                else f"patients with a CarePlan of {m.set.program} in the period")
    if code == "denominator-exclusion":
        return ", ".join(e.kind.replace("_", " ") for e in m.set.exclusions) or "none"
    return m.title


def _code(code: str) -> dict[str, Any]:
    return {"coding": [{"system": POPULATION, "code": code, "display": _POP_DISPLAY[code]}]}


def _strat_code(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": STRATIFIER, "code": code}], "text": _STRAT_DISPLAY[code]}]


def _populations(c: Counts, lists: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = []
    for code, n in (("initial-population", c.initial), ("denominator", c.denominator),
                    ("denominator-exclusion", c.exclusion), ("numerator", c.numerator)):
        pop: dict[str, Any] = {"code": _code(code), "count": n}
        if lists and code in lists:
            pop["subjectResults"] = {"reference": f"#{lists[code]}"}
        out.append(pop)
    return out


def _score(c: Counts) -> dict[str, Any]:
    s = c.score
    return {} if s is None else {"measureScore": {"value": round(s, 6)}}


def _base(m: MeasureDef, period: Period, kind: str, closed: bool, reporter: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "MeasureReport", "id": report_id(m, period, kind),
        "identifier": [{"system": "https://careflow.dev/fhir/sid/measure-report", "value": report_id(m, period, kind)}],
        "status": "complete" if closed else "pending",
        "type": kind, "measure": m.url,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
    }
    if reporter:
        out["reporter"] = {"reference": reporter}
    return out


def summary_report(m: MeasureDef, period: Period, s: Summary, *, closed: bool, reporter: str | None = None) -> dict[str, Any]:
    """The stored summary: one group, the four populations, the score, one stratifier per kind."""
    out = _base(m, period, "summary", closed, reporter)
    out["group"] = [{
        "population": _populations(s.total), **_score(s.total),
        "stratifier": [{"code": _strat_code(k), "stratum": [
            {"value": {"text": v}, "population": _populations(c), **_score(c)} for v, c in s.strata.get(k, {}).items()]}
            for k in STRATIFIERS],
    }]
    return out


def subject_list_report(m: MeasureDef, period: Period, rows: Iterable[Row], *, closed: bool) -> dict[str, Any]:
    """The subject-list report: the counts and, per population, a contained List of its subjects
    (``Patient/<id>``, or ``Task/<id>`` for Task indicators); ``rows`` are those the caller may see."""
    rows = sorted(rows)
    members = {
        "initial-population": [r.subject for r in rows],
        "denominator": [r.subject for r in rows],
        "denominator-exclusion": [r.subject for r in rows if r.excluded],
        "numerator": [r.subject for r in rows if r.numerator and not r.excluded],
    }
    c = Counts(len(rows), len(members["denominator-exclusion"]), len(members["numerator"]))
    out = _base(m, period, "subject-list", closed, None)
    out["contained"] = [{"resourceType": "List", "id": code, "status": "current", "mode": "snapshot",
                         "title": _POP_DISPLAY[code],
                         **({"entry": [{"item": {"reference": ref}} for ref in refs]} if refs else {"emptyReason": {
                             "coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "nilknown"}]}})}
                        for code, refs in members.items()]
    out["group"] = [{"population": _populations(c, {k: k for k in members}), **_score(c)}]
    return out


def individual_report(m: MeasureDef, period: Period, patient: str, rows: Iterable[Row], *, closed: bool) -> dict[str, Any]:
    """One patient's report: their counts (0/1 per population; for Task indicators their Tasks)."""
    mine = [r for r in rows if r.patient == patient]
    c = Counts(len(mine), sum(r.excluded for r in mine), sum(r.numerator and not r.excluded for r in mine))
    out = _base(m, period, "individual", closed, None)
    out["id"] = f"{report_id(m, period, 'individual')}-{patient}"[:64]
    out["identifier"] = [{"system": "https://careflow.dev/fhir/sid/measure-report", "value": out["id"]}]
    out["subject"] = {"reference": f"Patient/{patient}"}
    out["group"] = [{"population": _populations(c), **_score(c)}]
    return out
