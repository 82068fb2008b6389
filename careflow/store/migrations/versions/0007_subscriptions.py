"""Topic-based Subscriptions: per-Subscription delivery state and its gapless numbered events.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_state",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("principal", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure", sa.DateTime(), nullable=True),
        sa.Column("next_attempt", sa.DateTime(), nullable=True),
        sa.Column("last_sent", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscription_state"),
    )
    op.create_table(
        "subscription_event",
        sa.Column("sub_id", sa.String(64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("focus", sa.String(140), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("occurred", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("sub_id", "number", name="pk_subscription_event"),
        sa.UniqueConstraint("sub_id", "focus", "version", name="uq_subscription_event_sub_id_focus_version"),
    )


def downgrade() -> None:
    op.drop_table("subscription_event")
    op.drop_table("subscription_state")
