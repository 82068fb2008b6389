"""What a case-finding rule file means: rules that find inhabitants who should be looked at (a smoker
over 40 never given a spirometry, an eGFR below 60 twice without a CKD diagnosis), as typed plain data.

A case-finding rule is a question for the patient's GP, not a diagnosis: every match becomes a
proposal Task, never an enrolment. The criteria are the population rules' own (``careflow.population
.model.Criterion``: age, condition, observation, medicines, hospital stays, any/all/not), read by the
same evaluation, so "eGFR below 60" means the same in the pyramid and here. Each rule names the care
programme a confirmed case would join (patients already in it are never proposed). A file has a
``version`` and the day it takes ``effective``, like the pyramid's; the JSON Schema in
``case_finding/schema.json`` is generated from these classes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field

from careflow.population.model import VERSION_PATTERN, ChronicKind, Criterion, FrailtyScreen
from careflow.programs.model import ID_PATTERN, Strict, Text


class CaseRule(Strict):
    """Who should be proposed to their GP: every criterion of ``when`` holds (they read as 'and')."""

    id: Annotated[str, Field(pattern=ID_PATTERN, description="the rule's name, kept across versions (a rejection is remembered by it)")]
    title: Text = Field(description="what the GP reads on the worklist, in Dutch and English")
    programme: Annotated[str, Field(pattern=ID_PATTERN)] | None = Field(
        None, description="the care programme a confirmed case joins (its id); enrolled patients are not proposed")
    when: list[Criterion] = Field(min_length=1)


class CaseFindingSet(Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN, description="the rule set's name, the same in every version")]
    version: Annotated[str, Field(pattern=VERSION_PATTERN, description="year.release, e.g. 2026.1")]
    effective: date = Field(description="the first day this version applies (quote it: '2026-01-01')")
    title: str = Field(min_length=1)
    chronic: dict[Annotated[str, Field(pattern=ID_PATTERN)], ChronicKind] = Field(
        min_length=1, description="the condition kinds the rules name (as in the pyramid's rule files)")
    frailty: FrailtyScreen | None = None
    rules: list[CaseRule] = Field(min_length=1, description="each is tested on its own; a patient may match several")
