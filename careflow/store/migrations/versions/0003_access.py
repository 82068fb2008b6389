"""Access narrowing: the patient of every resource row, and the access grants per patient.

``resource.patient`` lets every query narrow to the patients a caller may see with one indexed test;
``access_grant`` holds who may see whom (derived from Patient.generalPractitioner, CareTeams and
Consents, plus break-the-glass).  Existing rows are backfilled from their current JSON.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("resource", sa.Column("patient", sa.String(64), nullable=True))
    op.create_index("ix_resource_patient_type", "resource", ["patient", "type"])
    op.create_table(
        "access_grant",
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("grantee", sa.String(140), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("expires", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("patient_id", "grantee", "reason", name="pk_access_grant"),
    )
    op.create_index("ix_access_grant_grantee_reason_patient_id", "access_grant", ["grantee", "reason", "patient_id"])
    _backfill()


def _backfill() -> None:
    """Compute the patient column and grants of rows stored before this revision."""
    from careflow.store.access_backfill import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_access_grant_grantee_reason_patient_id", table_name="access_grant")
    op.drop_table("access_grant")
    op.drop_index("ix_resource_patient_type", table_name="resource")
    op.drop_column("resource", "patient")
