"""The audit entity index loses its ``seq`` index: no query reads it (searches go by reference, the
primary key), and every entity row of every audited interaction paid for one more b-tree insert.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_entity_seq", table_name="audit_entity")


def downgrade() -> None:
    op.create_index("ix_audit_entity_seq", "audit_entity", ["seq"])
