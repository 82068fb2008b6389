"""careflow's engine services: plain Python over the store port, called by the Prefect flows (workflows/).

No Prefect and no FastAPI here: a flow task is a thin wrapper around one of these calls, so the same
logic runs from the CLI, the tests and a worker.  The rules themselves are pure and live in
``careflow.triggers``; this package loads what they need, applies the actions they return with
If-Match, and reports counts.  Return values carry ids and counts only, never patient data, so
they are safe to log and to keep as flow results.

Signatures (``programs`` is ``Mapping[str, Program]`` keyed by programme id; ``repo`` a
``careflow.store.port.Repository``; ``now`` a timezone-aware datetime, injected, never read here):

careflow.engine.counts
    @dataclass class Escalation: task_id: str; overdue_task_id: str; program: str; trigger: str;
        role: str; neighbourhood: str | None
    @dataclass class Counts:
        total: Counter[str]; by_program: dict[str, Counter[str]]; by_neighbourhood: dict[str, Counter[str]];
        escalations: list[Escalation]
        add(key: str, n: int = 1, *, program: str | None = None, neighbourhood: str | None = None) -> None
        merge(other: Counts) -> Counts            # in place, returns self
        as_dict() -> dict[str, Any]              # JSON-safe (for flow results / artifacts)
        Counts.combine(parts: Iterable[Counts]) -> Counts

careflow.engine.enrolment
    find_candidates(repo, programs, *, page_size: int = 500) -> list[str]     # sorted Patient ids
    partition(ids: Sequence[str], n: int) -> list[list[str]]                  # stable hash, n >= 1
    enrol(repo, programs, patient_ids: Sequence[str], start: date, *, batch_size: int = 50) -> Counts
        keys: enrolled, plans-created (per programme), already-enrolled, not-eligible, deceased,
        inactive-record, missing-patient, team-updated, resources-created, conflict

careflow.engine.sweep
    plan_patients(repo, *, page_size: int = 500) -> list[str]   # ids of patients with an active CarePlan
    sweep(repo, programs, now: datetime, patient_ids: Sequence[str] | None = None, *, page_size: int = 200) -> Counts
        patient_ids None: every active CarePlan.  keys: plans, tasks-opened, tasks-overdue, escalated,
        plans-completed, plans-unflagged, conflict (a concurrent edit: plan skipped, picked up by the
        next sweep), skipped-unknown-program, missing-patient; ``escalations`` lists each new escalation

careflow.engine.events
    install(repo) -> None          # registers the outbox listener (idempotent per repo object)
    process_events(repo, programs, now: datetime, limit: int = 100) -> Counts
        keys: events, observation-tasks, plans-flagged, plans-unflagged, tasks-opened (dependants of a
        completed Task), tasks-started (``completed`` triggers), tasks-reassigned, conflict (event left for
        the outbox lease to hand out again), skipped (no such resource / no active plan)
    outbox_listener(action, stored, uow) -> None   # the listener itself (topics: observation.created {id},
                                                   # task.status {id, status})

careflow.engine.feed
    install(repo) -> None          # the Subscription feed: one outbox event (subscription.resource
                                   # {type, id, version, action, keys}) per Task/CarePlan version, in the
                                   # writing unit of work; enrol, sweep, process_events and publish install it

careflow.engine.retry
    is_transient(exc: BaseException) -> bool    # retry-worthy store/DB failure (TransientStoreError,
                                                # SQLAlchemy OperationalError / connection invalidated)
"""
