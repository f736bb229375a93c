"""The service's append-only change log (``audit_log``): who, how, when, what, the state before and after, and why.

Every change made through the review service (pages, API) or the command line's user commands adds one row; rows
are never changed or deleted (see :mod:`pv.models.users`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.errors import InputError
from pv.models.users import AuditLog, User

VIA = ("web", "api", "cli")
#: The name recorded for changes made by no user (bootstrapping the first administrator).
SYSTEM = "pv"


def record_change(
    session: Session,
    *,
    actor: User | None,
    via: str,
    entity: str,
    entity_id: int,
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str,
) -> AuditLog:
    """Append one change (``actor`` None: made by the system). The caller commits."""
    if via not in VIA:
        raise InputError(f"unknown channel {via!r}; expected one of {', '.join(VIA)}", field="via")
    row = AuditLog(
        user_id=actor.id if actor is not None else None,
        by=actor.name if actor is not None else SYSTEM,
        via=via,
        entity=entity,
        entity_id=entity_id,
        action=action,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        reason=reason,
    )
    session.add(row)
    session.flush()
    return row


def changes_of(session: Session, entity: str, entity_id: int) -> list[AuditLog]:
    """The changes recorded on one entity, oldest first."""
    return list(session.scalars(
        select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == entity_id).order_by(AuditLog.id)))


def change_as_dict(row: AuditLog) -> dict[str, Any]:
    return {"at": row.at.isoformat(), "by": row.by, "user_id": row.user_id, "via": row.via, "entity": row.entity,
            "entity_id": row.entity_id, "action": row.action, "before": row.before, "after": row.after,
            "reason": row.reason}
