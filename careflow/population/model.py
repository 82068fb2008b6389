"""What a stratification rule file means: the chronic-condition kinds, the frailty screen and the
ordered group rules, as typed plain data.

A rule set reads like the region's agreement: "group A is a chronic patient aged 75 or more with a
frailty screen of 3 or more, or dementia, or …". Rules are tried in the order written and the first
that holds places the inhabitant; who matches none is in the ``default`` group. Every rule set has
a ``version`` and the day it takes ``effective``, so an old set replayed at an old date gives the old
groups. The JSON Schema in ``population_rules/schema.json`` is generated from these classes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from careflow.programs.codes import ATC, code_problem
from careflow.programs.model import ID_PATTERN, Coding, IsoDuration, Strict

Group = Literal["A", "B", "C", "D"]
GROUPS: tuple[str, ...] = ("A", "B", "C", "D")
VERSION_PATTERN = r"^\d{4}\.\d+$"


class ChronicKind(Strict):
    """One kind of chronic condition the rules count, by the codes a GP system writes."""

    label: str = Field(min_length=1, description="how the explanation names it, e.g. 'heart failure'")
    codes: list[Coding] = Field(min_length=1, description="ICPC-2, SNOMED CT or ICD-10 codes (ICD-10 and ICPC-2 match by prefix)")


class FrailtyScreen(Strict):
    """The frailty screen careflow reads as data (it does not compute it): a dated Observation."""

    label: str = Field(min_length=1, description="how the explanation names it, e.g. 'BelRAI screener'")
    codes: list[Coding] = Field(min_length=1, description="the Observation codes of the screen's total score")
    valid_for: IsoDuration = Field(description="a screen older than this is flagged and not used, e.g. P12M")


class Age(Strict):
    at_least: int | None = Field(None, ge=0, le=150)
    below: int | None = Field(None, ge=0, le=150)

    @model_validator(mode="after")
    def _some(self) -> Age:
        if self.at_least is None and self.below is None:
            raise ValueError("give at_least or below")
        return self


class Chronic(Strict):
    """How many distinct chronic kinds (``of`` limits the kinds counted)."""

    at_least: int = Field(1, ge=1)
    of: list[str] | None = Field(None, min_length=1, description="kind ids; default every kind")


class HasCondition(Strict):
    """An active condition of one of ``any_of`` (or every one of ``all_of``)."""

    any_of: list[str] | None = Field(None, min_length=1)
    all_of: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> HasCondition:
        if (self.any_of is None) == (self.all_of is None):
            raise ValueError("give exactly one of any_of or all_of")
        return self


class ObservationTest(Strict):
    """The latest value of a measurement taken ``within`` the window before the day.

    With no test at all it holds when any result of those codes was recorded in the window (a
    spirometry done); ``value_in`` tests a coded result (a smoking status). ``times`` asks for that
    many results meeting the test in the window, each at least ``apart`` after the one before (an
    eGFR below 60 twice, three months apart), instead of the latest one only."""

    label: str = Field(min_length=1, description="how the explanation names it, e.g. 'eGFR'")
    codes: list[Coding] = Field(min_length=1)
    below: float | None = None
    at_most: float | None = None
    above: float | None = None
    at_least: float | None = None
    value_in: list[Coding] | None = Field(None, min_length=1, description="the coded result is one of these")
    within: IsoDuration = "P12M"
    times: int = Field(1, ge=1, le=10, description="how many results must meet the test (default: the latest one)")
    apart: IsoDuration | None = Field(None, description="with times: the least time between two counted results, e.g. P3M")

    @model_validator(mode="after")
    def _one(self) -> ObservationTest:
        if sum(v is not None for v in (self.below, self.at_most, self.above, self.at_least, self.value_in)) > 1:
            raise ValueError("give at most one of below, at_most, above, at_least or value_in")
        if self.apart is not None and self.times < 2:
            raise ValueError("apart needs times of 2 or more")
        return self

    @property
    def threshold(self) -> bool:
        return any(v is not None for v in (self.below, self.at_most, self.above, self.at_least))


class PerDay(Strict):
    """How often a day a medicine is taken, from its dosage (a medicine whose dosage does not say is
    counted by neither test)."""

    at_most: float | None = Field(None, gt=0)
    above: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> PerDay:
        if (self.at_most is None) == (self.above is None):
            raise ValueError("give exactly one of at_most or above")
        return self


class Medicines(Strict):
    """Active medication: how many distinct medicines (polypharmacy), optionally within ATC classes
    and taken so many times a day (1 or 2 insulin injections a day)."""

    at_least: int = Field(1, ge=1)
    atc: list[str] | None = Field(None, min_length=1, description="ATC classes (a class covers its subtree)")
    per_day: PerDay | None = Field(None, description="only medicines whose dosage says how often a day, e.g. {at_most: 2}")

    @field_validator("atc")
    @classmethod
    def _atc_classes(cls, v: list[str] | None) -> list[str] | None:
        for code in v or ():
            problem = code_problem(ATC, code)
            if problem:
                raise ValueError(f"{code!r}: {problem}")
        return v


class HospitalStays(Strict):
    """Inpatient stays (Encounter class IMP/ACUTE/NONAC or with hospitalization) begun in the window."""

    at_least: int = Field(1, ge=1)
    within: IsoDuration = "P12M"


class Frailty(Strict):
    """The frailty screen's latest score, when it is recent enough (see ``frailty``)."""

    at_least: float


class AgeCriterion(Strict):
    age: Age


class ChronicCriterion(Strict):
    chronic: Chronic


class ConditionCriterion(Strict):
    condition: HasCondition


class ObservationCriterion(Strict):
    observation: ObservationTest


class MedicinesCriterion(Strict):
    medicines: Medicines


class HospitalCriterion(Strict):
    hospital_stays: HospitalStays


class FrailtyCriterion(Strict):
    frailty: Frailty


class AnyCriterion(Strict):
    any: list[Criterion] = Field(min_length=1)


class AllCriterion(Strict):
    all: list[Criterion] = Field(min_length=1)


class NotCriterion(Strict):
    """Holds when the criterion inside does not: no heart-failure diagnosis, no spirometry in five years."""

    not_: Criterion = Field(alias="not")


CRITERIA = ("age", "chronic", "condition", "observation", "medicines", "hospital_stays", "frailty", "any", "all", "not")


def _criterion_kind(value: Any) -> str | None:
    """Which criterion a mapping is, by its one key (so an error names that criterion's problem only,
    not one per alternative); None when it has no criterion key or several."""
    if isinstance(value, dict):
        keys = [k for k in value if k in CRITERIA]
        return keys[0] if len(keys) == 1 else None
    fields = list(type(value).model_fields.items()) if isinstance(value, Strict) else []
    return (fields[0][1].alias or fields[0][0]) if len(fields) == 1 else None


Criterion = Annotated[
    Union[Annotated[AgeCriterion, Tag("age")], Annotated[ChronicCriterion, Tag("chronic")],
          Annotated[ConditionCriterion, Tag("condition")], Annotated[ObservationCriterion, Tag("observation")],
          Annotated[MedicinesCriterion, Tag("medicines")], Annotated[HospitalCriterion, Tag("hospital_stays")],
          Annotated[FrailtyCriterion, Tag("frailty")], Annotated[AnyCriterion, Tag("any")],
          Annotated[AllCriterion, Tag("all")], Annotated[NotCriterion, Tag("not")]],
    Discriminator(_criterion_kind, custom_error_type="not_a_criterion",
                  custom_error_message="not a criterion: give exactly one of " + ", ".join(CRITERIA)),
    Field(description="one fact: age, chronic, condition, observation, medicines, hospital_stays, frailty, any/all of several, or not"),
]
AnyCriterion.model_rebuild()
AllCriterion.model_rebuild()
NotCriterion.model_rebuild()


class Rule(Strict):
    """Who is in ``group``: every criterion of ``when`` holds (they read as 'and')."""

    id: Annotated[str, Field(pattern=ID_PATTERN)]
    group: Group
    when: list[Criterion] = Field(min_length=1)


class RuleSet(Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN, description="the rule set's name, the same in every version")]
    version: Annotated[str, Field(pattern=VERSION_PATTERN, description="year.release, e.g. 2026.2")]
    effective: date = Field(description="the first day this version applies (quote it: '2026-07-01')")
    title: str = Field(min_length=1)
    chronic: dict[Annotated[str, Field(pattern=ID_PATTERN)], ChronicKind] = Field(min_length=1)
    frailty: FrailtyScreen | None = None
    rules: list[Rule] = Field(min_length=1, description="tried in order; the first that holds places the inhabitant")
    default: Group = Field("D", description="the group of whoever matches no rule")
