"""What the stratification rules look at, read from FHIR dicts into small frozen facts.

Every fact keeps its date so one reading serves any day: evaluation at a past date sees only what
was true then in clinical time (a condition whose onset came later, a measurement taken later, a
stay begun later, a medicine started later are left out; one resolved later still counts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Iterable

from careflow.planning.patient import (
    CLINICAL_INACTIVE,
    Code,
    ObservationFact,
    _codes,
    _date,
    is_deceased,
    observation_facts,
)
from careflow.triggers.discharge import is_hospital_stay

MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    ref: str
    codes: tuple[Code, ...]
    onset: date | None
    active: bool
    abated: date | None = None  # when it resolved, if the record says

    def holds_on(self, day: date) -> bool:
        if self.onset is not None and self.onset > day:
            return False
        return self.active or (self.abated is not None and self.abated > day)


@dataclass(frozen=True, slots=True)
class Medicine:
    ref: str
    codes: tuple[Code, ...]
    start: date | None
    until: date | None
    per_day: float | None = None  # doses a day, when the dosage's timing says (1 or 2 insulin injections)

    def taken_on(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.until is None or self.until >= day)


@dataclass(frozen=True, slots=True)
class Stay:
    ref: str
    start: date


@dataclass(frozen=True)
class Inhabitant:
    id: str
    birth_date: date | None = None
    deceased: bool = False
    diagnoses: tuple[Diagnosis, ...] = ()
    observations: tuple[ObservationFact, ...] = ()
    medicines: tuple[Medicine, ...] = ()
    stays: tuple[Stay, ...] = ()

    def age_on(self, day: date) -> int | None:
        b = self.birth_date
        if b is None:
            return None
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def diagnosis(cond: dict[str, Any]) -> Diagnosis | None:
    """None for a refuted or mistaken entry (it never held)."""
    verification = {c for _, c in _codes(cond.get("verificationStatus"))}
    if verification & {"refuted", "entered-in-error"}:
        return None
    status = {c for _, c in _codes(cond.get("clinicalStatus"))}
    abated = _date(cond.get("abatementDateTime")) or _date((cond.get("abatementPeriod") or {}).get("start"))
    active = not (status & CLINICAL_INACTIVE) and not (abated and not status & {"active", "recurrence", "relapse"})
    onset = _date(cond.get("onsetDateTime")) or _date((cond.get("onsetPeriod") or {}).get("start"))
    return Diagnosis(_ref(cond), _codes(cond.get("code")), onset or _date(cond.get("recordedDate")), active, abated)


def medicine(resource: dict[str, Any]) -> Medicine | None:
    """An active or intended MedicationStatement, an active MedicationRequest order; None otherwise."""
    rtype = resource.get("resourceType")
    status = resource.get("status")
    if rtype == "MedicationStatement" and status not in ("active", "intended", "completed"):
        return None
    if rtype == "MedicationRequest" and (status not in ("active", "completed")
                                         or resource.get("intent") not in (None, "order", "plan", "original-order", "instance-order")):
        return None
    period = resource.get("effectivePeriod") or {}
    start = _date(period.get("start")) or _date(resource.get("effectiveDateTime")) or _date(resource.get("authoredOn"))
    until = _date(period.get("end"))
    if status == "completed" and until is None:
        return None  # finished, and the record does not say when: never counted
    dosage = resource.get("dosage") if rtype == "MedicationStatement" else resource.get("dosageInstruction")
    return Medicine(_ref(resource), _codes(resource.get("medicationCodeableConcept")), start, until, per_day(dosage))


_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
_TIMING_CODES = {"QD": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0, "AM": 1.0, "PM": 1.0, "QOD": 0.5}  # v3 GTSAbbreviation


def per_day(dosages: Any) -> float | None:
    """How many times a day the dosages say to take it (their sum: a morning and an evening
    instruction are two); None when any dosage does not say, since a guess would decide a rule."""
    if not isinstance(dosages, list) or not dosages:
        return None
    total = 0.0
    for d in dosages:
        timing = (d or {}).get("timing") if isinstance(d, dict) else None
        if not isinstance(timing, dict):
            return None
        repeat = timing.get("repeat") or {}
        frequency, period, unit = repeat.get("frequency"), repeat.get("period"), repeat.get("periodUnit")
        if isinstance(frequency, int) and isinstance(period, (int, float)) and period > 0 and unit in _DAYS:
            total += frequency / (period * _DAYS[unit])
            continue
        if isinstance(repeat.get("timeOfDay"), list) and repeat["timeOfDay"]:
            total += len(repeat["timeOfDay"])
            continue
        code = next((c.get("code") for c in (timing.get("code") or {}).get("coding") or () if isinstance(c, dict)), None)
        if code in _TIMING_CODES:
            total += _TIMING_CODES[code]
            continue
        return None
    return total


def stay(encounter: dict[str, Any]) -> Stay | None:
    if encounter.get("status") in ("cancelled", "entered-in-error", "planned") or not is_hospital_stay(encounter):
        return None
    start = _date((encounter.get("period") or {}).get("start"))
    return Stay(_ref(encounter), start) if start else None


def inhabitant(patient: dict[str, Any], resources: Iterable[dict[str, Any]]) -> Inhabitant:
    """The facts of one patient from their Patient and any of their Conditions, Observations,
    MedicationStatements/-Requests and Encounters (others are ignored)."""
    diagnoses: list[Diagnosis] = []
    observations: list[ObservationFact] = []
    medicines: list[Medicine] = []
    stays: list[Stay] = []
    for r in resources:
        rtype = r.get("resourceType")
        if rtype == "Condition":
            d = diagnosis(r)
            if d:
                diagnoses.append(d)
        elif rtype == "Observation":
            if r.get("status") in ("final", "amended", "corrected", "preliminary"):
                found = observation_facts(r)
                if isinstance(r.get("valueInteger"), int) and found and found[0].value is None:
                    found[0] = replace(found[0], value=float(r["valueInteger"]))  # a screener's total score
                observations += found
        elif rtype in MEDICATION_TYPES:
            m = medicine(r)
            if m:
                medicines.append(m)
        elif rtype == "Encounter":
            s = stay(r)
            if s:
                stays.append(s)
    return Inhabitant(str(patient.get("id")), _date(patient.get("birthDate")), is_deceased(patient),
                      tuple(sorted(diagnoses, key=lambda d: d.ref)), tuple(observations), tuple(medicines),
                      tuple(sorted(stays, key=lambda s: (s.start, s.ref))))
