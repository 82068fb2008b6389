"""What one evaluation yields: a row per subject (a patient, or a Task of a Task indicator) with its
populations and strata, and the counts a MeasureReport group or stratum carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

STRATIFIERS: tuple[str, ...] = ("population-group", "neighbourhood", "practice", "team")


@dataclass(frozen=True, order=True)
class Row:
    subject: str  # Patient/<id> or Task/<id>
    patient: str
    excluded: bool
    numerator: bool
    group: str | None
    neighbourhood: str | None
    practice: str | None  # Organization/<id>
    team: str | None  # Organization/<id>

    def stratum(self, stratifier: str) -> str | None:
        return {"population-group": self.group, "neighbourhood": self.neighbourhood,
                "practice": self.practice, "team": self.team}[stratifier]


@dataclass(frozen=True)
class Counts:
    """initial-population, denominator (= the initial population: enrolment is the denominator's
    criterion), denominator-exclusion, numerator (among those not excluded)."""

    initial: int = 0
    exclusion: int = 0
    numerator: int = 0

    @property
    def denominator(self) -> int:
        return self.initial

    @property
    def score(self) -> float | None:
        """numerator / (denominator - exclusions); None when nobody is left to score."""
        scored = self.initial - self.exclusion
        return None if scored <= 0 else self.numerator / scored


@dataclass(frozen=True)
class Summary:
    total: Counts
    strata: dict[str, dict[str, Counts]] = field(default_factory=dict)  # stratifier -> value -> counts


def summarise(rows: Iterable[Row], *, teams: frozenset[str] | None = None) -> Summary:
    """The counts of ``rows`` (only those of ``teams`` when given), overall and per stratum. The plain
    Python twin of the SQL aggregation (``careflow.store.measures_sql``)."""
    def add(c: Counts, r: Row) -> Counts:
        return Counts(c.initial + 1, c.exclusion + r.excluded, c.numerator + (r.numerator and not r.excluded))

    total = Counts()
    strata: dict[str, dict[str, Counts]] = {s: {} for s in STRATIFIERS}
    for r in rows:
        if teams is not None and r.team not in teams:
            continue
        total = add(total, r)
        for s in STRATIFIERS:
            v = r.stratum(s)
            if v is not None:
                strata[s][v] = add(strata[s].get(v, Counts()), r)
    return Summary(total, {s: dict(sorted(v.items())) for s, v in strata.items()})
