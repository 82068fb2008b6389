"""Who lives in the demo region: the age pyramid, the sex split and chronic-condition prevalence.

Figures are rounded, public Belgian orders of magnitude (Statbel population by 5-year band;
Intego / Belgian health-interview prevalence of diagnosed chronic disease by age), tuned so that
about 18% of inhabitants hold a chronic-condition status, as Zorgzaam Leuven reports. They make a
demo look like a Belgian GP population; they are not epidemiology.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

# Share of the Belgian population per 5-year age band (0-4 ... 95-99), in percent (Statbel, ~2023).
AGE_BAND_SHARES: tuple[float, ...] = (
    5.2, 5.7, 5.9, 5.7, 5.8, 6.1, 6.4, 6.6, 6.5, 6.4,
    6.8, 7.0, 6.6, 5.7, 4.9, 3.8, 2.5, 1.7, 0.7, 0.2,
)
_AGE_CUM = tuple(itertools.accumulate(AGE_BAND_SHARES))

# Share of women per age, rising with age as men die younger: (from age, share female).
_FEMALE_SHARE: tuple[tuple[int, float], ...] = ((0, 0.488), (60, 0.51), (70, 0.54), (80, 0.62), (90, 0.72))


def draw_age(rng: random.Random) -> int:
    """An age in whole years drawn from the Belgian pyramid."""
    band = bisect.bisect_right(_AGE_CUM, rng.random() * _AGE_CUM[-1])
    return min(band, len(AGE_BAND_SHARES) - 1) * 5 + rng.randrange(5)


def draw_gender(rng: random.Random, age: int) -> str:
    """'female' or 'male' with the age-dependent split."""
    share = _FEMALE_SHARE[0][1]
    for start, value in _FEMALE_SHARE:
        if age >= start:
            share = value
    return "female" if rng.random() < share else "male"


@dataclass(frozen=True, slots=True)
class ChronicCondition:
    """A chronic condition the demo knows: its codes, who gets it and from which age."""

    key: str  # short id used in resource ids, e.g. "copd"
    text: str  # Dutch, as a Flemish GP system would show it
    icpc2: str
    icpc2_display: str
    snomed: str
    snomed_display: str
    min_onset_age: int
    # prevalence by age: (from age, share of that age group with the condition)
    prevalence: tuple[tuple[int, float], ...]

    def rate(self, age: int) -> float:
        value = 0.0
        for start, share in self.prevalence:
            if age >= start:
                value = share
        return value if age > self.min_onset_age else 0.0


_AGES = (0, 20, 40, 50, 60, 70, 80, 90)


def _by_age(*shares: float) -> tuple[tuple[int, float], ...]:
    return tuple(zip(_AGES, shares))


# The three conditions careflow has programmes for first, then the others that make up the
# chronic-condition status and the multimorbidity of groups A and B.
COPD = ChronicCondition(
    "copd", "COPD", "R95", "Chronic obstructive pulmonary disease", "13645005", "Chronic obstructive lung disease",
    30, _by_age(0, 0.002, 0.012, 0.035, 0.075, 0.11, 0.12, 0.10),
)
HEART_FAILURE = ChronicCondition(
    "heart-failure", "Hartfalen", "K77", "Heart failure", "84114007", "Heart failure",
    30, _by_age(0, 0.0005, 0.002, 0.007, 0.018, 0.05, 0.11, 0.16),
)
DIABETES_T2 = ChronicCondition(
    "diabetes-t2", "Diabetes mellitus type 2", "T90", "Diabetes non-insulin dependent", "44054006",
    "Diabetes mellitus type 2", 20, _by_age(0, 0.006, 0.025, 0.07, 0.13, 0.18, 0.19, 0.15),
)
ASTHMA = ChronicCondition(
    "asthma", "Astma", "R96", "Asthma", "195967001", "Asthma",
    2, _by_age(0.06, 0.055, 0.05, 0.05, 0.055, 0.055, 0.05, 0.04),
)
CKD = ChronicCondition(
    "ckd", "Chronische nierinsufficiëntie", "U99", "Urinary disease, other", "709044004", "Chronic kidney disease",
    20, _by_age(0, 0.002, 0.005, 0.01, 0.03, 0.08, 0.15, 0.20),
)
DEPRESSION = ChronicCondition(
    "depression", "Depressie", "P76", "Depressive disorder", "35489007", "Depressive disorder",
    12, _by_age(0.015, 0.05, 0.06, 0.06, 0.055, 0.05, 0.055, 0.055),
)
DEMENTIA = ChronicCondition(
    "dementia", "Dementie", "P70", "Dementia", "52448006", "Dementia",
    50, _by_age(0, 0, 0, 0.002, 0.01, 0.04, 0.14, 0.30),
)

CONDITIONS: tuple[ChronicCondition, ...] = (COPD, HEART_FAILURE, DIABETES_T2, ASTHMA, CKD, DEPRESSION, DEMENTIA)
PROGRAMME_CONDITIONS: tuple[ChronicCondition, ...] = (COPD, HEART_FAILURE, DIABETES_T2)

# Chronic diseases cluster in the same people (shared risk: age, smoking, obesity, deprivation).
# A log-normal personal risk factor with mean 1 multiplies every rate: it keeps each prevalence on
# target while raising multimorbidity above what independent draws would give.
_RISK_SIGMA = 0.9
_RISK_MU = -_RISK_SIGMA**2 / 2


_MAX_AGE = 120
# rate by whole year of age, precomputed: drawing 100,000 inhabitants calls this 700,000 times
_RATES: tuple[tuple[ChronicCondition, tuple[float, ...]], ...] = tuple(
    (condition, tuple(condition.rate(age) for age in range(_MAX_AGE))) for condition in CONDITIONS
)


def draw_conditions(rng: random.Random, age: int) -> list[ChronicCondition]:
    """The chronic conditions one inhabitant of ``age`` has (often none)."""
    risk = math.exp(rng.gauss(_RISK_MU, _RISK_SIGMA))
    found = []
    year = min(age, _MAX_AGE - 1)
    for condition, rates in _RATES:
        rate = rates[year]
        if rate and rng.random() < min(0.95, rate * risk):
            found.append(condition)
    return found


GROUP_DISPLAY = {
    "A": "frail chronically ill",
    "B": "complex chronically ill, multimorbid",
    "C": "one or a few chronic conditions",
    "D": "healthy, at risk",
}


def population_group(age: int, conditions: list[ChronicCondition]) -> str:
    """The Kaiser-Permanente pyramid layer (A-D) the seeds use to stratify the population.

    A (frail): old and either demented, in heart failure at a great age, or heavily multimorbid.
    B: two or more chronic conditions. C: one. D: none - the healthy population at risk.
    """
    n = len(conditions)
    if n == 0:
        return "D"
    if age >= 75 and (DEMENTIA in conditions or n >= 3 or (age >= 85 and (n >= 2 or HEART_FAILURE in conditions))):
        return "A"
    return "B" if n >= 2 else "C"
