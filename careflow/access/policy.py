"""The access policy as data: consent codes, relationship periods, break-the-glass and the matrix.

Kept in a declarative file (``policy.yaml`` beside this module, or the file the settings name) so a
region changes who sees what without changing code; loaded with file:line errors like a programme.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from careflow.errors import ProgramError
from careflow.programs.loader import _sentence
from careflow.programs.positioned_yaml import Problem, load_mapping, read_source
from careflow.programs.positioned_yaml import dotted_path as _path
from careflow.programs.positioned_yaml import position as _position

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")

# (name, value) search parameters a granted resource must match, the syntax of a granular scope
Filter = tuple[tuple[str, str], ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Strict):
    system: str
    code: str


class ConsentRules(_Strict):
    required: bool = True
    categories: list[Coding] = Field(min_length=1)


class RelationshipRules(_Strict):
    careteam_statuses: list[str] = Field(default_factory=lambda: ["proposed", "active", "suspended"])
    inclusion_days: int = Field(default=365, ge=1, le=3650)


class EmergencyRules(_Strict):
    max_hours: int = Field(default=24, ge=1, le=24)
    min_reason_length: int = Field(default=10, ge=1, le=500)


class PolicyModel(_Strict):
    version: str
    consent: ConsentRules
    relationship: RelationshipRules = Field(default_factory=RelationshipRules)
    emergency: EmergencyRules = Field(default_factory=EmergencyRules)
    coordinators: list[str] = Field(default_factory=list)
    matrix: dict[str, Literal["all"] | list[str]]

    @field_validator("matrix")
    @classmethod
    def _entries(cls, value: dict[str, Literal["all"] | list[str]]) -> dict[str, Literal["all"] | list[str]]:
        from careflow.fhir.search_params import is_resource_type_name

        for entries in value.values():
            if entries == "all":
                continue
            for entry in entries:
                rtype = entry.split("?", 1)[0]
                if not is_resource_type_name(rtype):
                    raise ValueError(f"{rtype!r} is not a resource type")
        return value


@dataclass(frozen=True)
class AccessPolicy:
    """The loaded policy with the matrix compiled per discipline and type."""

    model: PolicyModel
    # discipline -> None (all) | type -> None (unfiltered) | filters OR'ed together
    _matrix: dict[str, dict[str, tuple[Filter, ...] | None] | None]

    @property
    def version(self) -> str:
        return self.model.version

    def matrix_filters(self, discipline: str | None, rtype: str) -> tuple[Filter, ...] | None:
        """``None``: the discipline sees all of ``rtype``; ``()``: nothing; else filters OR'ed."""
        if discipline is None or discipline not in self._matrix:
            return ()
        per_type = self._matrix[discipline]
        if per_type is None:
            return None
        return per_type.get(rtype, ())

    def is_coordinator(self, discipline: str | None) -> bool:
        return discipline in self.model.coordinators

    def consent_categories(self) -> set[tuple[str, str]]:
        return {(c.system, c.code) for c in self.model.consent.categories}


def _compile(model: PolicyModel) -> AccessPolicy:
    from urllib.parse import parse_qsl

    matrix: dict[str, dict[str, tuple[Filter, ...] | None] | None] = {}
    for discipline, entries in model.matrix.items():
        if entries == "all":
            matrix[discipline] = None
            continue
        per_type: dict[str, tuple[Filter, ...] | None] = {}
        for entry in entries:
            rtype, _, query = entry.partition("?")
            if not query:
                per_type[rtype] = None
            elif rtype not in per_type or per_type[rtype] is not None:
                flt = tuple(parse_qsl(query, keep_blank_values=True))
                per_type[rtype] = (*(per_type.get(rtype) or ()), flt)
        matrix[discipline] = per_type
    return AccessPolicy(model, matrix)


def parse_policy(text: str, filename: str = "<string>") -> AccessPolicy:
    """Parse and validate a policy file; ProgramError with every problem at file:line:column."""
    data = load_mapping(text, filename, ProgramError, "an access policy must be a mapping of keys")
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line, col, _ = _position(data, loc)
            problems.append(Problem(filename, line, col, _path(loc), _sentence(dict(err))))
        raise ProgramError(sorted(set(problems))) from None
    policy = _compile(model)
    problems = []
    for discipline, per_type in policy._matrix.items():
        for rtype, filters in (per_type or {}).items():
            for flt in filters or ():
                message = _filter_problem(rtype, flt)
                if message:
                    line, col, _ = _position(data, ("matrix", discipline))
                    problems.append(Problem(filename, line, col, f"matrix.{discipline}", message))
    if problems:
        raise ProgramError(problems)
    return policy


def _filter_problem(rtype: str, flt: Filter) -> str | None:
    from careflow.errors import InvalidSearch
    from careflow.fhir.search_query import parse_search

    try:
        parse_search(rtype, list(flt), strict=True)
    except InvalidSearch as exc:
        return f"{rtype}?{'&'.join(f'{k}={v}' for k, v in flt)}: {exc}"
    return None


def load_policy(path: str | Path | None = None) -> AccessPolicy:
    p = Path(path) if path is not None else DEFAULT_POLICY
    return parse_policy(read_source(p, ProgramError), str(p))


@lru_cache(maxsize=1)
def default_policy() -> AccessPolicy:
    return load_policy(None)
