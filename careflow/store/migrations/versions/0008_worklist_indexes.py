"""Index rows probed by resource are covered: ``(res_pk, param)`` becomes ``(res_pk, param, value...)``.

A search drives from one criterion's index range and probes every other criterion (and every sort
key) per candidate resource with ``EXISTS (... WHERE res_pk = ? AND param = ? AND code = ?)``.  With
the value in the index that probe is answered from the index alone instead of one more table lookup
per candidate (SQLite: a rowid fetch; PostgreSQL: a heap fetch per row once the visibility map is
set), which is most of the cost of ``Task?owner&status`` (issue #13).  ``DELETE ... WHERE res_pk = ?``
of a re-indexed resource uses the same index's prefix.

PostgreSQL also gets extended statistics (multi-column MCV lists and dependencies) on the lookup
columns: it otherwise multiplies the selectivities of ``rtype``, ``param`` and ``target_id`` as if
they were independent, estimated 114 Tasks for an owner who had 5,000, and chose to fetch them all
and sort them instead of streaming the index in creation order (53 ms instead of about 1 ms).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# index table -> the value columns a probe compares, in the order the probes name them
PROBE_COLUMNS = {
    "idx_token": ("code", "system"),
    "idx_reference": ("target_id", "target_type"),
    "idx_date": ("low", "high"),
    "idx_string": ("norm",),
    "idx_quantity": ("value",),
    "idx_uri": ("value",),
}


# PostgreSQL extended statistics: table -> the lookup columns searches name together
LOOKUP_STATISTICS = {
    "idx_reference": ("rtype", "param", "target_id", "target_type"),
    "idx_token": ("rtype", "param", "code", "system"),
}


def upgrade() -> None:
    for table, columns in PROBE_COLUMNS.items():
        op.create_index(f"ix_{table}_res_pk_param_{'_'.join(columns)}", table, ["res_pk", "param", *columns])
        op.drop_index(f"ix_{table}_res_pk_param", table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in LOOKUP_STATISTICS.items():
            op.execute(f"CREATE STATISTICS st_{table}_lookup (mcv, dependencies) ON {', '.join(columns)} FROM {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in LOOKUP_STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS st_{table}_lookup")
    for table, columns in PROBE_COLUMNS.items():
        op.create_index(f"ix_{table}_res_pk_param", table, ["res_pk", "param"])
        op.drop_index(f"ix_{table}_res_pk_param_{'_'.join(columns)}", table_name=table)
