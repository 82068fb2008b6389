"""The engine's bulk writes feed Subscriptions: what enrolment and the sweep write reaches a GP's
Subscription through the outbox of the same unit of work, with access checked at delivery.

Memory, SQLite and PostgreSQL (the ``repo`` fixture); a real local webhook receiver.
"""

from __future__ import annotations

import copy
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from engine_world import HEART_FAILURE, ORG, add_patient, add_team, all_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from subscription_receiver import Receiver, event_focuses, notification_type  # noqa: E402

from careflow.access.principal import SYSTEM, Principal  # noqa: E402
from careflow.auth.notification_keys import NotificationSigner  # noqa: E402
from careflow.engine import endpoints, enrolment, subscriptions  # noqa: E402
from careflow.engine.sweep import sweep  # noqa: E402
from careflow.fhir import backport  # noqa: E402
from careflow.planning import ids  # noqa: E402

START = date(2026, 5, 4)
GP = Principal("practitioner", "PractitionerRole/role-gp-0",
               acts_as=("PractitionerRole/role-gp-0", "Practitioner/prac-gp-0"), discipline="gp",
               organizations=(f"Organization/{ORG}",))


def subscription(endpoint: str, topic: str, patients: list[str]) -> dict[str, Any]:
    rtype = backport.TOPICS[topic][0]
    criteria = f"{rtype}?patient=" + ",".join(f"Patient/{p}" for p in patients)
    return backport.with_owner({
        "resourceType": "Subscription", "meta": {"profile": [backport.SUBSCRIPTION_PROFILE]}, "status": "requested",
        "reason": "the GP system follows its patients' plans", "criteria": topic,
        "_criteria": {"extension": [{"url": backport.FILTER_EXT, "valueString": criteria}]},
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }, GP.id)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "127.0.0.1/32")  # the receiver runs on this machine
    r = Receiver().start()
    yield r
    r.stop()


def worker_side(repo: Any) -> Any:
    """The same store as a worker process holds it: its own repository object, on which nobody
    installed a listener (the server's repository has the feed; the worker's engine must add it)."""
    worker = copy.copy(repo)
    worker._listeners = []
    for attr in [a for a in vars(worker) if a.startswith("_careflow_")]:
        delattr(worker, attr)
    return worker


def delivered(receiver: Receiver) -> set[str]:
    return {f.split("/fhir/", 1)[1] for b in receiver.of_type("event-notification") for f in event_focuses(b)}


def test_enrolment_and_sweep_reach_a_gps_subscription(repo: Any, heart_failure: Any, receiver: Receiver,
                                                      tmp_path: Path) -> None:
    add_team(repo)
    # the GP's own patient, and one of another GP of the team (whom this GP may not see)
    add_patient(repo, "mine", conditions=[HEART_FAILURE], onset=START - timedelta(days=500), gp_role="role-gp-0")
    add_patient(repo, "theirs", conditions=[HEART_FAILURE], onset=START - timedelta(days=500), gp_role="role-gp-1")
    subscriptions.install(repo)  # what `careflow serve` does: the Subscriptions' own writes are fed
    with repo.unit_of_work(GP) as uow:
        tasks_sub, _ = uow.create(subscription(receiver.url, backport.TASK_TOPIC, ["mine", "theirs"]))
        plans_sub, _ = uow.create(subscription(receiver.url, backport.CAREPLAN_TOPIC, ["mine", "theirs"]))
    notifier = subscriptions.Notifier(repo, base="http://testserver/fhir",
                                      signer=NotificationSigner(tmp_path / "keys.json"))
    now = datetime.combine(START, time(6), tzinfo=timezone.utc)
    notifier.run_once(now)
    assert [notification_type(b) for b in receiver.bundles()] == ["handshake", "handshake"]

    programs = {heart_failure.id: heart_failure}
    worker = worker_side(repo)
    counts = enrolment.enrol(worker, programs, ["mine", "theirs"], START)
    assert counts["enrolled"] == 2
    first = notifier.run_once(now)
    mine_tasks = {f"Task/{t['id']}" for t in all_of(repo, "Task") if t["for"]["reference"] == "Patient/mine"}
    theirs_tasks = {f"Task/{t['id']}" for t in all_of(repo, "Task") if t["for"]["reference"] == "Patient/theirs"}
    plan = f"CarePlan/{ids.careplan_id('mine', heart_failure.id)}"
    got = delivered(receiver)
    assert plan in got and f"CarePlan/{ids.shared_careplan_id('mine')}" in got
    assert mine_tasks and mine_tasks <= got
    # access at delivery: the other GP's patient matched the filter, and was withheld
    assert not any("theirs" in focus for focus in got) and not theirs_tasks & got
    assert first.withheld >= len(theirs_tasks) > 0

    later = datetime.combine(START + timedelta(days=120), time(6), tzinfo=timezone.utc)
    swept = sweep(worker_side(repo), programs, later)
    assert swept["escalated"] >= 1 and swept["tasks-overdue"] >= 1, swept.total  # new Tasks, and updated ones
    opened = {f"Task/{t['id']}" for t in all_of(repo, "Task")
              if t["for"]["reference"] == "Patient/mine" and f"Task/{t['id']}" not in mine_tasks}
    assert opened
    before = len(receiver.of_type("event-notification"))
    notifier.run_once(later)
    assert opened <= {f.split("/fhir/", 1)[1] for b in receiver.of_type("event-notification")[before:]
                      for f in event_focuses(b)}
    ledger = subscriptions.ledger_for(repo)
    recorded = {(e.focus, e.version) for e in ledger.events(tasks_sub.id, 1)}
    overdue = {(f"Task/{t['id']}", int(t["meta"]["versionId"])) for t in all_of(repo, "Task")
               if t["for"]["reference"] == "Patient/mine" and t.get("businessStatus")}
    assert overdue and overdue <= recorded  # the sweep's updates are events too, one per version
    numbers = [e.number for e in ledger.events(tasks_sub.id, 1)]
    assert numbers == list(range(1, len(numbers) + 1))  # gapless, withheld ones included
    assert ledger.get(plans_sub.id).delivered == ledger.get(plans_sub.id).events


def test_a_rolled_back_write_tells_nobody(repo: Any, heart_failure: Any, receiver: Receiver, tmp_path: Path) -> None:
    add_team(repo)
    add_patient(repo, "mine", conditions=[HEART_FAILURE], onset=START - timedelta(days=500), gp_role="role-gp-0")
    subscriptions.install(repo)
    with repo.unit_of_work(GP) as uow:
        sub, _ = uow.create(subscription(receiver.url, backport.TASK_TOPIC, ["mine"]))
    notifier = subscriptions.Notifier(repo, base="http://testserver/fhir",
                                      signer=NotificationSigner(tmp_path / "keys.json"))
    now = datetime.combine(START, time(6), tzinfo=timezone.utc)
    notifier.run_once(now)
    programs = {heart_failure.id: heart_failure}
    enrolment.enrol(worker_side(repo), programs, ["mine"], START)
    task = next(t for t in all_of(repo, "Task") if t["status"] == "requested")
    with pytest.raises(RuntimeError), repo.unit_of_work(SYSTEM) as uow:
        current = uow.read("Task", task["id"])
        uow.update({**(current.resource or {}), "description": "never committed"}, if_match=current.version)
        raise RuntimeError("the process fails before the commit")
    round_ = notifier.run_once(now)
    versions = {(e.focus, e.version) for e in subscriptions.ledger_for(repo).events(sub.id, 1)}
    assert (f"Task/{task['id']}", int(task["meta"]["versionId"]) + 1) not in versions
    assert round_.sent == len(versions) and len(versions) == len({f"Task/{t['id']}" for t in all_of(repo, "Task")})
