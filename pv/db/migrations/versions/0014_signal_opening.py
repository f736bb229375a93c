"""signal opening rule and evidence-following flags: the feedback loop's counters on each signal

Revision ID: 0014_signal_opening
Revises: 0013_users
Create Date: 2026-11-30 07:30:00.000000

Findings are now tracked (status ``tracked``) until the opening rule opens them (docs/signals.md). Existing
signals keep their status (they were opened when created); ``opened_as_of`` stays empty for them, their run
counters start at 0, and ``cases_checked`` (the case count at the feedback loop's last decision, which an
escalation must exceed) is filled with the case count of each signal's last measure, so that unchanged counts
do not escalate after the upgrade either.
"""

from alembic import op
import sqlalchemy as sa


revision = '0014_signal_opening'
down_revision = '0013_users'
branch_labels = None
depends_on = None

_BACKFILL = """
UPDATE signals SET cases_checked = (
    SELECT m.n FROM signal_measures m WHERE m.signal_id = signals.id
    ORDER BY m.as_of DESC, m.run_id DESC LIMIT 1
)
"""


def upgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opened_as_of', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('consecutive_met', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('consecutive_not_met', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('tracked_baseline', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('cases_checked', sa.Float(), nullable=True))
    op.execute(sa.text(_BACKFILL))


def downgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_column('cases_checked')
        batch_op.drop_column('tracked_baseline')
        batch_op.drop_column('consecutive_not_met')
        batch_op.drop_column('consecutive_met')
        batch_op.drop_column('opened_as_of')
