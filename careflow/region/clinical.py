"""Condition and baseline Observation resources for a generated inhabitant.

A Flemish GP codes a problem in ICPC-2 and, increasingly, SNOMED CT: every Condition carries both
codings in one ``code``, so programmes matching either system find it. Observations are the one to
three baseline measurements a care programme starts from (weight in heart failure, HbA1c in
diabetes, SpO2/FEV1 in COPD, ...), coded in LOINC with UCUM units.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from careflow.programs.codes import ICPC2, LOINC, SNOMED, UCUM
from careflow.region.population import ChronicCondition
from careflow.region.synthetic import synthetic_meta

NEW_DIAGNOSIS_DAYS = 182  # "new diagnosis": within about six months of the reference date
NEW_DIAGNOSIS_SHARE = 0.07  # share of each condition's patients diagnosed that recently
_MEAN_YEARS_SINCE_DIAGNOSIS = 6.0
MAX_OBSERVATIONS = 3

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def draw_onset(rng: random.Random, condition: ChronicCondition, age: int, reference: date) -> date:
    """When the condition was diagnosed: usually years ago, for some within the last six months."""
    max_days = (age - condition.min_onset_age) * 365
    if max_days <= NEW_DIAGNOSIS_DAYS or rng.random() < NEW_DIAGNOSIS_SHARE:
        days = rng.randint(1, min(NEW_DIAGNOSIS_DAYS, max(1, max_days)))
    else:
        days = min(max_days, NEW_DIAGNOSIS_DAYS + 1 + int(rng.expovariate(1 / (365 * _MEAN_YEARS_SINCE_DIAGNOSIS))))
    return reference - timedelta(days=days)


def condition_resource(
    *,
    resource_id: str,
    patient_ref: str,
    asserter_ref: str,
    condition: ChronicCondition,
    onset: date,
    recorded: date,
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "meta": synthetic_meta(),
        "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": "active", "display": "Active"}]},
        "verificationStatus": {"coding": [{"system": _VERIFICATION, "code": "confirmed", "display": "Confirmed"}]},
        "category": [
            {"coding": [{"system": _CONDITION_CATEGORY, "code": "problem-list-item", "display": "Problem List Item"}]}
        ],
        "code": {
            "coding": [
                {"system": ICPC2, "code": condition.icpc2, "display": condition.icpc2_display},
                {"system": SNOMED, "code": condition.snomed, "display": condition.snomed_display},
            ],
            "text": condition.text,
        },
        "subject": {"reference": patient_ref},
        "onsetDateTime": onset.isoformat(),
        "recordedDate": recorded.isoformat(),
        "asserter": {"reference": asserter_ref},
    }


@dataclass(frozen=True, slots=True)
class Measurement:
    """A kind of baseline observation: its LOINC code, category and UCUM unit."""

    key: str
    loinc: str
    display: str
    category: str
    unit: str  # UCUM code, also used as the human unit
    max_age_days: int  # how long before the reference date it may have been taken


WEIGHT = Measurement("weight", "29463-7", "Body weight", "vital-signs", "kg", 60)
HBA1C = Measurement("hba1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory", "%", 180)
SPO2 = Measurement("spo2", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "vital-signs", "%", 90)
FEV1 = Measurement("fev1", "20150-9", "FEV1", "exam", "L", 365)
EGFR = Measurement(
    "egfr",
    "62238-1",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)",
    "laboratory",
    "mL/min/{1.73_m2}",
    180,
)
PHQ9 = Measurement("phq9", "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]", "survey", "{score}", 180)

# what a programme for each condition measures first; conditions not listed fall back to weight
MEASUREMENTS_FOR: dict[str, tuple[Measurement, ...]] = {
    "heart-failure": (WEIGHT,),
    "diabetes-t2": (HBA1C,),
    "copd": (SPO2, FEV1),
    "ckd": (EGFR,),
    "depression": (PHQ9,),
}


def measurements_for(conditions: list[ChronicCondition]) -> list[Measurement]:
    """The 1-3 baseline measurements for a chronic patient, most programme-relevant first."""
    chosen: list[Measurement] = []
    for condition in conditions:
        for measurement in MEASUREMENTS_FOR.get(condition.key, ()):
            if measurement not in chosen:
                chosen.append(measurement)
    return chosen[:MAX_OBSERVATIONS] or [WEIGHT]


def draw_value(rng: random.Random, measurement: Measurement, gender: str, age: int) -> float | int:
    male = gender == "male"
    if measurement is WEIGHT:
        return round(min(160.0, max(42.0, rng.gauss(84.0 if male else 71.0, 13.0))), 1)
    if measurement is HBA1C:
        return round(min(12.5, max(5.6, rng.gauss(7.1, 0.9))), 1)
    if measurement is SPO2:
        return int(min(99, max(85, round(rng.gauss(94.0, 2.2)))))
    if measurement is FEV1:
        predicted = (3.6 if male else 2.8) - 0.025 * max(0, age - 30)
        return round(max(0.5, predicted * min(0.95, max(0.25, rng.gauss(0.6, 0.15)))), 2)
    if measurement is EGFR:
        return int(min(59, max(12, round(rng.gauss(45.0, 11.0)))))
    if measurement is PHQ9:
        return int(min(27, max(5, round(rng.gauss(12.0, 4.0)))))
    raise ValueError(f"no value model for {measurement.key}")  # pragma: no cover


def _local_timestamp(day: date, hour: int, minute: int) -> str:
    offset = "+02:00" if 4 <= day.month <= 10 else "+01:00"  # Belgian summer / winter time, by month
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{offset}"


def observation_resource(
    *,
    rng: random.Random,
    resource_id: str,
    patient_ref: str,
    measurement: Measurement,
    gender: str,
    age: int,
    reference: date,
    not_before: date,
) -> dict[str, Any]:
    """A final Observation taken some days before ``reference`` (never before ``not_before``)."""
    span = max(1, min(measurement.max_age_days, (reference - not_before).days))
    day = reference - timedelta(days=rng.randint(1, span))
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": synthetic_meta(),
        "status": "final",
        "category": [{"coding": [{"system": _OBSERVATION_CATEGORY, "code": measurement.category}]}],
        "code": {"coding": [{"system": LOINC, "code": measurement.loinc, "display": measurement.display}]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": _local_timestamp(day, rng.randint(8, 17), rng.choice((0, 15, 30, 45))),
        "valueQuantity": {
            "value": draw_value(rng, measurement, gender, age),
            "unit": measurement.unit,
            "system": UCUM,
            "code": measurement.unit,
        },
    }
