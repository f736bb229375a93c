"""The alert outbox: one row per (run, recipient) -- the recipient's digest of the run --, rendered once, sent at
most once.

The unique constraint on (change_key, recipient) makes queuing idempotent: ``change_key`` is ``digest:<run_id>``,
so queuing a run's changes again (a re-run of the cycle, a redelivered task) adds nothing. A digest row's
``signal_id``, ``product``, ``event`` and ``level`` are those of its most urgent signal; ``payload`` holds every
finding and signal of it. (Rows queued before the digests hold one change each: ``change_key`` is
``kind:signal_id:run_id``; they are sent as they are.) A row moves pending -> sent, or pending -> failed after a
permanent error or too many retryable ones; the last error and the number of attempts stay on the row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pv.models.base import Base
from pv.models.casestore import utcnow

OUTBOX_STATUSES = ("pending", "sent", "failed")


class AlertOutbox(Base):
    """One alert email to one recipient: the digest of one run (or, before the digests, one signal change)."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("change_key", "recipient"),
        UniqueConstraint("message_id"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_alert_outbox_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_key: Mapped[str] = mapped_column(String(200))  # digest:<run_id> (before: kind:signal_id:run_id)
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(32))  # digest (before: the change kind)
    signal_id: Mapped[int] = mapped_column(Integer, index=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    product: Mapped[str] = mapped_column(String(300))
    event: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the digest as queued: findings, signals, figures
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(String(1000))  # the report's review URL or file name
    message_id: Mapped[str] = mapped_column(String(300))  # fixed at queue time: retries reuse it
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    transport: Mapped[str | None] = mapped_column(String(16))  # smtp / eml: how it was (last) sent
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
