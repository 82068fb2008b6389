"""Quality indicators: the per-subject rows of each Measure and period, and the per-patient
fingerprints that let a rerun recompute only what changed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measure_result",
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("subject", sa.String(140), nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("numerator", sa.Boolean(), nullable=False),
        sa.Column("grp", sa.String(8), nullable=True),
        sa.Column("hood", sa.String(140), nullable=True),
        sa.Column("practice", sa.String(140), nullable=True),
        sa.Column("team", sa.String(140), nullable=True),
        sa.PrimaryKeyConstraint("measure", "period", "subject", name="pk_measure_result"),
    )
    op.create_index("ix_measure_result_period_patient", "measure_result", ["period", "patient"])
    op.create_table(
        "measure_watermark",
        sa.Column("measure_set", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("measure_set", "period", "patient", name="pk_measure_watermark"),
    )


def downgrade() -> None:
    op.drop_table("measure_watermark")
    op.drop_index("ix_measure_result_period_patient", table_name="measure_result")
    op.drop_table("measure_result")
