"""Reading the signal registry: the action queue and filtered lists, one signal in full, the rules a run was
evaluated with, the changes a run's evaluation recorded."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from pv.errors import InputError, NotFoundError
from pv.models.signals import Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.normalise import EventGroups, default_event_groups, normalise_pt
from pv.signals import lifecycle
from pv.signals.findings import group_findings
from pv.signals.labels import canonical_product
from pv.signals.rules import JURISDICTIONS, MEASURES
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


#: Why an open signal needs a decision (:func:`queue_reasons`), in the order they are listed.
QUEUE_REASONS = ("new", "escalated", "label_update_recommended", "reopened")


@dataclass(frozen=True)
class SignalFilter:
    """What a signal list asks for (``pv signals``): every criterion given must hold.

    By default the list is the action queue (the open signals that need a decision, :func:`queue_reasons`).
    ``all_findings`` lists every tracked signal whatever its status or label; so does a ``status``, which is
    listed whether or not the queue holds signals in it (it holds open ones only).
    """

    all_findings: bool = False
    status: str | None = None
    #: any spelling of the product dictionary (brand, INN, code)
    product: str | None = None
    #: flagged "label update recommended" (True) or not (False)
    flagged: bool | None = None
    #: unlabelled in at least one jurisdiction where the product is judged
    unlabelled: bool = False
    #: unlabelled in this jurisdiction (FDA, NMPA, EMA)
    jurisdiction: str | None = None
    #: an audit entry on or after this date (UTC)
    changed_since: dt.date | None = None
    #: a PT or an event group name, case-insensitive
    event: str | None = None
    #: an event group: its own signals, those of the groups within it and the signals on its PTs
    group: str | None = None
    #: thresholds on the measures of the signal's last run, and on its priority
    min_eb05: float | None = None
    min_n: float | None = None
    min_priority: float | None = None


@dataclass(frozen=True)
class ListedSignal:
    """A listed signal: its measures in the last run that measured it, and why it needs a decision (empty when
    it is not in the action queue)."""

    signal: Signal
    measure: SignalMeasure | None
    needs_decision: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**signal_as_dict(self.signal, self.measure), "needs_decision": list(self.needs_decision)}


def is_known_risk(labelled: Mapping[str, bool]) -> bool:
    """Labelled in every jurisdiction where the product is judged (and judged in one at least)."""
    return bool(labelled) and all(labelled.values())


def queue_reasons(signal: Signal, *, reopened: bool) -> tuple[str, ...]:
    """Why an open signal needs a decision (:data:`QUEUE_REASONS`); tracked findings (not opened), refuted and
    closed signals need none. A withdrawn flag is information for the report, not a decision.

    - ``new``: opened and not yet validated or refuted. A signal opened by the opening rule (``opened_as_of``
      set) is always a decision to make, even on a labelled event (it opened because it strengthened markedly);
      one created open before the opening rule existed is not when its event is labelled wherever the product
      is judged (a known risk: still measured every run, and reopened when it strengthens);
    - ``escalated``: escalated by the feedback loop and not in monitoring;
    - ``label_update_recommended``: flagged for a label update;
    - ``reopened``: moved back from monitoring to validated (``reopened`` says the last status change of the
      signal was that one) and not moved on since.
    """
    if signal.status not in lifecycle.OPEN_STATES:
        return ()
    reasons = {
        "new": signal.status == "new" and (signal.opened_as_of is not None
                                           or not is_known_risk(signal.labelled or {})),
        "escalated": bool(signal.escalated) and signal.status != "monitoring",
        "label_update_recommended": bool(signal.label_update_recommended),
        "reopened": reopened and signal.status == "validated",
    }
    return tuple(r for r in QUEUE_REASONS if reasons[r])


def find_signals(session: Session, filters: SignalFilter | None = None, *,
                 groups: EventGroups | None = None) -> list[ListedSignal]:
    """The signals ``filters`` asks for (the action queue by default), highest priority first, then by id."""
    f = filters or SignalFilter()
    groups = groups or default_event_groups()
    queue_only = not f.all_findings and f.status is None
    stmt = select(Signal, SignalMeasure).outerjoin(
        SignalMeasure, and_(SignalMeasure.signal_id == Signal.id, SignalMeasure.run_id == Signal.last_run_id))
    if queue_only:  # a first cut in SQL; queue_reasons decides
        stmt = stmt.where(Signal.status.in_(sorted(lifecycle.OPEN_STATES)), or_(
            Signal.status.in_(("new", "validated")), Signal.escalated.is_(True),
            Signal.label_update_recommended.is_(True)))
    if f.status:
        stmt = stmt.where(Signal.status == _status(f.status))
    if f.product:
        stmt = stmt.where(Signal.product == canonical_product(f.product))
    if f.flagged is not None:
        stmt = stmt.where(Signal.label_update_recommended.is_(f.flagged))
    if f.event is not None:
        stmt = stmt.where(Signal.event.in_(sorted(_event_keys(f.event, groups))))
    if f.group is not None:
        stmt = stmt.where(_in_group(f.group, groups))
    if f.changed_since is not None:
        since = dt.datetime.combine(f.changed_since, dt.time.min, tzinfo=dt.UTC)
        stmt = stmt.where(exists().where(SignalAudit.signal_id == Signal.id, SignalAudit.at >= since))
    if f.min_priority is not None:
        stmt = stmt.where(Signal.priority >= f.min_priority)
    if f.min_eb05 is not None:
        stmt = stmt.where(SignalMeasure.eb05 >= f.min_eb05)
    if f.min_n is not None:
        stmt = stmt.where(SignalMeasure.n >= f.min_n)
    jurisdiction = _jurisdiction(f.jurisdiction) if f.jurisdiction is not None else None
    rows: list[tuple[Signal, SignalMeasure | None]] = [
        (s, m) for s, m in session.execute(stmt.order_by(Signal.priority.desc(), Signal.id))
        if (not f.unlabelled or not all((s.labelled or {}).values()))
        and (jurisdiction is None or (s.labelled or {}).get(jurisdiction) is False)
    ]
    reopened = reopened_signals(session, [s.id for s, _ in rows if s.status == "validated"])
    found = [ListedSignal(s, m, queue_reasons(s, reopened=s.id in reopened)) for s, m in rows]
    return [x for x in found if x.needs_decision] if queue_only else found


def reopened_signals(session: Session, signal_ids: Sequence[int]) -> set[int]:
    """Those of ``signal_ids`` whose last status change moved them from monitoring back to validated."""
    if not signal_ids:
        return set()
    last = (select(SignalAudit.signal_id, func.max(SignalAudit.id).label("id"))
            .where(SignalAudit.action == "transition", SignalAudit.signal_id.in_(list(signal_ids)))
            .group_by(SignalAudit.signal_id).subquery())
    return set(session.scalars(
        select(SignalAudit.signal_id).join(last, SignalAudit.id == last.c.id)
        .where(SignalAudit.from_status == "monitoring", SignalAudit.to_status == "validated")))


def _status(value: str) -> str:
    if value not in lifecycle.STATES:
        raise InputError(f"unknown status {value!r}; statuses are: {', '.join(lifecycle.STATES)}",
                         field="status")
    return value


def _jurisdiction(value: str) -> str:
    code = value.strip().upper()
    if code not in JURISDICTIONS:
        raise InputError(f"unknown jurisdiction {value!r}; expected one of {', '.join(JURISDICTIONS)}",
                         field="jurisdiction")
    return code


def _event_keys(name: str, groups: EventGroups) -> set[str]:
    """The stored events a name stands for: the PT in its normalised form, or a group name in any case."""
    key = normalise_pt(name)
    if not key:
        raise InputError("empty event", field="event")
    return {key} | {g for g in groups.groups if normalise_pt(g) == key}


def _in_group(name: str, groups: EventGroups) -> ColumnElement[bool]:
    """Signals within an event group: the group's own, those of the groups whose terms it includes, and the
    PT-level signals on its terms."""
    found = [g for g in groups.groups if normalise_pt(g) == normalise_pt(name)]
    if not found:
        raise InputError(f"unknown event group {name!r}; groups are: {', '.join(sorted(groups.groups))}",
                         field="group")
    terms = groups.groups[found[0]]
    within = sorted(g for g, t in groups.groups.items() if g == found[0] or (t and t <= terms))
    if not terms:
        return and_(Signal.level == "group", Signal.event.in_(within)) if within else false()
    return or_(and_(Signal.level == "pt", Signal.event.in_(sorted(terms))),
               and_(Signal.level == "group", Signal.event.in_(within)))


def changes_of_run(session: Session, run_id: int) -> dict[str, int]:
    """The registry's changes recorded when run ``run_id`` was evaluated, by kind (the kinds of
    :class:`~pv.signals.changes.SignalChange`), read from the audit trail."""
    kinds: Counter[str] = Counter()
    rows = session.execute(select(SignalAudit.action, SignalAudit.from_status, SignalAudit.to_status)
                           .where(SignalAudit.run_id == run_id, SignalAudit.by == lifecycle.SYSTEM_USER))
    for action, before, after in rows:
        if action != "transition":
            kinds[action] += 1
        elif (before, after) == ("monitoring", "validated"):
            kinds["reopened"] += 1
    return dict(sorted(kinds.items()))


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
        "opened_as_of": signal.opened_as_of.isoformat() if signal.opened_as_of else None,
        "consecutive_met": signal.consecutive_met,
        "consecutive_not_met": signal.consecutive_not_met,
        "cases_checked": json_float(signal.cases_checked),
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


def findings_as_dicts(found: Sequence[ListedSignal], groups: EventGroups | None = None) -> list[dict[str, Any]]:
    """Listed signals (most urgent first) as findings, one object per finding
    (:func:`pv.signals.findings.group_findings`), as ``pv signals --format json`` and ``GET /api/signals`` give
    them: ``finding`` (its number, most urgent first), ``title``, ``product``, ``lead`` (the id of its most
    urgent member), ``priority`` (the lead's), ``needs_decision`` (its members' reasons) and ``members`` (the
    signals, head first, each with its ``depth`` beneath the head)."""
    findings = group_findings(list(found), groups or default_event_groups(),
                              key=lambda x: (x.signal.product, x.signal.event, x.signal.level))
    out = []
    for number, f in enumerate(findings, start=1):
        members = [{**m.item.as_dict(), "depth": m.depth} for m in f.members]
        reasons = {r for m in members for r in m["needs_decision"]}
        out.append({"finding": number, "title": f.title, "product": f.product, "lead": f.lead.signal.id,
                    "priority": float(f.lead.signal.priority or 0.0),
                    "needs_decision": [r for r in QUEUE_REASONS if r in reasons], "members": members})
    return out
