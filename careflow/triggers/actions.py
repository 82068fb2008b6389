"""What the trigger rules ask the engine to do: small frozen values, applied by ``careflow.engine``.

The rules never write; they return these, so a rule can be tested without a store and the engine
can apply a plan's actions in one unit of work with If-Match (a concurrent edit then loses nothing:
the whole plan is skipped and re-evaluated by the next sweep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class CreateTask:
    """Create ``resource`` with its deterministic id (create-if-absent: replaying it is a no-op).

    ``reason``: scheduled | recurring | dependency | escalation | observation | reassignment;
    ``role``: the programme role the task is for; ``focus``: "Task/<id>" / "Observation/<id>" that
    caused it (escalations, observation and reassignment tasks)."""

    resource: dict[str, Any]
    reason: str
    role: str
    trigger: str | None = None
    focus: str | None = None

    @property
    def id(self) -> str:
        return str(self.resource["id"])


@dataclass(frozen=True)
class UpdateTask:
    """Write a new version of a Task; ``if_match_version`` is the version the rule read."""

    resource: dict[str, Any]
    if_match_version: int | None
    change: str  # overdue | escalated | ended

    @property
    def id(self) -> str:
        return str(self.resource["id"])


@dataclass(frozen=True)
class UpdatePlan:
    """Write a new version of a CarePlan; ``changes`` names what moved (activity, completed, flagged,
    unflagged, ended)."""

    resource: dict[str, Any]
    if_match_version: int | None
    changes: tuple[str, ...]

    @property
    def id(self) -> str:
        return str(self.resource["id"])


@dataclass(frozen=True)
class CreateResource:
    """Create a non-Task resource with its deterministic id (create-if-absent), e.g. the Communication
    that tells a team their patient's care ended; ``reason`` names why."""

    resource: dict[str, Any]
    reason: str

    @property
    def id(self) -> str:
        return str(self.resource["id"])


Action = Union[CreateTask, UpdateTask, UpdatePlan, CreateResource]


def version_of(resource: dict[str, Any]) -> int | None:
    """The store's version of a resource as read (``meta.versionId``), for If-Match."""
    v = (resource.get("meta") or {}).get("versionId")
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
