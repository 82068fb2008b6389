"""The care-programme model: what a YAML pathway means, as typed plain data.

The shape follows how a GP would hear a programme read aloud: who qualifies, which disciplines
take part, what we aim for, what each discipline does and when, and what happens when something
is late or a measurement goes wrong. The JSON Schema in ``care_programs/schema.json`` is generated
from these classes, so the editor and the loader never disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from careflow.programs.codes import canonical_system, code_problem
from careflow.programs.durations import JSON_PATTERN, Duration, parse_duration

ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
Id = Annotated[str, Field(pattern=ID_PATTERN, description="lower-case letters, digits and hyphens")]


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


IsoDuration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(json_schema_extra={"pattern": JSON_PATTERN}, description="ISO 8601 duration, e.g. P3M, P14D, P1Y"),
]
TARGET_KINDS = ("below", "at_most", "above", "at_least", "between", "stable_within", "ratio")
Priority = Literal["routine", "urgent", "asap", "stat"]
Group = Literal["A", "B", "C", "D"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LANGUAGES = ("nl", "fr", "en")


class Text(Strict):
    """A sentence in Dutch, French and English: Belgian teams read Dutch or French, the wider world
    English. ``en`` and ``nl`` are required; a text without ``fr`` reads in English to a French
    reader. A plain string (how a one-language programme writes it) is that text in every language."""

    nl: str = Field(min_length=1)
    en: str = Field(min_length=1)
    fr: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"nl": value, "en": value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        translated = handler(core_schema)
        single = {"type": "string", "minLength": 1, "description": "the same text in every language"}
        return {"anyOf": [single, translated]}

    def in_language(self, lang: str) -> str:
        """The text for a reader of ``lang`` (nl, fr, en); English when it has no such translation."""
        found = getattr(self, lang, None) if lang in LANGUAGES else None
        return found if isinstance(found, str) else self.en

    def translations(self) -> dict[str, str]:
        """The languages other than English this text is written in: {"nl": ..., "fr": ...}."""
        return {lang: text for lang in ("nl", "fr") if (text := getattr(self, lang)) is not None}


class Coding(Strict):
    system: str = Field(description="a short name (icpc-2, snomed, icd-10, loinc, atc, cd-hcparty, careflow, careflow-observation) or a URI")
    code: str = Field(min_length=1)
    display: str | None = None

    @field_validator("system")
    @classmethod
    def _known_system(cls, v: str) -> str:
        uri = canonical_system(v)
        if uri is None:
            if v.startswith(("http://", "https://", "urn:")):
                return v
            raise ValueError(f"unknown code system {v!r}: use icpc-2, snomed, icd-10, loinc, atc, cd-hcparty, careflow, careflow-observation or a URI")
        return uri

    @model_validator(mode="after")
    def _well_formed(self) -> Coding:
        problem = code_problem(self.system, self.code)
        if problem:
            raise ValueError(f"code {self.code!r} is not well-formed: {problem}")
        return self


class Quantity(Strict):
    value: float
    unit: str = Field(min_length=1, description="UCUM unit, e.g. kg, %, mm[Hg], mmol/mol")


def _one_code_is_a_code(value: Any) -> Any:
    """``[x]`` means ``x``: a list of one code is the same rule as that code, so the model (and the
    PlanDefinition round trip) has one spelling for it."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


Codes = Annotated[
    Coding | list[Coding],
    BeforeValidator(_one_code_is_a_code),
    Field(description="one code, or a list of codes that all mean the same measurement (e.g. eGFR by CKD-EPI 2021 and by MDRD)"),
]


def codes_of(value: Coding | list[Coding]) -> tuple[Coding, ...]:
    """Every code a ``Codes`` field names, in the author's order."""
    return (value,) if isinstance(value, Coding) else tuple(value)


# ---------------------------------------------------------------- who qualifies


class AgeBounds(Strict):
    min: int | None = Field(default=None, ge=0, le=130)
    max: int | None = Field(default=None, ge=0, le=130)


class Eligibility(Strict):
    """A patient qualifies with an active Condition coded as one of ``conditions``."""

    conditions: list[Coding] = Field(min_length=1)
    age: AgeBounds | None = None
    groups: list[Group] = Field(
        default_factory=lambda: list[Group](["A", "B", "C"]),
        description="population-pyramid groups the programme is for (A frail … D at risk)",
    )
    new_diagnosis_within: IsoDuration = Field(
        default="P6M", description="a Condition whose onset lies this close before the start counts as new"
    )


# ---------------------------------------------------------------- who takes part


class Role(Strict):
    title: Text
    codes: list[Coding] = Field(min_length=1, description="SNOMED CT occupation and CD-HCPARTY discipline codes")


# ---------------------------------------------------------------- what we aim for


class Ratio(Strict):
    numerator: Quantity
    denominator: Quantity


class Target(Strict):
    """One measurable target; exactly one of the bounds is given."""

    measure: Coding
    below: Quantity | None = None
    at_most: Quantity | None = None
    above: Quantity | None = None
    at_least: Quantity | None = None
    between: tuple[Quantity, Quantity] | None = None
    stable_within: Quantity | None = Field(default=None, description="no more than this away from the baseline")
    ratio: Ratio | None = Field(default=None, description="a target ratio, e.g. a FEV1/FVC of 70/100")

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        given = [k for k in TARGET_KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a target needs exactly one of below, at_most, above, at_least, between, stable_within, ratio"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TARGET_KINDS if getattr(self, k))


class Goal(Strict):
    id: Id
    title: Text
    category: Literal["physiologic", "behavioral", "dietary", "safety", "nursing"] = "physiologic"
    targets: list[Target] = Field(default_factory=list)
    due: IsoDuration | None = Field(default=None, description="when, counted from the plan's start")


# ---------------------------------------------------------------- what each discipline does


MONTH_DAY_PATTERN = r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _check_month_day(value: str) -> str:
    month, day = int(value[:2]), int(value[3:])
    if day > _DAYS_IN_MONTH[month - 1]:
        raise ValueError(f"{value!r} is not a day of the year (MM-DD)")
    if (month, day) == (2, 29):
        raise ValueError("a season cannot start or end on 29 February (it is missing three years in four)")
    return value


MonthDay = Annotated[
    str,
    Field(pattern=MONTH_DAY_PATTERN, description="a day of the year as MM-DD, e.g. 10-01 for 1 October"),
    AfterValidator(_check_month_day),
]


class Season(Strict):
    """A yearly campaign window, e.g. the flu season from 1 October to 31 December.

    One Task opens per season: on ``opens`` (or on the plan's start when the plan starts inside the
    window); a season whose window has passed is never opened late. ``closes`` before ``opens`` means
    the window runs into the next year (11-15 to 02-15)."""

    opens: MonthDay
    closes: MonthDay

    @model_validator(mode="after")
    def _not_one_day_of_nothing(self) -> Season:
        if self.opens == self.closes:
            raise ValueError("a season needs `closes` on another day than `opens`")
        return self


class Timing(Strict):
    start: IsoDuration = Field(default="P0D", description="offset from the plan start (or from completion of `after`)")
    every: IsoDuration | None = Field(default=None, description="repeat at this interval")
    season: Season | None = Field(default=None, description="once every season instead of an interval, e.g. every autumn from 1 October")
    times: int | None = Field(default=None, ge=1, description="how many occurrences in all; omit for 'until the plan ends'")
    due_within: IsoDuration = Field(default="P14D", description="the task is due this long after it opens")

    @model_validator(mode="after")
    def _times_needs_every(self) -> Timing:
        if self.season is not None and self.every is not None:
            raise ValueError("give either `every` or `season`, not both (a season repeats every year)")
        if self.times and self.times > 1 and not (self.every or self.season):
            raise ValueError("times > 1 needs an `every` interval or a `season`")
        return self

    def first_open(self) -> Duration:
        return parse_duration(self.start)


FACT_THRESHOLDS = ("above", "below", "at_least", "at_most")
FACT_KINDS = ("observation", "medication", "condition")


class LatestObservation(Strict):
    """The patient's latest Observation of ``code`` (by effective time, on or before the day asked)."""

    code: Codes
    above: Quantity | None = None
    below: Quantity | None = None
    at_least: Quantity | None = None
    at_most: Quantity | None = None
    value_in: list[Coding] | None = Field(default=None, description="the latest coded value is one of these")
    within: IsoDuration | None = Field(default=None, description="an older latest value counts as unknown")
    if_unknown: bool = Field(default=False, description="whether the activity applies when no (recent) value is known")

    @model_validator(mode="after")
    def _one_test(self) -> LatestObservation:
        given = [k for k in (*FACT_THRESHOLDS, "value_in") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an observation test needs exactly one of above, below, at_least, at_most, value_in")
        return self

    @property
    def codes(self) -> tuple[Coding, ...]:
        return codes_of(self.code)


class MedicationClass(Strict):
    """An active MedicationStatement or MedicationRequest in one of these classes.

    ATC codes match their whole subtree (C09 matches ramipril C09AA05); other systems match exactly."""

    codes: list[Coding] = Field(min_length=1, description="ATC classes (system atc) or SNOMED CT products")
    taking: bool = Field(default=True, description="true: applies when the patient takes one; false: when they take none")


class ConditionPresent(Strict):
    """An active Condition coded as one of these (ICD-10 and ICPC-2 codes cover their sub-codes)."""

    codes: list[Coding] = Field(min_length=1)
    present: bool = Field(default=True, description="true: applies when the patient has one; false: when they have none")


class Fact(Strict):
    """Exactly one fact about the patient, for ``only_if.any_of``."""

    observation: LatestObservation | None = None
    medication: MedicationClass | None = None
    condition: ConditionPresent | None = None

    @model_validator(mode="after")
    def _one_fact(self) -> Fact:
        if sum(getattr(self, k) is not None for k in FACT_KINDS) != 1:
            raise ValueError("each entry of any_of needs exactly one of observation, medication, condition")
        return self

    @property
    def kind(self) -> Literal["observation", "medication", "condition"]:
        kind: Literal["observation", "medication", "condition"]
        for kind in ("observation", "medication", "condition"):
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated: exactly one fact")



class Only(Strict):
    """Restricts an activity to some patients; every restriction given must hold.

    The facts (``observation``, ``medication``, ``condition``, ``any_of``) are tested against what is
    known on the day a Task would open, so an activity follows the patient: a smoker who quits gets
    no next stop-smoking session, a foot-risk grade that rises brings in the podiatrist."""

    new_diagnosis: bool | None = Field(default=None, description="true: only at a new diagnosis; false: only when established")
    groups: list[Group] | None = None
    min_age: int | None = Field(default=None, ge=0)
    observation: LatestObservation | None = Field(default=None, description="the latest value of a measurement")
    medication: MedicationClass | None = Field(default=None, description="an active medication class")
    condition: ConditionPresent | None = Field(default=None, description="an active condition, e.g. CKD or atrial fibrillation")
    any_of: list[Fact] | None = Field(default=None, min_length=1, description="at least one of these facts holds")

    @property
    def has_facts(self) -> bool:
        return any(getattr(self, k) is not None for k in (*FACT_KINDS, "any_of"))

    def facts(self) -> list[Fact]:
        """Every fact this restriction reads (top-level and inside any_of)."""
        out = [Fact(**{k: getattr(self, k)}) for k in FACT_KINDS if getattr(self, k) is not None]
        return out + list(self.any_of or ())


class Activity(Strict):
    id: Id
    title: Text
    description: Text
    role: Id
    code: Coding
    timing: Timing = Field(default_factory=Timing)
    after: list[Id] = Field(default_factory=list, description="start when all of these activities are completed")
    only_if: Only | None = None
    priority: Priority = "routine"
    instructions: Text | None = Field(default=None, description="for the patient's take-home plan")
    shared: Id | None = Field(
        default=None,
        description="one Task serves every programme of the patient whose activity carries this key "
        "(e.g. influenza-vaccination), at the tightest timing among them",
    )

    @model_validator(mode="after")
    def _season_waits_on_nothing(self) -> Activity:
        if self.timing.season is not None and self.after:
            raise ValueError("a seasonal activity cannot wait on `after`: its season is its start")
        return self


# ---------------------------------------------------------------- what happens when


class Overdue(Strict):
    activity: Id | Literal["any"]
    by: IsoDuration


OBSERVATION_TESTS = (
    "above", "below", "at_least", "at_most", "rises_by", "falls_by", "below_baseline", "above_baseline", "value_in",
)
WINDOWED_TESTS = ("rises_by", "falls_by", "below_baseline", "above_baseline")
THRESHOLDS = {"above": ">", "below": "<", "at_least": ">=", "at_most": "<="}


class Persists(Strict):
    """The test must keep holding before the rule fires: ``times`` crossing measurements within
    ``within`` (this one included), and/or a run of crossing measurements ``lasting`` at least so long
    (eGFR below 45 confirmed after three months). It fires once per run: a patient whose oxygen
    saturation sits below the threshold for weeks raises one Task, not one a day."""

    times: int | None = Field(default=None, ge=2, description="how many measurements in the window must cross, e.g. 2")
    within: IsoDuration | None = Field(default=None, description="the window they must fall in, e.g. P1D")
    lasting: IsoDuration | None = Field(
        default=None, description="the run of crossing measurements spans at least this, e.g. P3M"
    )

    @model_validator(mode="after")
    def _says_how(self) -> Persists:
        if (self.times is None) != (self.within is None):
            raise ValueError("`times` and `within` come together (e.g. times: 2, within: P1D)")
        if self.times is None and self.lasting is None:
            raise ValueError("persists needs `times` with `within`, or `lasting` (or both)")
        return self


class ObservationRule(Strict):
    """A new Observation of ``code`` crossing a threshold, changing by more than a delta, moving away
    from the patient's own baseline, or carrying a coded value."""

    code: Codes
    above: Quantity | None = None
    below: Quantity | None = None
    at_least: Quantity | None = None
    at_most: Quantity | None = None
    rises_by: Quantity | None = None
    falls_by: Quantity | None = None
    below_baseline: Quantity | None = Field(
        default=None, description="more than this below the patient's baseline (median of the earlier values in `within`)"
    )
    above_baseline: Quantity | None = Field(
        default=None, description="more than this above the patient's baseline (median of the earlier values in `within`)"
    )
    within: IsoDuration | None = Field(
        default=None, description="the window for rises_by / falls_by, or the baseline period for below/above_baseline"
    )
    value_in: list[Coding] | None = Field(default=None, description="a coded value, e.g. an exacerbation")
    persists: Persists | None = Field(default=None, description="only when the test holds repeatedly, e.g. twice within a day")

    @model_validator(mode="after")
    def _one_test(self) -> ObservationRule:
        given = [k for k in OBSERVATION_TESTS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an observation rule needs exactly one of " + ", ".join(OBSERVATION_TESTS))
        if given[0] in WINDOWED_TESTS and not self.within:
            example = "P3D" if given[0] in ("rises_by", "falls_by") else "P3M"
            raise ValueError(f"{given[0]} needs a `within` window, e.g. within: {example}")
        return self

    @property
    def test(self) -> str:
        return next(k for k in OBSERVATION_TESTS if getattr(self, k) is not None)

    @property
    def codes(self) -> tuple[Coding, ...]:
        return codes_of(self.code)


WhenKind = Literal["overdue", "completed", "rejected", "observation", "discharged"]
WHEN_KINDS: tuple[WhenKind, ...] = ("overdue", "completed", "rejected", "observation", "discharged")


class When(Strict):
    overdue: Overdue | None = None
    completed: Id | None = None
    rejected: Id | Literal["any"] | None = None
    observation: ObservationRule | None = None
    discharged: Literal["hospital"] | None = Field(
        default=None, description="the patient went home after a hospital stay (an inpatient Encounter finished)"
    )

    @model_validator(mode="after")
    def _one_event(self) -> When:
        given = [k for k in WHEN_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("`when` needs exactly one of " + ", ".join(WHEN_KINDS))
        return self

    @property
    def kind(self) -> WhenKind:
        return next(k for k in WHEN_KINDS if getattr(self, k) is not None)


class NewTask(Strict):
    role: Id
    title: Text
    description: Text | None = None
    code: Coding | None = None
    priority: Priority = "urgent"
    due_within: IsoDuration = "P2D"


class Then(Strict):
    escalate_to: Id | None = Field(default=None, description="a new task for this role, linked to the overdue one")
    priority: Priority | None = None
    start: list[Id] = Field(default_factory=list)
    reassign_to: Id | None = None
    create_task: NewTask | None = None
    flag_plan: bool = Field(default=False, description="raise the plan's attention flag")

    @model_validator(mode="after")
    def _does_something(self) -> Then:
        if not (self.escalate_to or self.start or self.reassign_to or self.create_task or self.flag_plan):
            raise ValueError("`then` needs at least one of escalate_to, start, reassign_to, create_task, flag_plan")
        return self


class Trigger(Strict):
    id: Id
    title: Text | None = None
    when: When
    only_if: Only | None = Field(
        default=None, description="an observation trigger only for some patients (e.g. LDL below 55 only with established disease)"
    )
    then: Then

    @model_validator(mode="after")
    def _only_if_on_observations(self) -> Trigger:
        if self.only_if is not None and self.when.observation is None:
            raise ValueError("`only_if` on a trigger needs `when: observation` (the other events follow the plan's own tasks)")
        return self


# ---------------------------------------------------------------- the programme


class Program(Strict):
    """A care programme (zorgprogramma) as authors write it."""

    id: Id
    version: str = Field(pattern=r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$", description="semantic version, e.g. 1.2.0")
    url: str = Field(pattern=r"^https?://\S+$", description="canonical URL of the PlanDefinition")
    status: Literal["draft", "active", "retired"]
    title: Text
    description: Text | None = None
    plan_period: IsoDuration = Field(default="P1Y", description="how long one plan runs before it is reviewed")
    eligibility: Eligibility
    roles: dict[Id, Role] = Field(min_length=1)
    goals: list[Goal] = Field(default_factory=list)
    activities: list[Activity] = Field(min_length=1)
    triggers: list[Trigger] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shared_once(self) -> Program:
        keys = [a.shared for a in self.activities if a.shared]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"shared key {twice[0]!r} is used by more than one activity of the programme")
        return self

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    def activity(self, activity_id: str) -> Activity:
        for a in self.activities:
            if a.id == activity_id:
                return a
        raise KeyError(activity_id)

    def shared_activity(self, key: str) -> Activity | None:
        """The activity carrying this shared key (a programme has at most one)."""
        for a in self.activities:
            if a.shared == key:
                return a
        return None
