"""Reading the signal registry: lists, one signal in full, the rules a run was evaluated with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.errors import InputError, NotFoundError
from pv.models.signals import Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.signals import lifecycle
from pv.signals.labels import canonical_product
from pv.signals.rules import MEASURES
from pv.stats.numbers import json_float

#: The measures a signal list shows.
LIST_MEASURES = ("n", "prr", "prr_chi2", "ror_lower", "ic025", "eb05")


def get_signal(session: Session, signal_id: int) -> Signal:
    signal = session.get(Signal, signal_id)
    if signal is None:
        raise NotFoundError(f"signal {signal_id} does not exist")
    return signal


def list_signals(session: Session, *, status: str | None = None, product: str | None = None,
                 flagged: bool | None = None, open_only: bool = False) -> list[Signal]:
    """Signals ordered by priority (highest first), then id. ``open_only``: not refuted or closed."""
    stmt = select(Signal)
    if open_only:
        stmt = stmt.where(Signal.status.in_(sorted(lifecycle.OPEN_STATES)))
    if status:
        if status not in lifecycle.STATES:
            raise InputError(f"unknown status {status!r}; statuses are: {', '.join(lifecycle.STATES)}",
                             field="status")
        stmt = stmt.where(Signal.status == status)
    if product:
        stmt = stmt.where(Signal.product == canonical_product(product))
    if flagged is not None:
        stmt = stmt.where(Signal.label_update_recommended.is_(flagged))
    return list(session.scalars(stmt.order_by(Signal.priority.desc(), Signal.id)))


def rules_for_run(session: Session, run_id: int) -> dict[str, Any]:
    """The detection rules a run was evaluated with (the snapshot stored by :func:`evaluate_run`)."""
    snap = session.scalars(select(SignalRuleSnapshot).where(SignalRuleSnapshot.run_id == run_id)).first()
    if snap is None:
        raise NotFoundError(f"run {run_id} has not been evaluated by the signal registry")
    return dict(snap.rules)


def flagged_products(session: Session) -> dict[str, list[Signal]]:
    """Products with at least one signal flagged "label update recommended", with those signals."""
    out: dict[str, list[Signal]] = defaultdict(list)
    for s in list_signals(session, flagged=True):
        out[s.product].append(s)
    return dict(out)


def latest_measures(session: Session, signal_ids: Sequence[int]) -> dict[int, SignalMeasure]:
    out: dict[int, SignalMeasure] = {}
    if not signal_ids:
        return out
    for m in session.scalars(
        select(SignalMeasure).where(SignalMeasure.signal_id.in_(list(signal_ids)))
        .order_by(SignalMeasure.as_of, SignalMeasure.run_id)
    ):
        out[m.signal_id] = m
    return out


def signal_as_dict(signal: Signal, measure: SignalMeasure | None) -> dict[str, Any]:
    return {
        "id": signal.id,
        "product": signal.product,
        "event": signal.event,
        "level": signal.level,
        "status": signal.status,
        "first_detected": signal.first_detected.isoformat(),
        "first_run": signal.first_run_id,
        "last_run": signal.last_run_id,
        "last_as_of": signal.last_as_of.isoformat(),
        "measures": {k: (json_float(getattr(measure, k)) if measure is not None else None) for k in LIST_MEASURES},
        "labelled": dict(signal.labelled or {}),
        "label_update_recommended": bool(signal.label_update_recommended),
        "label_update_since": signal.label_update_since.isoformat() if signal.label_update_since else None,
        "label_update_jurisdictions": list(signal.label_update_jurisdictions or []),
        "escalated": bool(signal.escalated),
        "priority": float(signal.priority or 0.0),
        "strength": float(signal.strength or 0.0),
    }


def signal_detail(session: Session, signal_id: int) -> dict[str, Any]:
    """Everything about one signal: summary, trend of measures, audit trail, evidence."""
    signal = get_signal(session, signal_id)
    measures = list(session.scalars(
        select(SignalMeasure).where(SignalMeasure.signal_id == signal.id)
        .order_by(SignalMeasure.as_of, SignalMeasure.run_id)
    ))
    audit = list(session.scalars(select(SignalAudit).where(SignalAudit.signal_id == signal.id)
                                 .order_by(SignalAudit.id)))
    out = signal_as_dict(signal, measures[-1] if measures else None)
    out.update({
        "consecutive_unlabelled": signal.consecutive_unlabelled,
        "monitoring_since": signal.monitoring_since.isoformat() if signal.monitoring_since else None,
        "monitoring_baseline": signal.monitoring_baseline,
        "reopened_count": signal.reopened_count,
        "allowed_transitions": list(lifecycle.allowed_targets(signal.status)),
        "evidence": signal.evidence,
        "trend": [
            {"run_id": m.run_id, "as_of": m.as_of.isoformat(), "meets_rules": m.meets_rules,
             "criteria_met": m.criteria_met, "labelled": m.labelled, "priority": m.priority,
             **{k: json_float(getattr(m, k)) for k in MEASURES}}
            for m in measures
        ],
        "audit": [
            {"at": a.at.isoformat(), "by": a.by, "action": a.action, "from": a.from_status, "to": a.to_status,
             "reason": a.reason, "run_id": a.run_id, "as_of": a.as_of.isoformat() if a.as_of else None}
            for a in audit
        ],
    })
    return out
