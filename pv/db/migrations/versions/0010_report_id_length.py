"""case_versions.report_id holds 120 characters: an E2B(R3) C.1.1 of up to 100 with "#" and C.1.2, whole

Revision ID: 0010_report_id_length
Revises: 0006_version_precedence
Create Date: 2026-11-30 07:40:00

Identifiers were cut to 100 characters on the version but not on its drugs and reactions, so a long one lost them,
and a second report sharing the first characters was dropped. From this revision on an identifier is stored whole
or the report is quarantined (pv.ingest.batch.MAX_CASE_KEY, MAX_REPORT_ID). Widening a VARCHAR is a change of
the catalogue only on PostgreSQL; SQLite rebuilds the table (it does not enforce the length, but the declared
type is kept true).
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_report_id_length'
down_revision = '0006_version_precedence'
branch_labels = None
depends_on = None


def _set_length(length: int, before: int) -> None:
    with op.batch_alter_table("case_versions") as table:  # ALTER on PostgreSQL; a table copy on SQLite
        table.alter_column("report_id", type_=sa.String(length), existing_type=sa.String(before),
                           existing_nullable=False)


def upgrade() -> None:
    _set_length(120, 100)


def downgrade() -> None:
    _set_length(100, 120)
