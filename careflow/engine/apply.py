"""Applying trigger actions in one unit of work: creates first, then Task updates, then the plan.

Creates use the deterministic ids with create-if-absent (a replay is a no-op); updates carry the
version the rule read as If-Match, so a concurrent edit raises VersionConflict and the caller's unit
of work rolls back as a whole - the plan is re-evaluated from fresh data by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from careflow.store.port import UnitOfWork
from careflow.triggers.actions import Action, CreateResource, CreateTask, UpdatePlan, UpdateTask


@dataclass
class Applied:
    created: list[CreateTask] = field(default_factory=list)
    task_updates: list[UpdateTask] = field(default_factory=list)
    plan_updates: list[UpdatePlan] = field(default_factory=list)
    other_created: list[CreateResource] = field(default_factory=list)


def apply_actions(uow: UnitOfWork, actions: Sequence[Action]) -> Applied:
    """Write ``actions``; returns those that changed something (an existing create is not counted)."""
    done = Applied()
    for a in actions:
        if isinstance(a, CreateTask):
            _, created = uow.create_if_absent(a.resource)
            if created:
                done.created.append(a)
        elif isinstance(a, CreateResource):
            _, created = uow.create_if_absent(a.resource)
            if created:
                done.other_created.append(a)
    for a in actions:
        if isinstance(a, UpdateTask):
            uow.update(a.resource, if_match=a.if_match_version)
            done.task_updates.append(a)
    for a in actions:
        if isinstance(a, UpdatePlan):
            uow.update(a.resource, if_match=a.if_match_version)
            done.plan_updates.append(a)
    return done
