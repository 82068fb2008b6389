"""Sort ids and token codes in code-point order on PostgreSQL, whatever the database's collation.

``_sort=_id`` and ``_sort=<token param>`` must order alike on every backend (the in-memory twin and
SQLite compare code points); a database created with e.g. en_US.UTF-8 would otherwise interleave case
and punctuation differently.  SQLite compares bytes already, so this is a no-op there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("resource", "id", type_=sa.String(64, collation="C"), existing_nullable=False)
    op.alter_column("idx_token", "code", type_=sa.Text(collation="C"), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("resource", "id", type_=sa.String(64), existing_nullable=False)
    op.alter_column("idx_token", "code", type_=sa.Text(), existing_nullable=False)
