"""Decisions on signals by authenticated people: lifecycle transitions, comments and assignments, with the
rights of each role and the four-eyes rule.

Each change is recorded twice: in the signal's own trail (``signal_audit``: the transition through
:func:`pv.signals.commands.transition_signal`, a comment as ``commented``, an assignment as ``assigned``), which
every reader of the registry shows, and in the service's change log (``audit_log``) with the user, the channel
(web, api, cli) and the state before and after. The caller commits.

Order of the checks, which the HTTP API maps to status codes: the signal exists (404); the user's role may act
at all (403); the request is well formed (422); the lifecycle allows the transition (409, naming the allowed
ones); the role may make this transition and the four-eyes rule holds (403).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.accounts import roles
from pv.accounts.audit import change_as_dict, changes_of, record_change
from pv.errors import InputError, PermissionDeniedError
from pv.models.review import SignalAssignment, SignalComment
from pv.models.signals import Signal, SignalAudit
from pv.models.users import User
from pv.signals import commands, lifecycle
from pv.signals.queries import get_signal, signal_detail

MAX_TEXT = 10_000


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.active:
        raise PermissionDeniedError(f"user {actor.name!r} is disabled")
    if not roles.can(actor.role, permission):
        raise PermissionDeniedError(f"user {actor.name!r} ({actor.role}) may not {what}")


def _text(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InputError(f"a {field} is required", field=field)
    if len(text) > MAX_TEXT:
        raise InputError(f"a {field} has at most {MAX_TEXT} characters", field=field)
    return text


def assessed_by(session: Session, signal_id: int) -> str | None:
    """Who made the signal's latest move to ``assessed`` (None if it was never assessed)."""
    return session.scalars(
        select(SignalAudit.by).where(SignalAudit.signal_id == signal_id, SignalAudit.action == "transition",
                                     SignalAudit.to_status == "assessed").order_by(SignalAudit.id.desc())
    ).first()


def allowed_transitions(session: Session, signal: Signal, actor: User) -> list[str]:
    """The transitions the lifecycle allows from the signal's status that ``actor`` may make."""
    out = []
    for target in lifecycle.allowed_targets(signal.status):
        needed = roles.permission_for_target(target)
        if not actor.active or not roles.can(actor.role, needed):
            continue
        if needed == roles.DECIDE and assessed_by(session, signal.id) == actor.name:
            continue
        out.append(target)
    return out


def transition(session: Session, signal_id: int, target: str, reason: str, *, actor: User, via: str) -> Signal:
    """Move the signal to ``target`` on behalf of ``actor`` (see the module docstring for the checks)."""
    signal = get_signal(session, signal_id)
    if not actor.active or not roles.may_transition(actor.role):
        raise PermissionDeniedError(f"user {actor.name!r} ({actor.role}) may not move signals through the "
                                    "lifecycle")
    reason = _text(reason, "reason")
    if target not in lifecycle.STATES:
        raise InputError(f"unknown status {target!r}; statuses are: {', '.join(lifecycle.STATES)}", field="to")
    lifecycle.check_transition(signal.id, signal.status, target)
    needed = roles.permission_for_target(target)
    if not roles.can(actor.role, needed):
        raise PermissionDeniedError(f"moving a signal to {target!r} decides what follows its assessment: an "
                                    f"approver's decision, not a {actor.role}'s")
    if needed == roles.DECIDE and assessed_by(session, signal.id) == actor.name:
        raise PermissionDeniedError(f"four eyes: {actor.name!r} assessed signal {signal.id} and may not decide "
                                    "on it; another approver must")
    before = {"status": signal.status}
    commands.transition_signal(session, signal.id, target, by=actor.name, reason=reason)
    record_change(session, actor=actor, via=via, entity="signal", entity_id=signal.id, action="transition",
                  before=before, after={"status": signal.status}, reason=reason)
    return signal


def add_comment(session: Session, signal_id: int, body: str, *, actor: User, via: str) -> SignalComment:
    """A comment on the signal by ``actor`` (no status change)."""
    signal = get_signal(session, signal_id)
    _require(actor, roles.COMMENT, "comment on signals")
    body = _text(body, "comment")
    comment = SignalComment(signal_id=signal.id, user_id=actor.id, by=actor.name, body=body)
    session.add(comment)
    session.flush()
    lifecycle.record(session, signal, action="commented", by=actor.name, reason=body)
    record_change(session, actor=actor, via=via, entity="signal", entity_id=signal.id, action="comment",
                  before=None, after={"comment_id": comment.id, "body": body}, reason=body)
    return comment


def assignment_as_dict(a: SignalAssignment | None, users: dict[int, str]) -> dict[str, Any] | None:
    if a is None or (a.assignee_id is None and a.due is None):
        return None
    return {"user": users.get(a.assignee_id) if a.assignee_id is not None else None,
            "due": a.due.isoformat() if a.due else None,
            "assigned_by": users.get(a.assigned_by_id), "assigned_at": a.assigned_at.isoformat()}


def _user_names(session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {i: n for i, n in session.execute(select(User.id, User.name).where(User.id.in_(wanted)))}


def assign(session: Session, signal_id: int, assignee: str | None, due: dt.date | None, *, actor: User, via: str,
           reason: str = "") -> dict[str, Any] | None:
    """Assign the signal to the active user ``assignee`` (who must be able to assess it), with a due date; None
    and None clear the assignment. Returns the assignment as :func:`assignment_as_dict`."""
    signal = get_signal(session, signal_id)
    _require(actor, roles.ASSIGN, "assign signals")
    target: User | None = None
    if assignee is not None:
        target = session.scalars(select(User).where(User.name == assignee)).first()
        if target is None or not target.active:
            raise InputError(f"no active user named {assignee!r}", field="user")
        if target.role not in roles.ASSIGNABLE_ROLES:
            raise InputError(f"user {assignee!r} ({target.role}) cannot work on signals: assign an assessor or "
                             "an approver", field="user")
    current = session.get(SignalAssignment, signal.id)
    names = _user_names(session, [current.assignee_id, current.assigned_by_id] if current else [])
    before = assignment_as_dict(current, names)
    if current is None:
        current = SignalAssignment(signal_id=signal.id, assigned_by_id=actor.id)
        session.add(current)
    current.assignee_id = target.id if target is not None else None
    current.due = due
    current.assigned_by_id = actor.id
    current.assigned_at = dt.datetime.now(dt.UTC)
    session.flush()
    after = assignment_as_dict(current, {**names, actor.id: actor.name, **({target.id: target.name} if target
                                                                           else {})})
    what = (f"assigned to {target.name}" if target else "unassigned") + (f", due {due.isoformat()}" if due else "")
    why = f"{what}: {reason.strip()}" if reason and reason.strip() else what
    lifecycle.record(session, signal, action="assigned", by=actor.name, reason=why)
    record_change(session, actor=actor, via=via, entity="signal", entity_id=signal.id, action="assignment",
                  before=before, after=after, reason=why)
    return after


def comments_of(session: Session, signal_id: int) -> list[dict[str, Any]]:
    return [{"id": c.id, "at": c.at.isoformat(), "by": c.by, "body": c.body} for c in session.scalars(
        select(SignalComment).where(SignalComment.signal_id == signal_id).order_by(SignalComment.id))]


def assignments_of(session: Session, signal_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The current assignments of these signals (signals without one are left out)."""
    if not signal_ids:
        return {}
    rows = list(session.scalars(select(SignalAssignment).where(SignalAssignment.signal_id.in_(list(signal_ids)))))
    names = _user_names(session, [i for a in rows for i in (a.assignee_id, a.assigned_by_id)])
    out = {}
    for a in rows:
        d = assignment_as_dict(a, names)
        if d is not None:
            out[a.signal_id] = d
    return out


def validation_due(signal: Signal, days: int, today: dt.date | None = None) -> dict[str, Any]:
    """GVP IX: a new signal is due to be validated (or refuted) ``days`` after its detection; overdue after."""
    today = today or dt.date.today()
    due = signal.first_detected + dt.timedelta(days=days)
    pending = signal.status == "new"
    return {"due": due.isoformat(), "pending": pending, "overdue": pending and today > due}


def review_detail(session: Session, signal_id: int, *, due_days: int, actor: User | None = None,
                  today: dt.date | None = None) -> dict[str, Any]:
    """Everything about one signal for its reviewers: :func:`pv.signals.queries.signal_detail` (measures,
    trend, labels, evidence, audit trail), the comments, the assignment, the validation due date, the service's
    change log of the signal, and, given ``actor``, the transitions that user may make now."""
    out = signal_detail(session, signal_id)
    signal = get_signal(session, signal_id)
    out["comments"] = comments_of(session, signal_id)
    out["assignment"] = assignments_of(session, [signal_id]).get(signal_id)
    out["validation"] = validation_due(signal, due_days, today)
    out["changes"] = [change_as_dict(c) for c in changes_of(session, "signal", signal_id)]
    if actor is not None:
        out["your_transitions"] = allowed_transitions(session, signal, actor)
    return out
