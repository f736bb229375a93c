"""People who use the review service, their API tokens, failed sign-ins, and the service's change log.

- ``users``: a name, a role (viewer, assessor, approver, admin), an argon2 password hash, active or disabled.
  Users are never deleted (the audit trails name them); a disabled user can no longer sign in or use a token.
- ``api_tokens``: the sha256 of each API token (the token itself is shown once and never stored).
- ``login_failures``: consecutive failed sign-ins per name (known or not), to slow down password guessing.
- ``audit_log``: append-only. Every change made through the review service, the API or the CLI's user commands:
  who (the user, or the system), how (``web``, ``api``, ``cli``), what (entity, id, action), the state before and
  after, and the reason. Refused UPDATE and DELETE like the signal audit trail: by mapper events, a session hook
  on bulk statements, and triggers (migration 0013_users).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pv.models.append_only import append_only
from pv.models.base import Base
from pv.models.casestore import utcnow

#: Append-only tables of this module and of :mod:`pv.models.review`.
APPEND_ONLY_TABLES = ("audit_log", "signal_comments")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | assessor | approver | admin
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # raised by signing out: every session cookie issued before is refused
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """An API token of a user: its sha256 only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters, to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """Consecutive failed sign-ins for one name (case-folded), reset by a successful one."""

    __tablename__ = "login_failures"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditLog(Base):
    """Append-only: one change made through the service, with who, how, when, before, after and why."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    by: Mapped[str] = mapped_column(String(100))  # the user's name (or the system's) at the time
    via: Mapped[str] = mapped_column(String(8))  # web | api | cli
    entity: Mapped[str] = mapped_column(String(32))  # signal | user
    entity_id: Mapped[int] = mapped_column(Integer)
    # transition, comment, assignment, user_added, user_disabled, token_created
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)


append_only(AuditLog)


__all__ = ["APPEND_ONLY_TABLES", "ApiToken", "AuditLog", "LoginFailure", "User"]
