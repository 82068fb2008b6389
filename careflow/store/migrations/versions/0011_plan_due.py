"""The sweep's due-date index: ``plan_due(patient_id, next_due, gen)`` and ``sweep_state``.

The daily sweep read every active CarePlan with its Tasks (58.6 s for the 100,000-inhabitant
region on PostgreSQL) to find the few with work that day.  With the first day each patient may have
work kept beside the resources (maintained in the unit of work of every write), it reads only those
(issue #13).  Backfill: every patient who has a CarePlan is due at once, so the first sweep after
the upgrade reads them all (as before) and writes their real days.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DUE_NOW = "0001-01-01"


def upgrade() -> None:
    op.create_table(
        "plan_due",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("next_due", sa.Date, nullable=False),
        sa.Column("gen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name="pk_plan_due"),
    )
    op.create_index("ix_plan_due_next_due", "plan_due", ["next_due"])
    op.create_table(
        "sweep_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sweep_state"),
    )
    # the patient column is the current version's compartment (migration 0003): every patient with a
    # CarePlan, whatever its status, is a superset of those the sweep reads
    op.execute(
        "INSERT INTO plan_due (patient_id, next_due, gen) "
        f"SELECT DISTINCT patient, DATE '{DUE_NOW}', 1 FROM resource "
        "WHERE type = 'CarePlan' AND patient IS NOT NULL AND patient <> ''"
        if op.get_bind().dialect.name == "postgresql" else
        "INSERT INTO plan_due (patient_id, next_due, gen) "
        f"SELECT DISTINCT patient, '{DUE_NOW}', 1 FROM resource "
        "WHERE type = 'CarePlan' AND patient IS NOT NULL AND patient <> ''"
    )


def downgrade() -> None:
    op.drop_table("sweep_state")
    op.drop_index("ix_plan_due_next_due", table_name="plan_due")
    op.drop_table("plan_due")
