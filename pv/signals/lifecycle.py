"""The GVP Module IX signal lifecycle: states, the allowed transitions, and recording them in the audit trail.

::

    tracked ──> new (opened by the registry)     tracked ──> validated | refuted (a person)
    new ──> validated ──> prioritised ──> assessed ──> action_recommended ──> monitoring ──> closed
     │          │                            │   │            │                   │
     └> refuted <┘                            │   └──────> monitoring             └> validated (reopened)
                                              └──────────> closed                       closed
    refuted ──> validated (reconsidered)

A finding first meeting the detection rules is ``tracked`` (not open); the registry opens it (``tracked`` ->
``new``, audit action ``opened``) when the opening rule holds, and a person may validate or refute a tracked
finding. Manual transitions (``pv signal transition``) follow :data:`TRANSITIONS`. The feedback loop
(``by='pv'``) may also make the :data:`AUTOMATIC_TRANSITIONS`: opening a tracked finding; when a label change
covers the event, any open state moves to ``monitoring``; a monitored signal that strengthens reopens to
``validated``. Every change, manual or
automatic, adds a row to ``signal_audit`` with who, when and why.

The states and the transition rules are defined in :mod:`pv.signals.states` (no database) and exported here too;
this module records the transitions.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from pv.errors import InputError
from pv.models.signals import Signal, SignalAudit
from pv.signals.states import (
    AUTOMATIC_TRANSITIONS,
    OPEN_STATES,
    STATES,
    SYSTEM_USER,
    TRANSITIONS,
    allowed_targets,
    check_transition,
)

__all__ = ["AUTOMATIC_TRANSITIONS", "OPEN_STATES", "STATES", "SYSTEM_USER", "TRANSITIONS", "allowed_targets",
           "check_transition", "record", "transition"]


def record(
    session: Session,
    signal: Signal,
    *,
    action: str,
    by: str,
    reason: str,
    to_status: str | None = None,
    run_id: int | None = None,
    as_of: dt.date | None = None,
) -> SignalAudit:
    """Append an audit row (no status check: callers check first)."""
    row = SignalAudit(
        signal_id=signal.id,
        by=by,
        action=action,
        from_status=signal.status if action != "created" else None,
        to_status=to_status or signal.status,
        reason=reason,
        run_id=run_id,
        as_of=as_of,
    )
    session.add(row)
    return row


def transition(
    session: Session,
    signal: Signal,
    target: str,
    *,
    by: str,
    reason: str,
    automatic: bool = False,
    run_id: int | None = None,
    as_of: dt.date | None = None,
    action: str = "transition",
) -> SignalAudit:
    """Move ``signal`` to ``target`` if the lifecycle allows it, recording who, when and why (audit ``action``:
    ``transition``, or ``opened`` when the registry opens a tracked finding).

    Entering ``monitoring`` records the date (the registry also sets the baseline used for reopening). The
    caller commits.
    """
    if not by or not by.strip():
        raise InputError("a transition needs who made it", field="by")
    if not reason or not reason.strip():
        raise InputError("a transition needs a reason", field="reason")
    check_transition(signal.id, signal.status, target, automatic=automatic)
    audit = record(
        session, signal, action=action, by=by.strip(), reason=reason.strip(), to_status=target,
        run_id=run_id, as_of=as_of,
    )
    if target == "monitoring":
        signal.monitoring_since = as_of or dt.date.today()
    signal.status = target
    return audit
