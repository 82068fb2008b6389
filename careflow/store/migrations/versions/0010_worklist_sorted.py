"""The worklist's sorted query from one index: ``task_worklist`` and its partial index on open Tasks.

``Task?owner=X&status=<open>&_sort=due-date`` is the worklist page; with owner, status and due date
in three index tables every one of the owner's Tasks was probed and ranked for each page (issue #13).
``task_worklist`` holds those values of each current Task in one row; the index
``(owner_id, owner_type, due_missing, due, res_pk) WHERE status IN (open statuses)`` is in the
order the query filters and sorts (``due_missing`` first so a missing due date sorts last on SQLite
as on PostgreSQL), so a page reads its own rows and stops (careflow.store.sql_worklist).
``task_performer`` does the same for the team queue (``performer=system|code&status&_sort=due-date``),
one row per (Task, performerType coding), indexed ``(code, system, due_missing, due, res_pk)`` on
open Tasks.

The rows of the Tasks already stored are built from their index rows, inside the database.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OPEN = "status IN ('requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold')"
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_DUE = "(SELECT min(d.low) FROM idx_date d WHERE d.res_pk = r.pk AND d.param = 'due-date')"
_OWNER = "(SELECT o.{col} FROM idx_reference o WHERE o.res_pk = r.pk AND o.param = 'owner' AND o.target_type <> '' LIMIT 1)"
BACKFILL = f"""
INSERT INTO task_worklist (res_pk, owner_type, owner_id, status, due_missing, due)
SELECT r.pk, {_OWNER.format(col='target_type')}, {_OWNER.format(col='target_id')},
       (SELECT t.code FROM idx_token t WHERE t.res_pk = r.pk AND t.param = 'status' LIMIT 1),
       {_DUE} IS NULL, {_DUE}
FROM resource r WHERE r.type = 'Task' AND r.deleted = {{false}}
"""
BACKFILL_PERFORMER = f"""
INSERT INTO task_performer (res_pk, system, code, status, due_missing, due)
SELECT DISTINCT p.res_pk, p.system, p.code,
       (SELECT t.code FROM idx_token t WHERE t.res_pk = r.pk AND t.param = 'status' LIMIT 1),
       {_DUE} IS NULL, {_DUE}
FROM idx_token p JOIN resource r ON r.pk = p.res_pk
WHERE p.rtype = 'Task' AND p.param = 'performer' AND r.deleted = {{false}}
"""


def upgrade() -> None:
    op.create_table(
        "task_worklist",
        sa.Column("res_pk", PK, nullable=False, autoincrement=False),
        sa.Column("owner_type", sa.String(64), nullable=True),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("due_missing", sa.Boolean(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("res_pk", name="pk_task_worklist"),
    )
    op.create_index("ix_task_worklist_open_owner_due", "task_worklist",
                    ["owner_id", "owner_type", "due_missing", "due", "res_pk"],
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.create_table(
        "task_performer",
        sa.Column("res_pk", PK, nullable=False, autoincrement=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("due_missing", sa.Boolean(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("res_pk", "system", "code", name="pk_task_performer"),
    )
    op.create_index("ix_task_performer_open_code_due", "task_performer",
                    ["code", "system", "due_missing", "due", "res_pk"],
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    pg = op.get_bind().dialect.name == "postgresql"
    op.execute(BACKFILL.format(false="false" if pg else "0"))
    op.execute(BACKFILL_PERFORMER.format(false="false" if pg else "0"))


def downgrade() -> None:
    op.drop_index("ix_task_performer_open_code_due", table_name="task_performer")
    op.drop_table("task_performer")
    op.drop_index("ix_task_worklist_open_owner_due", table_name="task_worklist")
    op.drop_table("task_worklist")
