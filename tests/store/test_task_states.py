"""The FHIR Task state machine at the store's one write path: every pair of statuses, every backend.

The table (careflow.triggers.task_states) is the oracle; the store must refuse exactly what the
table refuses, for the SYSTEM principal too, with a 409 that names the allowed next statuses."""

from __future__ import annotations

import itertools

import pytest

from careflow.access.principal import SYSTEM
from careflow.errors import IllegalTransition, InvalidResource
from careflow.triggers import task_states

PAIRS = [(a, b) for a, b in itertools.product(task_states.STATUSES, repeat=2) if a != b]
LEGAL = [p for p in PAIRS if task_states.is_legal(*p)]
ILLEGAL = [p for p in PAIRS if not task_states.is_legal(*p)]


def task(status: str, **extra):
    return {"resourceType": "Task", "id": "t1", "status": status, "intent": "order", **extra}


def stored_with(repo, status: str, **extra) -> None:
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(task(status, **extra))


def test_table_matches_the_issue():
    """A few rows spelled out, so a table edit that breaks the agreed workflow fails here."""
    t = task_states.TRANSITIONS
    assert t["requested"] == {"received", "accepted", "rejected", "cancelled", "entered-in-error"}
    assert t["in-progress"] == {"on-hold", "completed", "failed", "cancelled", "entered-in-error"}
    assert t["on-hold"] == {"in-progress", "cancelled", "failed", "entered-in-error"}
    assert task_states.FINAL == {"completed", "failed", "cancelled", "rejected", "entered-in-error"}
    assert all(t[s] == {"entered-in-error"} for s in task_states.FINAL - {"entered-in-error"})
    assert t["entered-in-error"] == set()
    assert all("entered-in-error" in t[s] for s in task_states.STATUSES if s != "entered-in-error")
    assert len(LEGAL) + len(ILLEGAL) == 12 * 11 and LEGAL and ILLEGAL


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_legal_transition_is_stored(repo, old, new):
    stored_with(repo, old)
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.update(task(new))
    assert stored.version == 2
    assert repo.read("Task", "t1").resource["status"] == new


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_illegal_transition_is_refused_even_for_the_system(repo, old, new):
    stored_with(repo, old)
    with pytest.raises(IllegalTransition) as err:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(task(new))
    assert err.value.http_status == 409
    assert err.value.allowed == task_states.allowed_next(old)
    assert all(s in str(err.value) for s in err.value.allowed) or "final" in str(err.value)
    assert repo.read("Task", "t1").version == 1  # nothing written


def test_business_status_changes_and_an_overdue_task_stays_completable(repo):
    stored_with(repo, "in-progress")
    overdue = {"coding": [{"code": "overdue"}]}
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(task("in-progress", businessStatus=overdue))
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.update(task("completed", businessStatus=overdue))
    assert stored.resource["status"] == "completed" and stored.version == 3


def test_system_may_annotate_a_final_task_but_not_reopen_it(repo):
    stored_with(repo, "completed")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(task("completed", businessStatus={"text": "escalated"}))
    with pytest.raises(IllegalTransition):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(task("in-progress"))


def test_unknown_status_is_invalid_not_a_transition(repo):
    stored_with(repo, "requested")
    with pytest.raises(InvalidResource):
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(task("bogus"))


def test_a_deleted_task_may_come_back_in_any_status(repo):
    stored_with(repo, "completed")
    with repo.unit_of_work(SYSTEM) as uow:
        uow.delete("Task", "t1")
    with repo.unit_of_work(SYSTEM) as uow:
        stored, _ = uow.update(task("requested"))
    assert stored.resource["status"] == "requested"


def test_person_may_not_edit_a_final_task_pure_rule():
    """The principal part of the rule, judged without a store (writers' access rules are elsewhere)."""
    kw = {"other_fields_changed": True}
    assert task_states.transition_problem("completed", "completed", system=False, **kw)
    assert task_states.transition_problem("completed", "completed", system=True, **kw) is None
    assert task_states.transition_problem("in-progress", "in-progress", system=False, **kw) is None
