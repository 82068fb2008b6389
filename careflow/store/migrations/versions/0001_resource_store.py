"""Resource store: resources, versions, search index tables, conditional-create keys, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ORDERED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _index_table(name: str, *columns: sa.Column, lookup: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("res_pk", PK, nullable=False),
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *columns,
    )
    op.create_index(f"ix_{name}_rtype_param_{'_'.join(lookup)}_res_pk", name, ["rtype", "param", *lookup, "res_pk"])
    op.create_index(f"ix_{name}_res_pk_param", name, ["res_pk", "param"])


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_resource"),
        sa.UniqueConstraint("type", "id", name="uq_resource_type_id"),
    )
    op.create_index("ix_resource_type_last_updated", "resource", ["type", "last_updated"])
    op.create_table(
        "resource_version",
        sa.Column("res_pk", PK, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("res_pk", "version", name="pk_resource_version"),
    )
    op.create_index("ix_resource_version_last_updated", "resource_version", ["last_updated"])
    _index_table(
        "idx_token",
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        lookup=("code", "system"),
    )
    _index_table(
        "idx_reference",
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        lookup=("target_id", "target_type"),
    )
    _index_table(
        "idx_date",
        sa.Column("low", sa.DateTime, nullable=False),
        sa.Column("high", sa.DateTime, nullable=False),
        lookup=("low", "high"),
    )
    _index_table(
        "idx_string",
        sa.Column("norm", ORDERED_TEXT, nullable=False),
        sa.Column("exact", sa.Text, nullable=False),
        lookup=("norm",),
    )
    _index_table(
        "idx_quantity",
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False),
        lookup=("value",),
    )
    _index_table("idx_uri", sa.Column("value", ORDERED_TEXT, nullable=False), lookup=("value",))
    op.create_table(
        "condition_key",
        sa.Column("rtype", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("rtype", "key", name="pk_condition_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("claimed_until", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )


def downgrade() -> None:
    for name in ("outbox", "condition_key", "idx_uri", "idx_quantity", "idx_string", "idx_date",
                 "idx_reference", "idx_token", "resource_version", "resource"):
        op.drop_table(name)
