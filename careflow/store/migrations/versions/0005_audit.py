"""The audit trail: append-only, hash-chained AuditEvents and the references they name.

On PostgreSQL a trigger refuses every UPDATE, DELETE and TRUNCATE of both tables, whoever the role
(only a superuser or the tables' owner dropping the trigger gets past it, and ``careflow audit verify``
then finds what they changed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_FUNCTION = """
CREATE OR REPLACE FUNCTION careflow_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", PK, nullable=False, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("recorded", sa.DateTime, nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("subtype", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("agent", sa.String(140), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("prev_mac", sa.LargeBinary, nullable=False),
        sa.Column("mac", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_event"),
        sa.UniqueConstraint("id", name="uq_audit_event_id"),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_agent_seq", "audit_event", ["agent", "seq"])
    op.create_table(
        "audit_entity",
        sa.Column("ref", sa.String(140), nullable=False),
        sa.Column("role", sa.String(1), nullable=False),
        sa.Column("seq", PK, nullable=False),
        sa.PrimaryKeyConstraint("ref", "role", "seq", name="pk_audit_entity"),
    )
    op.create_index("ix_audit_entity_seq", "audit_entity", ["seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        for table in ("audit_event", "audit_entity"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION careflow_audit_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION careflow_audit_append_only()")
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_event", "audit_entity"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS careflow_audit_append_only()")
    op.drop_index("ix_audit_entity_seq", table_name="audit_entity")
    op.drop_table("audit_entity")
    op.drop_index("ix_audit_event_agent_seq", table_name="audit_event")
    op.drop_index("ix_audit_event_recorded", table_name="audit_event")
    op.drop_table("audit_event")
