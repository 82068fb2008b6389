"""What the planner needs to know of a patient, read once from FHIR into plain frozen data.

The planner runs for thousands of patients; reading FHIR dicts into small facts at the edge keeps
the planning loop free of FHIR-shape guessing and of validation costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping

from careflow.errors import PatientDataError
from careflow.naming import EXT_NEIGHBOURHOOD, POPULATION_GROUP

Code = tuple[str, str]  # (system URI, code)

CLINICAL_INACTIVE = {"inactive", "remission", "resolved"}


@dataclass(frozen=True, slots=True)
class ConditionFact:
    id: str | None
    codes: tuple[Code, ...]
    onset: date | None
    active: bool = True


@dataclass(frozen=True, slots=True)
class ObservationFact:
    id: str | None
    codes: tuple[Code, ...]
    when: datetime | None
    value: float | None = None
    unit: str | None = None
    value_codes: tuple[Code, ...] = ()


@dataclass(frozen=True, slots=True)
class MedicationFact:
    """An active MedicationStatement or MedicationRequest: its medication codes (ATC, SNOMED CT, CNK…).

    ``until``: the end of the statement's effective period, when it has one (taking it ends then)."""

    id: str | None
    codes: tuple[Code, ...]
    until: date | None = None


@dataclass(frozen=True)
class PatientContext:
    id: str
    birth_date: date | None = None
    gender: str | None = None
    group: str | None = None
    neighbourhood: str | None = None
    conditions: tuple[ConditionFact, ...] = ()
    observations: tuple[ObservationFact, ...] = ()
    medications: tuple[MedicationFact, ...] = ()
    team: Mapping[str, str] = field(default_factory=dict)  # role id -> "PractitionerRole/<id>"
    organization: str | None = None  # "Organization/<id>" of the neighbourhood team
    deceased: bool = False  # Patient.deceased[x] says so (true, or a date of death)
    inactive: bool = False  # Patient.active is false: the record is no longer in use
    replaced_by: str | None = None  # "Patient/<id>" this record was merged into (link type replaced-by)

    def age_on(self, day: date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else None
    except ValueError:
        return None


def _codes(concept: Any) -> tuple[Code, ...]:
    if not isinstance(concept, dict):
        return ()
    return tuple(
        (c["system"], c["code"])
        for c in concept.get("coding") or ()
        if isinstance(c, dict) and isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    )


def _ref_id(resource: dict[str, Any]) -> str | None:
    rid = resource.get("id")
    return f"{resource['resourceType']}/{rid}" if rid else None


def condition_fact(cond: dict[str, Any]) -> ConditionFact:
    status = {c for _, c in _codes(cond.get("clinicalStatus"))}
    verification = {c for _, c in _codes(cond.get("verificationStatus"))}
    active = not (status & CLINICAL_INACTIVE) and not (verification & {"refuted", "entered-in-error"})
    if cond.get("abatementDateTime") or cond.get("abatementPeriod"):
        active = active and bool(status & {"active", "recurrence", "relapse"})
    onset = _date(cond.get("onsetDateTime")) or _date((cond.get("onsetPeriod") or {}).get("start"))
    onset = onset or _date(cond.get("recordedDate"))
    return ConditionFact(_ref_id(cond), _codes(cond.get("code")), onset, active)


def observation_fact(obs: dict[str, Any]) -> ObservationFact:
    when = _datetime(obs.get("effectiveDateTime")) or _datetime((obs.get("effectivePeriod") or {}).get("start"))
    if when is None:
        d = _date(obs.get("effectiveDateTime")) or _date(obs.get("issued"))
        when = datetime(d.year, d.month, d.day) if d else None
    q = obs.get("valueQuantity") or {}
    value = q.get("value")
    return ObservationFact(
        _ref_id(obs),
        _codes(obs.get("code")),
        when,
        float(value) if isinstance(value, (int, float)) else None,
        q.get("code") or q.get("unit"),
        _codes(obs.get("valueCodeableConcept")),
    )


def observation_facts(obs: dict[str, Any]) -> list[ObservationFact]:
    """The Observation, and each of its components as a fact of its own.

    A blood-pressure panel (LOINC 85354-9 / 55284-4) carries systolic 8480-6 and diastolic 8462-4
    as components; goals and trigger rules name the component codes, so they must see them.
    """
    main = observation_fact(obs)
    out = [main]
    for comp in obs.get("component") or ():
        if not isinstance(comp, dict):
            continue
        q = comp.get("valueQuantity") or {}
        value = q.get("value")
        out.append(
            ObservationFact(
                main.id,
                _codes(comp.get("code")),
                main.when,
                float(value) if isinstance(value, (int, float)) else None,
                q.get("code") or q.get("unit"),
                _codes(comp.get("valueCodeableConcept")),
            )
        )
    return out


MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest")
_TAKING = {"MedicationStatement": {"active", "intended"}, "MedicationRequest": {"active"}}


def medication_fact(resource: dict[str, Any]) -> MedicationFact | None:
    """The fact of an active MedicationStatement / MedicationRequest; None when it is not active.

    Only ``medicationCodeableConcept`` is read: a ``medicationReference`` would need the Medication
    resource, which Belgian GP systems send inline as a code (CNK / ATC) in practice."""
    if resource.get("status") not in _TAKING.get(str(resource.get("resourceType")), ()):
        return None
    if resource.get("resourceType") == "MedicationRequest" and resource.get("intent") not in (None, "order", "plan", "original-order", "instance-order"):
        return None
    until = _date((resource.get("effectivePeriod") or {}).get("end"))
    return MedicationFact(_ref_id(resource), _codes(resource.get("medicationCodeableConcept")), until)


def _group(patient: dict[str, Any]) -> str | None:
    for tag in (patient.get("meta") or {}).get("tag") or ():
        if tag.get("system") == POPULATION_GROUP:
            code = tag.get("code")
            return code if isinstance(code, str) else None
    return None


def _neighbourhood(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension") or ():
        if ext.get("url") == EXT_NEIGHBOURHOOD:
            value = ext.get("valueString")
            return value if isinstance(value, str) else None
    return None


def is_deceased(patient: dict[str, Any]) -> bool:
    """FHIR says a patient died when ``deceasedBoolean`` is true or a ``deceasedDateTime`` is given."""
    return patient.get("deceasedBoolean") is True or bool(patient.get("deceasedDateTime"))


def replaced_by(patient: dict[str, Any]) -> str | None:
    """The surviving record of a merge: ``Patient.link`` of type ``replaced-by``."""
    for link in patient.get("link") or ():
        if isinstance(link, dict) and link.get("type") == "replaced-by":
            ref = (link.get("other") or {}).get("reference")
            if isinstance(ref, str):
                return ref
    return None


def context_from_resources(
    patient: dict[str, Any],
    conditions: Iterable[dict[str, Any]] = (),
    observations: Iterable[dict[str, Any]] = (),
    team: Mapping[str, str] | None = None,
    organization: str | None = None,
    medications: Iterable[dict[str, Any]] = (),
) -> PatientContext:
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise PatientDataError("expected a FHIR Patient resource")
    if not patient.get("id"):
        raise PatientDataError("the Patient has no id: planning needs one to derive stable resource ids")
    return PatientContext(
        id=str(patient["id"]),
        birth_date=_date(patient.get("birthDate")),
        gender=patient.get("gender"),
        group=_group(patient),
        neighbourhood=_neighbourhood(patient),
        conditions=tuple(condition_fact(c) for c in conditions),
        observations=tuple(f for o in observations for f in observation_facts(o)),
        medications=tuple(m for r in medications if (m := medication_fact(r)) is not None),
        team=dict(team or {}),
        organization=organization,
        deceased=is_deceased(patient),
        inactive=patient.get("active") is False,
        replaced_by=replaced_by(patient),
    )


def context_from_bundle(bundle: dict[str, Any], team: Mapping[str, str] | None = None) -> PatientContext:
    """A Patient alone, or a Bundle holding one Patient with their Conditions, Observations and
    MedicationStatements / MedicationRequests."""
    if not isinstance(bundle, dict):
        raise PatientDataError("expected a JSON object holding a Patient or a Bundle")
    if bundle.get("resourceType") == "Patient":
        return context_from_resources(bundle, team=team)
    if bundle.get("resourceType") != "Bundle":
        raise PatientDataError(f"expected a Patient or a Bundle, got {bundle.get('resourceType')!r}")
    entries = [e.get("resource") for e in bundle.get("entry") or () if isinstance(e, dict)]
    resources: list[dict[str, Any]] = [r for r in entries if isinstance(r, dict)]
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise PatientDataError(f"the Bundle must hold exactly one Patient (found {len(patients)})")
    pid = patients[0].get("id")
    urls = {e.get("fullUrl") for e in bundle.get("entry") or () if e.get("resource") is patients[0]}
    own = {f"Patient/{pid}", *(u for u in urls if u)}

    def mine(r: dict[str, Any]) -> bool:
        ref = (r.get("subject") or {}).get("reference")
        return ref is None or ref in own or ref.endswith(f"/Patient/{pid}")

    return context_from_resources(
        patients[0],
        [r for r in resources if r.get("resourceType") == "Condition" and mine(r)],
        [r for r in resources if r.get("resourceType") == "Observation" and mine(r)],
        team=team,
        medications=[r for r in resources if r.get("resourceType") in MEDICATION_TYPES and mine(r)],
    )
