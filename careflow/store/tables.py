"""SQLAlchemy table models of the resource store (storage shape only; API models live elsewhere).

* ``resource``: one row per (type, id) pointing at its current version; unique (type, id) makes
  create-if-absent and PUT-create race-free, and ``version`` is the compare-and-set field of updates.
* ``resource_version``: every version's JSON (orjson bytes; NULL for a deletion) = the history.
* ``idx_*``: search index rows of current, non-deleted versions, one table per value shape, each with
  a composite (rtype, param, value..., res_pk) index so a parameter lookup is one index range scan, and
  a covering (res_pk, param, value...) index so a per-resource probe never reads the table.
* ``condition_key``: unique (rtype, key) claimed by conditional creates in their own transaction.
* ``outbox``: events written with the change that caused them.
* ``access_grant``: which practitioner may see which patient, and why (consent + relationship).
* ``data_key``: the data keys that encrypt ``resource_version.content`` and key the blind index,
  each wrapped by the master key (which never enters the database); ``active_for`` names the one
  key per purpose new values use (unique; NULL for a key kept only to read older values).

Index and version rows carry no foreign keys: resource rows are never deleted (soft delete), and
skipping the checks keeps bulk ingest cheap.

The schema itself is created and changed by Alembic migrations (``careflow/store/migrations``); these
models must match the latest migration (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer on SQLite so the column is the ROWID (autoincrementing, no extra index); BIGINT elsewhere
PK = BigInteger().with_variant(Integer(), "sqlite")
# byte-order collation on PostgreSQL so prefix ranges on normalised strings use the index
ORDERED_TEXT = Text().with_variant(Text(collation="C"), "postgresql")
ORDERED_ID = String(64).with_variant(String(64, collation="C"), "postgresql")  # migration 0002

resource = Table(
    "resource", metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("id", ORDERED_ID, nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),  # naive UTC
    Column("deleted", Boolean, nullable=False),
    # the patient whose compartment the resource is in (careflow.access.compartment): NULL for directory
    # data, "" for patient data without a patient; every access rule narrows on it (migration 0003)
    Column("patient", String(64), nullable=True),
    UniqueConstraint("type", "id"),
    Index(None, "type", "last_updated"),
    Index(None, "patient", "type"),
)

resource_version = Table(
    "resource_version", metadata,
    Column("res_pk", PK, nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("content", LargeBinary, nullable=True),
    PrimaryKeyConstraint("res_pk", "version"),
    Index(None, "last_updated"),
)


def _index_table(name: str, *columns: Column, lookup: tuple[str, ...], probe: tuple[str, ...]) -> Table:
    """``lookup``: the value columns of the range a search drives from (then ``res_pk``, so a fully
    given value yields its resources in creation order); ``probe``: those a per-resource probe
    compares, covered by the (res_pk, param, ...) index (migration 0008)."""
    return Table(
        name, metadata,
        Column("res_pk", PK, nullable=False),
        Column("rtype", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
        Index(None, "rtype", "param", *lookup, "res_pk"),
        Index(None, "res_pk", "param", *probe),
    )


idx_token = _index_table(
    "idx_token",
    Column("system", Text, nullable=False),
    Column("code", ORDERED_TEXT, nullable=False),  # migration 0002
    lookup=("code", "system"), probe=("code", "system"),
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    lookup=("target_id", "target_type"), probe=("target_id", "target_type"),
)
idx_date = _index_table(
    "idx_date",
    Column("low", DateTime, nullable=False),
    Column("high", DateTime, nullable=False),
    lookup=("low", "high"), probe=("low", "high"),
)
idx_string = _index_table(
    "idx_string",
    Column("norm", ORDERED_TEXT, nullable=False),
    Column("exact", Text, nullable=False),
    lookup=("norm",), probe=("norm",),
)
idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Float, nullable=False),
    Column("system", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("unit", Text, nullable=False),
    lookup=("value",), probe=("value",),
)
idx_uri = _index_table(
    "idx_uri",
    Column("value", ORDERED_TEXT, nullable=False),
    lookup=("value",), probe=("value",),
)

INDEX_TABLES: dict[str, Table] = {
    "token": idx_token, "reference": idx_reference, "date": idx_date, "string": idx_string,
    "quantity": idx_quantity, "uri": idx_uri,
}

# Tasks still to be done (careflow.web.worklist.OPEN): the statuses the worklist's partial indexes keep
OPEN_TASK_STATUSES = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")
_OPEN_TASK = "status IN (" + ", ".join(f"'{s}'" for s in OPEN_TASK_STATUSES) + ")"

# One row per current Task with the values the worklist filters and sorts by side by side, so one
# composite index holds an owner's open Tasks in due order (migration 0010; careflow.store.sql_worklist).
# The values are the Task's own index rows (owner reference, status code, the due date's low bound
# as ``_sort=due-date`` ranks it), kept in the same transaction as the index rows.
task_worklist = Table(
    "task_worklist", metadata,
    Column("res_pk", PK, primary_key=True, autoincrement=False),
    Column("owner_type", String(64), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("status", String(64), nullable=True),
    Column("due_missing", Boolean, nullable=False),  # ascending with missing last, on SQLite too
    Column("due", DateTime, nullable=True),
    Index("ix_task_worklist_open_owner_due", "owner_id", "owner_type", "due_missing", "due", "res_pk",
          sqlite_where=text(_OPEN_TASK), postgresql_where=text(_OPEN_TASK)),
)

# The team queue's twin of ``task_worklist``: one row per (Task, performerType coding), so the
# partial index holds a discipline's open Tasks in due order (``Task?performer=system|code&status&_sort=due-date``).
task_performer = Table(
    "task_performer", metadata,
    Column("res_pk", PK, nullable=False),
    Column("system", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("status", String(64), nullable=True),
    Column("due_missing", Boolean, nullable=False),
    Column("due", DateTime, nullable=True),
    PrimaryKeyConstraint("res_pk", "system", "code"),
    Index("ix_task_performer_open_code_due", "code", "system", "due_missing", "due", "res_pk",
          sqlite_where=text(_OPEN_TASK), postgresql_where=text(_OPEN_TASK)),
)

condition_key = Table(
    "condition_key", metadata,
    Column("rtype", String(64), nullable=False),
    Column("key", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    PrimaryKeyConstraint("rtype", "key"),
)

# Who may see which patient (careflow.access.grants): derived rows are recomputed with every write of
# the patient's Patient, CareTeam or Consent; emergency rows are written by break-the-glass and expire.
access_grant = Table(
    "access_grant", metadata,
    Column("patient_id", String(64), nullable=False),
    Column("grantee", String(140), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("full", Boolean, nullable=False),
    Column("expires", DateTime, nullable=True),  # naive UTC
    PrimaryKeyConstraint("patient_id", "grantee", "reason"),
    Index(None, "grantee", "reason", "patient_id"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("claimed_until", DateTime, nullable=True),
)

data_key = Table(
    "data_key", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # the key id every value names
    Column("purpose", String(16), nullable=False),  # content | blind
    Column("master_id", String(16), nullable=False),  # fingerprint of the master key that wrapped it
    Column("wrapped", LargeBinary, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("active_for", String(16), nullable=True),
    UniqueConstraint("active_for"),
)

# The audit trail (careflow.audit): one row per AuditEvent, append-only and hash-chained.  ``seq`` is
# contiguous from 1; ``mac`` is HMAC-SHA256 (the audit key) over seq, content and ``prev_mac`` (the
# previous entry's mac).  ``content`` is the AuditEvent JSON (no search values in clear); the other
# columns are copies of its fields for search, checked against it by ``careflow audit verify``.  On
# PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0005).
audit_event = Table(
    "audit_event", metadata,
    Column("seq", PK, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False),
    Column("recorded", DateTime, nullable=False),  # naive UTC
    Column("action", String(1), nullable=False),
    Column("subtype", String(64), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("agent", String(140), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("prev_mac", LargeBinary, nullable=False),
    Column("mac", LargeBinary, nullable=False),
    UniqueConstraint("id"),
    Index(None, "recorded"),
    Index(None, "agent", "seq"),
)

# What each audit entry names (entity.what): role "p" the patient, "o" a resource returned or written
audit_entity = Table(
    "audit_entity", metadata,
    Column("ref", String(140), nullable=False),
    Column("role", String(1), nullable=False),
    Column("seq", PK, nullable=False),
    PrimaryKeyConstraint("ref", "role", "seq"),
)

# Topic-based Subscriptions (careflow.engine.subscriptions): the delivery state of each Subscription
# resource, and its numbered events.  ``events`` is the last event number handed out (gapless per
# subscription: incremented in the transaction that inserts the event row); ``delivered`` the highest
# number settled (sent, or withheld because the subscriber may no longer see the focus).
subscription_state = Table(
    "subscription_state", metadata,
    Column("id", String(64), primary_key=True),  # the Subscription resource's id
    Column("principal", LargeBinary, nullable=False),  # JSON of the creator's Principal
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("events", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("first_failure", DateTime, nullable=True),  # naive UTC, the start of the failing run
    Column("next_attempt", DateTime, nullable=True),
    Column("last_sent", DateTime, nullable=True),
    Column("error", Text, nullable=True),
)

subscription_event = Table(
    "subscription_event", metadata,
    Column("sub_id", String(64), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("focus", String(140), nullable=False),  # Type/id
    Column("version", Integer, nullable=False),
    Column("action", String(8), nullable=False),  # create | update | delete
    Column("occurred", DateTime, nullable=False),
    Column("state", String(10), nullable=False),  # pending | sent | withheld
    PrimaryKeyConstraint("sub_id", "number"),
    UniqueConstraint("sub_id", "focus", "version"),  # one change is one event: a replayed claim adds nothing
)

# Quality indicators (careflow.store.measures_sql): one row per Measure, period and subject (a patient, or
# a Task of a Task indicator) with its populations and strata, counted by GROUP BY for the MeasureReports;
# and per indicator set, period and patient the fingerprint of what the rows were computed from, so a rerun recomputes
# only the patients whose compartment changed (migration 0009).
measure_result = Table(
    "measure_result", metadata,
    Column("measure", String(64), nullable=False),
    Column("period", String(7), nullable=False),  # YYYY or YYYY-MM
    Column("subject", String(140), nullable=False),  # Patient/<id> or Task/<id>
    Column("patient", String(64), nullable=False),
    Column("excluded", Boolean, nullable=False),
    Column("numerator", Boolean, nullable=False),
    Column("grp", String(8), nullable=True),
    Column("hood", String(140), nullable=True),
    Column("practice", String(140), nullable=True),
    Column("team", String(140), nullable=True),
    PrimaryKeyConstraint("measure", "period", "subject"),
    Index(None, "period", "patient"),
)

measure_watermark = Table(
    "measure_watermark", metadata,
    Column("measure_set", String(64), nullable=False),  # the indicator file's id: each set is refreshed on its own
    Column("period", String(7), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("fingerprint", String(120), nullable=False),
    PrimaryKeyConstraint("measure_set", "period", "patient"),
)

# The sweep's due-date index (careflow.engine.sweep, migration 0011): one row per patient who has had
# a CarePlan, the first day the sweep may have work for them.  Every unit of work that writes one of
# the patient's resources sets ``next_due`` to DUE_NOW and adds 1 to ``gen`` before it commits; the
# sweep, having found nothing to do, writes the next day back only while ``gen`` is what it read
# before reading the plans (a write in between keeps the patient due).
plan_due = Table(
    "plan_due", metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("next_due", Date, nullable=False),
    Column("gen", BigInteger, nullable=False),
    Index(None, "next_due"),
)

# One value: the fingerprint of the programmes the stored due days were computed with (a different
# programme set marks every patient due, since the days follow from the programmes' timings).
sweep_state = Table(
    "sweep_state", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)
