"""runs that recover: runs.owner and runs.lease_expires_at

Revision ID: 0012_run_lease
Revises: 0011_delivery_replacement
Create Date: 2026-11-30 07:55:00

A run records the process that last claimed one of its stages and until when that claim holds; a queued or
running run whose owner is gone or whose lease expired is recomputed by the next request (pv.analysis.runs).
Runs stored before this revision have neither: they are never taken for abandoned (an operator can retry one
with `pv runs retry`).
"""

from alembic import op
import sqlalchemy as sa


revision = '0012_run_lease'
down_revision = '0011_delivery_replacement'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        table.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("lease_expires_at")
        table.drop_column("owner")
