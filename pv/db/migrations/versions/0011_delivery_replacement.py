"""redelivery of a quarter: source_files.replaced_by_id and the delivery_replacements audit

Revision ID: 0011_delivery_replacement
Revises: 0010_report_id_length
Create Date: 2026-11-30 07:45:00

A corrected redelivery of a FAERS/AERS quarter (another file of the same kind and quarter) replaces what the
earlier file loaded (pv.ingest.store); the earlier file is marked replaced and the change is audited.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011_delivery_replacement'
down_revision = '0010_report_id_length'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_files") as table:
        table.add_column(sa.Column("replaced_by_id", sa.Integer(), nullable=True))
    op.create_table(
        "delivery_replacements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("replaced_file_id", sa.Integer(), nullable=False),
        sa.Column("by_file_id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["by_file_id"], ["source_files.id"]),
        sa.ForeignKeyConstraint(["replaced_file_id"], ["source_files.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_replacements_by_file_id", "delivery_replacements", ["by_file_id"])
    op.create_index("ix_delivery_replacements_replaced_file_id", "delivery_replacements", ["replaced_file_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_replacements_replaced_file_id", table_name="delivery_replacements")
    op.drop_index("ix_delivery_replacements_by_file_id", table_name="delivery_replacements")
    op.drop_table("delivery_replacements")
    with op.batch_alter_table("source_files") as table:
        table.drop_column("replaced_by_id")
