"""case version precedence: the rank of each version among the versions of its case

Revision ID: 0006_version_precedence
Revises: 0005_alerts
Create Date: 2026-12-03 10:12:44.118020

``case_versions.precedence`` is filled for the versions already stored, case by case in chunks, by the rule
the ingest applies from this revision on (:func:`pv.ingest.store.version_precedence`): highest version, then
later received_date (missing lowest), then numerically higher report_id, then textually higher. A migration
keeps its own copy of the rule, as it stood at this revision, so that it never changes with later code.
"""

from alembic import op
import numpy as np
import pandas as pd
import sqlalchemy as sa


revision = '0006_version_precedence'
down_revision = '0005_alerts'
branch_labels = None
depends_on = None

CHUNK = 200_000  # versions read per step of the backfill
_COLUMNS = ["case_key", "id", "report_id", "version", "received_date"]
_SELECT = "SELECT case_key, id, report_id, version, received_date FROM case_versions"


def _precedence(versions: pd.DataFrame) -> pd.Series:
    """The rank of each version among the versions of its case (0 = lowest), by the rule above."""
    n = len(versions)
    case_codes = pd.factorize(versions["case_key"].astype(str))[0]
    received = pd.to_datetime(versions["received_date"], errors="coerce").to_numpy(dtype="datetime64[ns]")
    report_num = pd.to_numeric(versions["report_id"], errors="coerce").to_numpy(dtype=float)
    report_num = np.where(np.isnan(report_num), -np.inf, report_num)
    report_txt = pd.factorize(versions["report_id"].astype(str), sort=True)[0]
    version = versions["version"].to_numpy(dtype="int64")
    order = np.lexsort((report_txt, report_num, received.astype("int64"), version, case_codes))
    grouped = case_codes[order]
    first = np.r_[True, grouped[1:] != grouped[:-1]]
    position = np.arange(n)
    ranks = np.empty(n, dtype="int64")
    ranks[order] = position - np.maximum.accumulate(np.where(first, position, 0))
    return pd.Series(ranks, index=versions.index)


def backfill(conn: sa.Connection, chunk: int = CHUNK) -> int:
    """Set the precedence of every stored version (all 0 before); returns the number of versions updated.

    Cases are read in ``case_key`` order, ``chunk`` versions at a time; the last case of a full chunk may
    go on in the next one, so it is left for the next step (unless it fills the chunk alone).
    """
    update = sa.text("UPDATE case_versions SET precedence = :precedence WHERE id = :id")
    after: str | None = None
    updated = 0
    while True:
        if after is None:
            rows = conn.execute(sa.text(f"{_SELECT} ORDER BY case_key LIMIT :n"), {"n": chunk}).all()
        else:
            rows = conn.execute(sa.text(f"{_SELECT} WHERE case_key > :after ORDER BY case_key LIMIT :n"),
                                {"after": after, "n": chunk}).all()
        if not rows:
            return updated
        frame = pd.DataFrame(rows, columns=_COLUMNS)
        if len(frame) == chunk:
            last = frame["case_key"].iloc[-1]
            if (frame["case_key"] == last).all():
                rows = conn.execute(sa.text(f"{_SELECT} WHERE case_key = :key"), {"key": last}).all()
                frame = pd.DataFrame(rows, columns=_COLUMNS)
            else:
                frame = frame[frame["case_key"] != last]
        precedence = _precedence(frame)
        moved = precedence[precedence > 0]
        if len(moved):
            ids = frame.loc[moved.index, "id"]
            conn.execute(update, [{"id": int(i), "precedence": int(p)}
                                  for i, p in zip(ids, moved, strict=True)])
            updated += len(moved)
        after = str(frame["case_key"].iloc[-1])


def upgrade() -> None:
    with op.batch_alter_table('case_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('precedence', sa.Integer(), server_default='0', nullable=False))
    backfill(op.get_bind())
    with op.batch_alter_table('case_versions', schema=None) as batch_op:
        batch_op.create_index('ix_case_versions_case_precedence', ['case_key', 'precedence'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_case_versions_case_precedence')
        batch_op.drop_column('precedence')
