"""The flows against a real (temporary) Prefect API and a SQLite store: partitioned task runs,
idempotent reruns, the sweep's artifact, retries on transient failures only, nothing persisted."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from flow_helpers import all_resources, duplicates, load_region

from careflow.access.principal import SYSTEM

START = date(2026, 11, 2)
SWEEP_AT = datetime(2027, 3, 1, 6, 0, tzinfo=timezone.utc)  # months later: windows opened, work overdue
PARTITIONS = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory, demo_region, prefect_api) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('flows') / 'careflow.db'}"
    load_region(url, demo_region)
    return url


@pytest.fixture(scope="module")
def first_enrolment(store):
    from workflows.flows import enrol_region

    return enrol_region(store, start=START, partitions=PARTITIONS, return_state=True)


def _task_runs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def test_enrolment_is_one_task_run_per_partition(first_enrolment, demo_region):
    state = first_enrolment
    assert state.is_completed()
    result = state.result()
    chronic = sum(1 for r in demo_region.patient_records(chronic_only=True))
    assert 0 < result["total"]["enrolled"] <= chronic
    runs = _task_runs(state.state_details.flow_run_id)
    # a handful of task runs for hundreds of patients: one lookup, one per partition, named for the work
    assert Counter(run.name for run in runs) == {"find-candidates": 1, **{f"enrol-partition-{n}": 1
                                                                         for n in range(1, PARTITIONS + 1)}}
    assert all(run.state.is_completed() for run in runs)
    assert _flow_run(state).name == f"enrol-{START.isoformat()}"


def _flow_run(state):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def _artifacts(state) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    return {a.key: a for a in found}


def test_enrolment_writes_a_summary_artifact(first_enrolment):
    from workflows.artifacts import ENROL_SUMMARY_KEY

    by_key = _artifacts(first_enrolment)
    assert set(by_key) == {ENROL_SUMMARY_KEY}
    summary = str(by_key[ENROL_SUMMARY_KEY].data)
    assert summary.startswith(f"## Enrolment of {START.isoformat()}") and "Per programme" in summary
    assert f"**enrolled**: {first_enrolment.result()['total']['enrolled']:,}" in summary


def test_every_enrolled_patient_has_one_plan_per_programme(store, first_enrolment):
    result = first_enrolment.result()
    plans = all_resources(store, "CarePlan", [("status", "active")])
    keys = Counter((p["subject"]["reference"], p["instantiatesCanonical"][0]) for p in plans if "instantiatesCanonical" in p)
    assert keys and max(keys.values()) == 1
    assert len({subject for subject, _ in keys}) == result["total"]["enrolled"]
    wholes = Counter(p["subject"]["reference"] for p in plans if "instantiatesCanonical" not in p)
    assert set(wholes) == {subject for subject, _ in keys} and max(wholes.values()) == 1  # one shared plan each


def test_rerun_enrols_nobody_twice(store, first_enrolment):
    from workflows.flows import enrol_region

    before = len(all_resources(store, "Task"))
    again = enrol_region(store, start=START, partitions=PARTITIONS + 2)
    assert again["total"].get("enrolled", 0) == 0
    assert again["total"].get("already-enrolled", 0) == first_enrolment.result()["total"]["enrolled"]
    assert len(all_resources(store, "Task")) == before


def test_sweep_writes_an_artifact_without_health_data(store, first_enrolment, demo_region):
    from workflows.artifacts import ESCALATIONS_KEY, SUMMARY_KEY
    from workflows.flows import sweep_region

    state = sweep_region(store, now=SWEEP_AT, partitions=PARTITIONS, return_state=True)
    result = state.result()
    assert result["total"]["plans"] > 0 and result["total"].get("tasks-opened", 0) > 0
    assert result["total"].get("escalated", 0) > 0  # months later, some work is overdue
    assert _flow_run(state).name == "sweep-2027-03-01T06:00+00:00"
    by_key = _artifacts(state)
    assert set(by_key) == {SUMMARY_KEY, ESCALATIONS_KEY}
    summary = str(by_key[SUMMARY_KEY].data)
    assert "Per programme" in summary and "Per neighbourhood" in summary
    assert f"{result['total']['plans']:,}" in summary
    table = by_key[ESCALATIONS_KEY].data
    text = summary + str(table)
    # no names, birth dates or SSINs of any inhabitant
    for record in list(demo_region.patient_records(chronic_only=True))[:200]:
        patient = record.patient
        assert patient["name"][0]["family"] not in text
        assert patient["birthDate"] not in text
        assert patient["identifier"][0]["value"] not in text
    if result["total"].get("escalated"):
        rows = table if isinstance(table, list) else __import__("json").loads(table)
        assert len(rows) == result["total"]["escalated"]
        assert set(rows[0]) == {"task", "overdue_task", "role", "programme", "trigger", "neighbourhood"}


def test_sweep_rerun_opens_nothing_new(store, first_enrolment):
    from workflows.flows import sweep_region

    sweep_region(store, now=SWEEP_AT, partitions=PARTITIONS)
    tasks = all_resources(store, "Task")
    state = sweep_region(store, now=SWEEP_AT, partitions=PARTITIONS + 1, return_state=True)
    again = state.result()
    assert again["total"].get("tasks-opened", 0) == 0 and again["total"].get("escalated", 0) == 0
    # nothing escalated: the summary says so, and there is no table of one empty row
    from workflows.artifacts import SUMMARY_KEY

    by_key = _artifacts(state)
    assert set(by_key) == {SUMMARY_KEY} and "No overdue Task was escalated." in str(by_key[SUMMARY_KEY].data)
    assert len(all_resources(store, "Task")) == len(tasks)
    assert not duplicates(tasks)


def test_nothing_is_persisted_in_prefect_storage(first_enrolment):
    import os

    storage = Path(os.environ["PREFECT_HOME"]) / "storage"
    assert not storage.exists() or not any(storage.rglob("*"))


class _Flaky:
    """Fails the first ``failures`` calls with ``error``, then returns a count."""

    def __init__(self, error: BaseException, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self, *args, **kwargs):
        from careflow.engine.counts import Counts

        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        counts = Counts()
        counts.add("enrolled", 1)
        return counts


def _flow_around(task_fn):
    from prefect import flow

    @flow(persist_result=False)
    def one_partition() -> int:
        return task_fn("sqlite:///unused.db", 0, ["p1"], START).total["enrolled"]

    return one_partition


def test_transient_database_errors_are_retried(monkeypatch, prefect_api):
    from sqlalchemy.exc import OperationalError

    from workflows import flows

    flaky = _Flaky(OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")), 2)
    monkeypatch.setattr(flows.enrolment, "enrol", flaky)
    monkeypatch.setattr(flows, "repository", lambda url: None)
    fast = flows.enrol_partition.with_options(retry_delay_seconds=0)
    assert _flow_around(fast)() == 1
    assert flaky.calls == 3


def test_other_errors_fail_at_once(monkeypatch, prefect_api):
    from workflows import flows

    flaky = _Flaky(ValueError("a bug, not the network"), 5)
    monkeypatch.setattr(flows.enrolment, "enrol", flaky)
    monkeypatch.setattr(flows, "repository", lambda url: None)
    fast = flows.enrol_partition.with_options(retry_delay_seconds=0)
    with pytest.raises(ValueError):
        _flow_around(fast)()
    assert flaky.calls == 1


def test_process_events_drains_the_outbox(store, first_enrolment):
    from careflow.engine import events
    from workflows.flows import process_events
    from workflows.resources import repository

    repo = repository(store)
    events.install(repo)
    subject = all_resources(store, "CarePlan", [("status", "active")])[0]["subject"]["reference"]
    with repo.unit_of_work(SYSTEM) as uow:
        for n in range(3):
            uow.create_if_absent({
                "resourceType": "Observation", "id": f"obs-flow-test-{n}", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": subject}, "effectiveDateTime": "2026-11-20T09:00:00+01:00",
                "valueQuantity": {"value": 70 + n, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            })
    done = process_events(store)
    assert done["total"].get("events", 0) == 3
    assert process_events(store)["total"].get("events", 0) == 0  # nothing left, nothing handled twice
    assert repo.outbox_claim(10) == []
