"""What the people reviewing a signal add to it: comments and the assignment.

- ``signal_comments``: append-only (a comment is never edited or deleted; refused like the audit trails).
- ``signal_assignments``: at most one per signal, the current assignee and due date; every change to it is in
  ``audit_log`` with the assignment before and after.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pv.models.append_only import append_only
from pv.models.base import Base
from pv.models.casestore import utcnow


class SignalComment(Base):
    __tablename__ = "signal_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    by: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    body: Mapped[str] = mapped_column(Text)


class SignalAssignment(Base):
    __tablename__ = "signal_assignments"

    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), primary_key=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    due: Mapped[dt.date | None] = mapped_column(Date)
    assigned_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


append_only(SignalComment)

__all__ = ["SignalAssignment", "SignalComment"]
