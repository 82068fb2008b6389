"""What a quality-indicator file means: the programme whose enrolled patients form the denominator,
the exclusions, and per indicator the facts that put a patient (or a Task) in the numerator.

A file reads like the region's agreement: "of the patients in the diabetes programme during the
period, not deceased, not palliative, who had an HbA1c in the 6 months before its end". Every file
has a ``version`` (the Measure's version) so a changed definition is a new Measure version; the JSON
Schema in ``measures/schema.json`` is generated from these classes.

Windows are read back from the last day of the measurement period: ``within: P6M`` holds for a fact
dated on or after that day minus six months (both ends inclusive, as the stratification reads them);
``season`` for a fact dated on or after the latest ``opens`` day (e.g. 1 October) on or before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from careflow.population.model import VERSION_PATTERN
from careflow.programs.codes import ATC, code_problem
from careflow.programs.model import ID_PATTERN, Coding, IsoDuration, Strict

MEASURE_BASE = "https://careflow.dev/fhir/Measure"
MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Window(Strict):
    """When the fact must be dated: ``within`` a duration before the period's end, or since the
    season ``opens`` (MM-DD) last began."""

    within: IsoDuration | None = None
    season_opens: Annotated[str, Field(pattern=MONTH_DAY)] | None = Field(
        None, description="MM-DD: since the latest such day on or before the period's end (a flu season: 10-01)")

    @model_validator(mode="after")
    def _one(self) -> Window:
        if (self.within is None) == (self.season_opens is None):
            raise ValueError("give exactly one of within or season_opens")
        return self


class ObservationFact(Window):
    """A final Observation of one of ``codes`` dated in the window; with ``below``, the latest such
    value (the highest when several share the latest moment) must be under the patient's target:
    ``below`` for everyone, ``below_for_group`` for a pyramid group (the stratification's RiskAssessment)."""

    label: str = Field(min_length=1, description="how the report names it, e.g. 'HbA1c'")
    codes: list[Coding] = Field(min_length=1)
    below: float | None = None
    below_for_group: dict[Literal["A", "B", "C", "D"], float] | None = None

    @model_validator(mode="after")
    def _target(self) -> ObservationFact:
        if self.below_for_group and self.below is None:
            raise ValueError("below_for_group needs below (the target of the other groups)")
        return self


class TaskDone(Window):
    """A completed Task of one of ``codes`` (a programme activity carried out), its lastModified in the window."""

    label: str = Field(min_length=1)
    codes: list[Coding] = Field(min_length=1)


MedicationStatus = Literal["active", "not-taken"]


class Medication(Strict):
    """A MedicationStatement or MedicationRequest in one of the ATC classes (a class covers its subtree)
    whose status is one of ``status`` (default active); ``[not-taken]`` is a statement that the patient
    does not take it (its statusReason documents why)."""

    label: str = Field(min_length=1)
    atc: list[str] = Field(min_length=1)
    status: list[MedicationStatus] = Field(default_factory=lambda: list[MedicationStatus](["active"]), min_length=1)

    @field_validator("atc")
    @classmethod
    def _atc(cls, v: list[str]) -> list[str]:
        for code in v:
            problem = code_problem(ATC, code)
            if problem:
                raise ValueError(f"{code!r}: {problem}")
        return v


class TaskState(Strict):
    """For Task indicators: the Task itself. ``done_on_time``: completed no later than its due day;
    ``business_status``: one of these careflow business statuses (overdue, escalated)."""

    done_on_time: bool | None = None
    business_status: list[Literal["on-time", "overdue", "escalated"]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> TaskState:
        if (self.done_on_time is None) == (self.business_status is None):
            raise ValueError("give exactly one of done_on_time or business_status")
        return self


class ObservationCriterion(Strict):
    observation: ObservationFact


class TaskDoneCriterion(Strict):
    task_done: TaskDone


class MedicationCriterion(Strict):
    medication: Medication


class TaskCriterion(Strict):
    task: TaskState


class AnyCriterion(Strict):
    any: list[Criterion] = Field(min_length=1)


CRITERIA = ("observation", "task_done", "medication", "task", "any")


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in CRITERIA]
        return keys[0] if len(keys) == 1 else None
    fields = list(type(value).model_fields) if isinstance(value, Strict) else []
    return fields[0] if len(fields) == 1 else None


Criterion = Annotated[
    Union[Annotated[ObservationCriterion, Tag("observation")], Annotated[TaskDoneCriterion, Tag("task_done")],
          Annotated[MedicationCriterion, Tag("medication")], Annotated[TaskCriterion, Tag("task")],
          Annotated[AnyCriterion, Tag("any")]],
    Discriminator(_kind, custom_error_type="not_a_criterion",
                  custom_error_message="not a criterion: give exactly one of " + ", ".join(CRITERIA)),
    Field(description="one fact: observation, task_done, medication, task (Task indicators), or any of several"),
]
AnyCriterion.model_rebuild()


def _walk(criteria: list[Criterion]) -> list[Criterion]:
    out: list[Criterion] = []
    for c in criteria:
        out.append(c)
        if isinstance(c, AnyCriterion):
            out += _walk(c.any)
    return out


class ConditionExclusion(Strict):
    label: str = Field(min_length=1)
    codes: list[Coding] = Field(min_length=1, description="an active Condition with one of these codes (e.g. palliative care)")


class Exclusion(Strict):
    """One denominator exclusion: ``deceased`` (a death date on or before the period's end),
    ``consent_withdrawn`` (a sharing Consent no longer active and none active), ``condition``, or for
    Task indicators ``task_status`` (e.g. cancelled work)."""

    deceased: bool | None = None
    consent_withdrawn: bool | None = None
    condition: ConditionExclusion | None = None
    task_status: list[Literal["cancelled", "rejected", "entered-in-error", "draft", "failed"]] | None = None

    @model_validator(mode="after")
    def _one(self) -> Exclusion:
        given = [k for k in ("deceased", "consent_withdrawn", "condition", "task_status") if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError("give exactly one of deceased: true, consent_withdrawn: true, condition or task_status")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("deceased", "consent_withdrawn", "condition", "task_status") if getattr(self, k) not in (None, False))


class Discipline(Strict):
    """A discipline the Task indicators are computed for: the Task's performerType codes."""

    label: str = Field(min_length=1)
    codes: list[Coding] = Field(min_length=1)


class Indicator(Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    title: str = Field(min_length=1)
    description: str | None = None
    numerator: list[Criterion] = Field(min_length=1, description="every fact must hold (they read as 'and')")


class MeasureSet(Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    version: Annotated[str, Field(pattern=VERSION_PATTERN, description="year.release, e.g. 2026.1: the Measures' version")]
    title: str = Field(min_length=1)
    subject: Literal["patient", "task"] = Field("patient", description="what is counted: enrolled patients, or their Tasks")
    program: str = Field(pattern=r"^(https?://\S+|\*)$", description="the programme's PlanDefinition URL: patients with a"
                         " CarePlan of it in the period form the initial population ('*': any programme)")
    disciplines: dict[Annotated[str, Field(pattern=ID_PATTERN)], Discipline] | None = Field(
        None, description="Task indicators: one Measure per indicator and discipline (id: <indicator>-<discipline>)")
    exclusions: list[Exclusion] = Field(default_factory=list)
    indicators: list[Indicator] = Field(min_length=1)

    @model_validator(mode="after")
    def _subject(self) -> MeasureSet:
        if self.subject == "task" and not self.disciplines:
            raise ValueError("Task indicators (subject: task) need disciplines")
        if self.subject == "patient" and self.disciplines:
            raise ValueError("disciplines apply to Task indicators only (subject: task)")
        if self.subject == "patient" and self.program == "*":
            raise ValueError("patient indicators count one programme's patients: give its PlanDefinition URL")
        if self.subject == "task" and self.program != "*":
            raise ValueError("Task indicators count the Tasks of every programme: program must be '*'")
        if self.subject == "patient":
            if any(e.kind == "task_status" for e in self.exclusions):
                raise ValueError("task_status excludes Tasks: it applies to Task indicators only (subject: task)")
            for ind in self.indicators:
                if any(isinstance(c, TaskCriterion) for c in _walk(ind.numerator)):
                    raise ValueError(f"indicator {ind.id}: a task criterion applies to Task indicators only (subject: task)")
        return self


@dataclass(frozen=True)
class MeasureDef:
    """One Measure: an indicator, for Task indicators of one discipline."""

    id: str
    title: str
    set: MeasureSet
    indicator: Indicator
    discipline: Discipline | None = None
    discipline_id: str | None = None

    @property
    def url(self) -> str:
        return f"{MEASURE_BASE}/{self.id}"

    @property
    def version(self) -> str:
        return self.set.version


def measures_of(sets: list[MeasureSet]) -> list[MeasureDef]:
    """Every Measure the sets define, in file and indicator order."""
    out: list[MeasureDef] = []
    for ms in sets:
        for ind in ms.indicators:
            if ms.disciplines:
                out += [MeasureDef(f"{ind.id}-{did}", f"{ind.title}: {d.label}", ms, ind, d, did)
                        for did, d in ms.disciplines.items()]
            else:
                out.append(MeasureDef(ind.id, ind.title, ms, ind))
    return out
