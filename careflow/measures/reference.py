"""The plain Python evaluation of the indicators: the memory store's answer and the tests' oracle.

It reads each resource through the same index extraction the SQL store writes
(``careflow.fhir.search_index.extract_index``), so both see the same codes, references and instants,
and then applies the definitions patient by patient. The SQL store computes the same rows set-wise
(``careflow.store.measures_sql``); the tests prove them equal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from careflow.access.compartment import patient_of
from careflow.fhir.search_index import extract_index
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
from careflow.measures.rows import Row
from careflow.naming import POPULATION_GROUP, TASK_BUSINESS_STATUS
from careflow.programs.codes import ATC

PLAN_STATUSES = ("active", "on-hold", "completed", "revoked")
OBSERVATION_STATUSES = ("final", "amended", "corrected")
CONDITION_ACTIVE = ("active", "recurrence", "relapse")
TYPES = ("Patient", "CarePlan", "Task", "Observation", "Condition", "Consent", "MedicationStatement",
         "MedicationRequest", "RiskAssessment", "PractitionerRole")


@dataclass
class Doc:
    """One resource as its index rows."""

    type: str
    id: str
    patient: str | None
    tokens: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    refs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # Type/id, or url for canonicals
    dates: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=lambda: defaultdict(list))
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def codes(self, param: str) -> set[str]:
        return {c for _, c in self.tokens.get(param, ())}


def doc(resource: dict[str, Any]) -> Doc:
    pid = patient_of(resource)
    d = Doc(str(resource["resourceType"]), str(resource["id"]), pid or None)
    rows = extract_index(resource)
    for t in rows.token:
        d.tokens[t.param].add((t.system, t.code))
    for r in rows.reference:
        d.refs[r.param].add(r.url if r.url else f"{r.target_type}/{r.target_id}")
    for dt in rows.date:
        d.dates[dt.param].append((dt.low, dt.high))
    for q in rows.quantity:
        d.values[q.param].append(q.value)
    return d


class World:
    """Every resource the indicators read, by type and by patient."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self.by_type: dict[str, dict[str, Doc]] = defaultdict(dict)
        self.by_patient: dict[tuple[str, str], list[Doc]] = defaultdict(list)
        for res in resources:
            if res.get("resourceType") not in TYPES:
                continue
            d = doc(res)
            self.by_type[d.type][d.id] = d
            if d.patient:
                self.by_patient[(d.patient, d.type)].append(d)

    def of(self, pid: str, *types: str) -> list[Doc]:
        return [d for t in types for d in self.by_patient.get((pid, t), ())]


def _coded(d: Doc, param: str, codes: Iterable[tuple[str, str]]) -> bool:
    return bool(d.tokens.get(param, set()) & set(codes))


def _pairs(codings: Iterable[Any]) -> list[tuple[str, str]]:
    return [(c.system, c.code) for c in codings]


def _dated(d: Doc, param: str, since: datetime, period: Period) -> list[datetime]:
    return [low for low, _ in d.dates.get(param, ()) if since <= low < period.after]


def _strata(w: World, pid: str) -> tuple[str | None, str | None, str | None, str | None]:
    groups = sorted(c for ra in w.of(pid, "RiskAssessment")
                    for s, c in ra.tokens.get("population-group", ()) if s == POPULATION_GROUP)
    patient = w.by_type["Patient"].get(pid)
    hood = min(patient.codes("neighbourhood"), default=None) if patient else None
    gp = min(patient.refs.get("general-practitioner", ()), default=None) if patient else None
    practice: str | None = None
    if gp and gp.startswith("Organization/"):
        practice = gp
    elif gp and gp.startswith("PractitionerRole/"):
        role = w.by_type["PractitionerRole"].get(gp.split("/", 1)[1])
        practice = min((r for r in role.refs.get("organization", ()) if r.startswith("Organization/")), default=None) if role else None
    managing = min((r for r in patient.refs.get("organization", ()) if r.startswith("Organization/")), default=None) if patient else None
    return (groups[0] if groups else None), hood, practice, managing or practice


def _excluded(m: MeasureDef, w: World, pid: str, task: Doc | None, period: Period) -> bool:
    for ex in m.set.exclusions:
        kind = ex.kind
        if kind == "deceased":
            patient = w.by_type["Patient"].get(pid)
            if patient and any(low < period.after for low, _ in patient.dates.get("death-date", ())):
                return True
        elif kind == "consent_withdrawn":
            statuses = {c for d in w.of(pid, "Consent") for c in d.codes("status")}
            if statuses & {"inactive", "rejected"} and "active" not in statuses:
                return True
        elif kind == "condition":
            assert ex.condition is not None
            codes = _pairs(ex.condition.codes)
            if any(_coded(d, "code", codes) and d.codes("clinical-status") & set(CONDITION_ACTIVE)
                   for d in w.of(pid, "Condition")):
                return True
        elif kind == "task_status" and task is not None:
            if task.codes("status") & set(ex.task_status or ()):
                return True
    return False


def _holds(c: Criterion, w: World, pid: str, task: Doc | None, group: str | None, period: Period) -> bool:
    if isinstance(c, AnyCriterion):
        return any(_holds(x, w, pid, task, group, period) for x in c.any)
    if isinstance(c, ObservationCriterion):
        o = c.observation
        since = window_since(o, period)
        found: list[tuple[datetime, list[float]]] = []
        for d in w.of(pid, "Observation"):
            if not (_coded(d, "code", _pairs(o.codes)) and d.codes("status") & set(OBSERVATION_STATUSES)):
                continue
            found += [(when, d.values.get("value-quantity", [])) for when in _dated(d, "date", since, period)]
        if not found:
            return False
        if o.below is None:
            return True
        latest = max(when for when, _ in found)
        values = [v for when, vs in found if when == latest for v in vs]
        target = (o.below_for_group or {}).get(group, o.below) if group else o.below  # type: ignore[call-overload]
        return bool(values) and max(values) < target
    if isinstance(c, TaskDoneCriterion):
        t = c.task_done
        since = window_since(t, period)
        return any(_coded(d, "code", _pairs(t.codes)) and "completed" in d.codes("status")
                   and _dated(d, "modified", since, period) for d in w.of(pid, "Task"))
    if isinstance(c, MedicationCriterion):
        med = c.medication
        for d in w.of(pid, "MedicationStatement", "MedicationRequest"):
            if not any(s == ATC and any(code.startswith(a) for a in med.atc) for s, code in d.tokens.get("code", ())):
                continue
            status = d.codes("status")
            if "active" in med.status and "active" in status:
                return True
            if "not-taken" in med.status and d.type == "MedicationStatement" and "not-taken" in status:
                return True
        return False
    if isinstance(c, TaskCriterion):
        if task is None:
            return False
        ts = c.task
        if ts.done_on_time:
            due = [high for _, high in task.dates.get("due-date", ())]
            done = [low for low, _ in task.dates.get("modified", ())]
            return "completed" in task.codes("status") and bool(due) and bool(done) and min(done) < max(due)
        wanted = {(TASK_BUSINESS_STATUS, b) for b in ts.business_status or ()}
        return bool(task.tokens.get("business-status", set()) & wanted)
    raise TypeError(f"unknown criterion {type(c).__name__}")  # pragma: no cover


def _enrolled(m: MeasureDef, w: World, period: Period) -> set[str]:
    out: set[str] = set()
    for d in w.by_type["CarePlan"].values():
        if not d.patient or not (d.codes("status") & set(PLAN_STATUSES)):
            continue
        if m.set.program != "*" and m.set.program not in d.refs.get("instantiates-canonical", ()):
            continue
        if m.set.program == "*" and not d.refs.get("instantiates-canonical"):
            continue
        if any(low < period.after and high > period.low for low, high in d.dates.get("date", ())):
            out.add(d.patient)
    return out


def evaluate(m: MeasureDef, w: World, period: Period) -> list[Row]:
    """The rows of ``m`` over ``period``, sorted by subject."""
    out: list[Row] = []
    if m.set.subject == "patient":
        for pid in sorted(_enrolled(m, w, period)):
            group, hood, practice, team = _strata(w, pid)
            excluded = _excluded(m, w, pid, None, period)
            num = all(_holds(c, w, pid, None, group, period) for c in m.indicator.numerator)
            out.append(Row(f"Patient/{pid}", pid, excluded, num and not excluded, group, hood, practice, team))
        return out
    assert m.discipline is not None
    performer = set(_pairs(m.discipline.codes))
    for d in sorted(w.by_type["Task"].values(), key=lambda x: x.id):
        if not d.patient or not (d.tokens.get("performer", set()) & performer):
            continue
        if not any(period.low <= low < period.after for low, _ in d.dates.get("due-date", ())):
            continue
        group, hood, practice, team = _strata(w, d.patient)
        excluded = _excluded(m, w, d.patient, d, period)
        num = all(_holds(c, w, d.patient, d, group, period) for c in m.indicator.numerator)
        out.append(Row(f"Task/{d.id}", d.patient, excluded, num and not excluded, group, hood, practice, team))
    return sorted(out)
