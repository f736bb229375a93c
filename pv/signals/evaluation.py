"""The signal registry and the dynamic feedback loop (docs/signals.md).

:func:`evaluate_run` takes one analysis run's pair-level results and, in the caller's transaction:

1. stores the detection rules used (``signal_rule_snapshots``);
2. creates a signal (status ``new``) for every product x event x level that meets the rules for the first
   time, and records every known signal's measures in this run (``signal_measures``: the trend);
3. classifies each signal as labelled or unlabelled in each jurisdiction, using the label in force at the
   run's as-of date (:class:`~pv.signals.labels.LabelIndex`);
4. runs the feedback loop: an open signal unlabelled somewhere that meets the rules in K consecutive runs, or
   meets the strong criterion, is escalated and flagged "label update recommended" with its evidence; when the
   label comes to cover it the flag clears and the signal moves to ``monitoring``; a monitored signal whose
   measure reaches ``factor`` x its value when monitoring began reopens (and is flagged again if unlabelled);
5. scores every measured signal (:mod:`pv.signals.priority`).

It returns the :class:`~pv.signals.changes.SignalChange` events, highest priority first. Automatic changes are
recorded in the audit trail with ``by='pv'``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.errors import InputError
from pv.models.signals import Signal, SignalMeasure, SignalRuleSnapshot
from pv.normalise import EventGroups, ProductDictionary, default_products, normalise_pt
from pv.signals import lifecycle
from pv.signals.changes import ChangeKind, SignalChange
from pv.signals.labels import LabelIndex
from pv.signals.priority import priority_score
from pv.signals.rules import (
    MEASURES,
    RuleSet,
    check_results,
    describe_detection,
    evaluate_rules,
    select_result_set,
)
from pv.stats.numbers import json_float, optional_float

#: Optional evidence hook: (session, product, event, level, as_of) -> cumulative incidence summary or None.
#: The cohort analysis (:mod:`pv.signals.evidence`) supplies e.g. {"cohort": ..., "time_years": 2, "cuminc": 0.012,
#: "lower": ..., "upper": ..., "n_patients": ...}; it is stored in the evidence of a label update
#: recommendation.
IncidenceHook = Callable[[Session, str, str, str, dt.date], Mapping[str, Any] | None]

CHANGE_MEASURES = tuple(m for m in MEASURES if m not in ("n_serious", "n_deaths"))
SYSTEM = lifecycle.SYSTEM_USER


def _int(x: Any) -> int | None:
    v = optional_float(x)
    return None if v is None else int(round(v))


def _measure_values(m: SignalMeasure) -> dict[str, float | None]:
    return {k: getattr(m, k) for k in MEASURES}


def _product_filter(rules: RuleSet, products: ProductDictionary | None) -> set[str] | None:
    spec = rules.detection.products
    if spec == "all":
        return None
    if spec == "dictionary":
        return set((products or default_products()).products)
    return set(spec)


def _prepare(results: pd.DataFrame, rules: RuleSet, products: ProductDictionary | None) -> pd.DataFrame:
    check_results(results)
    frame = results.copy()
    frame["level"] = frame["level"].astype(str)
    frame["product"] = frame["product"].astype(str)
    frame["event"] = frame["event"].astype(str)
    pt = frame["level"] == "pt"
    frame.loc[pt, "event"] = frame.loc[pt, "event"].map(normalise_pt)
    keep = _product_filter(rules, products)
    if keep is not None:
        frame = frame[frame["product"].isin(keep)]
    excluded = {normalise_pt(e) for e in rules.detection.exclude_events}
    if excluded:
        frame = frame[~(pt.loc[frame.index] & frame["event"].isin(excluded))]
    frame = select_result_set(frame, rules.detection.result_set)
    return evaluate_rules(frame, rules)


def last_evaluated_as_of(session: Session) -> dt.date | None:
    """The as-of date of the last run the registry evaluated (None before the first): runs are evaluated in
    as-of order, so no run before this date can be evaluated any more."""
    return session.scalar(select(func.max(SignalRuleSnapshot.as_of)))


def _history(session: Session, signal_ids: Sequence[int]) -> dict[int, list[SignalMeasure]]:
    out: dict[int, list[SignalMeasure]] = defaultdict(list)
    if not signal_ids:
        return out
    stmt = select(SignalMeasure).order_by(SignalMeasure.as_of, SignalMeasure.run_id)
    if len(signal_ids) < 5000:
        stmt = stmt.where(SignalMeasure.signal_id.in_(list(signal_ids)))
    for m in session.scalars(stmt):
        out[m.signal_id].append(m)
    return out


class RegistryUpdate:
    """One update of the registry: a run's evaluation, or a recorded label change, and the changes it emits."""

    def __init__(self, session: Session, run_id: int | None, as_of: dt.date, rules: RuleSet,
                 labels: LabelIndex, incidence: IncidenceHook | None) -> None:
        self.session = session
        self.run_id = run_id
        self.as_of = as_of
        self.rules = rules
        self.labels = labels
        self.incidence = incidence
        self.events: list[tuple[ChangeKind, Signal, SignalMeasure | None]] = []
        fb = rules.feedback
        self.jurisdictions = list(fb.jurisdictions)
        self.sections = list(fb.labelled_sections)

    def emit(self, kind: ChangeKind, signal: Signal, measure: SignalMeasure | None) -> None:
        self.events.append((kind, signal, measure))

    def classify(self, signal: Signal, as_of: dt.date | None = None) -> dict[str, bool]:
        return self.labels.classify(signal.product, signal.event, signal.level, as_of or self.as_of,
                                    jurisdictions=self.jurisdictions, sections=self.sections)

    # -- feedback ------------------------------------------------------------------------------------
    def clear_flag_if_labelled(self, signal: Signal, unlabelled: list[str], measure: SignalMeasure | None,
                               by: str = SYSTEM, why: str | None = None) -> bool:
        if not signal.label_update_recommended:
            return False
        still = [j for j in signal.label_update_jurisdictions if j in unlabelled]
        if still:
            if still != list(signal.label_update_jurisdictions):
                signal.label_update_jurisdictions = still
            return False
        covered = ", ".join(signal.label_update_jurisdictions) or "every judged jurisdiction"
        reason = why or f"label in force at {self.as_of} now covers the event in {covered}"
        lifecycle.record(self.session, signal, action="label_update_cleared", by=by, reason=reason,
                         run_id=self.run_id, as_of=self.as_of)
        signal.label_update_recommended = False
        signal.label_update_jurisdictions = []
        signal.consecutive_unlabelled = 0
        if signal.status != "monitoring" and "monitoring" in lifecycle.allowed_targets(signal.status,
                                                                                      automatic=True):
            enter_monitoring(self.session, signal, self.rules, by=by, reason=f"label updated: {reason}",
                             automatic=True, run_id=self.run_id, as_of=self.as_of, measure=measure)
        self.emit("label_update_cleared", signal, measure)
        return True

    def maybe_reopen(self, signal: Signal, measure: SignalMeasure) -> bool:
        if signal.status != "monitoring":
            return False
        reo = self.rules.feedback.reopening
        baseline = signal.monitoring_baseline
        value = optional_float(getattr(measure, reo.measure))
        if baseline is None or baseline <= 0 or value is None or value < reo.factor * baseline:
            return False
        reason = (f"reopened: {reo.measure} {value:.3g} >= {reo.factor:g} x {baseline:.3g} "
                  f"(its value when monitoring began on {signal.monitoring_since})")
        lifecycle.transition(self.session, signal, "validated", by=SYSTEM, reason=reason, automatic=True,
                             run_id=self.run_id, as_of=self.as_of)
        signal.reopened_count = (signal.reopened_count or 0) + 1
        signal.monitoring_since = None
        signal.monitoring_baseline = None
        self.emit("reopened", signal, measure)
        return True

    def maybe_escalate(self, signal: Signal, measure: SignalMeasure, unlabelled: list[str],
                       history: list[SignalMeasure], *, reopened: bool) -> None:
        if signal.label_update_recommended or not unlabelled or not measure.meets_rules:
            return
        if signal.status == "monitoring" and not reopened:
            return
        esc = self.rules.feedback.escalation
        values = _measure_values(measure)
        strong = esc.strong is not None and esc.strong.holds(values)
        persistent = signal.consecutive_unlabelled >= esc.consecutive_unlabelled_runs
        if not (strong or persistent or reopened):
            return
        why = []
        if persistent:
            why.append(f"unlabelled in {', '.join(unlabelled)} for {signal.consecutive_unlabelled} "
                       f"consecutive runs meeting the rules (threshold {esc.consecutive_unlabelled_runs})")
        if strong and esc.strong is not None:
            why.append(esc.strong.describe(values))
        if reopened and not why:
            why.append(f"reopened while unlabelled in {', '.join(unlabelled)}")
        reason = "; ".join(why)
        if not signal.escalated:
            signal.escalated = True
            signal.escalated_at = self.as_of
            lifecycle.record(self.session, signal, action="escalated", by=SYSTEM, reason=reason,
                             run_id=self.run_id, as_of=self.as_of)
            self.emit("escalated", signal, measure)
        signal.label_update_recommended = True
        signal.label_update_since = self.as_of
        signal.label_update_jurisdictions = list(unlabelled)
        signal.evidence = self.evidence(signal, measure, unlabelled, history, reason)
        lifecycle.record(self.session, signal, action="label_update_recommended", by=SYSTEM,
                         reason=f"label update recommended for {signal.product} in {', '.join(unlabelled)}: "
                                f"{reason}", run_id=self.run_id, as_of=self.as_of)
        self.emit("label_update_recommended", signal, measure)

    def evidence(self, signal: Signal, measure: SignalMeasure, unlabelled: list[str],
                 history: list[SignalMeasure], reason: str) -> dict[str, Any]:
        trend = [
            {"run_id": m.run_id, "as_of": m.as_of.isoformat(), "meets_rules": m.meets_rules,
             **{k: json_float(getattr(m, k)) for k in ("n", "prr", "prr_chi2", "ror_lower", "ic025", "ebgm",
                                                     "eb05", "eb95", "n_serious", "n_deaths")}}
            for m in history
        ]
        incidence = None
        if self.incidence is not None:
            found = self.incidence(self.session, signal.product, signal.event, signal.level, self.as_of)
            incidence = dict(found) if found else None
        return {
            "as_of": self.as_of.isoformat(),
            "run_id": self.run_id,
            "reason": reason,
            "unlabelled_in": list(unlabelled),
            "labelled": dict(signal.labelled or {}),
            "cases": json_float(measure.n),
            "serious_cases": json_float(measure.n_serious),
            "deaths": json_float(measure.n_deaths),
            "criteria_met": list(measure.criteria_met or []),
            "first_detected": signal.first_detected.isoformat(),
            "trend": trend,
            "cumulative_incidence": incidence,
        }

    def score(self, signal: Signal, measure: SignalMeasure, history: list[SignalMeasure],
              unlabelled: list[str]) -> None:
        p = priority_score(
            eb05=measure.eb05, ic025=measure.ic025, n=measure.n, n_serious=measure.n_serious,
            n_deaths=measure.n_deaths, unlabelled=bool(unlabelled),
            days_since_first=(self.as_of - signal.first_detected).days,
            eb05_history=[m.eb05 for m in history], config=self.rules.priority,
        )
        signal.priority = p.score
        signal.strength = round(p.strength, 4)
        measure.priority = p.score

    def changes(self) -> list[SignalChange]:
        out = []
        for kind, s, m in self.events:
            run_id = self.run_id if self.run_id is not None else s.last_run_id
            measures = {}
            if m is not None:
                measures = {k: v for k in CHANGE_MEASURES if (v := optional_float(getattr(m, k))) is not None}
            out.append(SignalChange(
                kind=kind, signal_id=s.id, run_id=run_id, as_of=self.as_of, product=s.product,
                event=s.event, level=cast(Any, s.level), status=s.status, priority=float(s.priority or 0.0),
                labelled=dict(s.labelled or {}), measures=measures,
                serious_cases=_int(m.n_serious) if m is not None else None,
                deaths=_int(m.n_deaths) if m is not None else None,
            ))
        out.sort(key=lambda c: (-c.priority, c.signal_id))  # stable: emission order per signal
        return out


def enter_monitoring(session: Session, signal: Signal, rules: RuleSet, *, by: str, reason: str,
                     automatic: bool = False, run_id: int | None = None, as_of: dt.date | None = None,
                     measure: SignalMeasure | None = None) -> None:
    """Transition to monitoring and record the baseline of the reopening measure."""
    lifecycle.transition(session, signal, "monitoring", by=by, reason=reason, automatic=automatic,
                         run_id=run_id, as_of=as_of)
    name = rules.feedback.reopening.measure
    if measure is None:
        measure = session.scalars(
            select(SignalMeasure).where(SignalMeasure.signal_id == signal.id)
            .order_by(SignalMeasure.as_of.desc(), SignalMeasure.run_id.desc())
        ).first()
    signal.monitoring_baseline = optional_float(getattr(measure, name)) if measure is not None else None
    if as_of is not None:
        signal.monitoring_since = as_of


def evaluate_run(
    session: Session,
    *,
    run_id: int,
    as_of: dt.date,
    results: pd.DataFrame,
    rules: RuleSet | None = None,
    labels: LabelIndex | None = None,
    incidence: IncidenceHook | None = None,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
) -> list[SignalChange]:
    """Update the registry from one run's pair results; return what changed, highest priority first.

    ``results``: one row per product x event x level x result set with columns product, event, level
    ('pt' | 'group'), stratified (bool), n, expected, prr, prr_chi2, ror, ror_lower, ror_upper, ic, ic025,
    ic975, ebgm, eb05, eb95, n_serious, n_deaths. Runs must be evaluated in as-of order, each once. The caller
    commits.
    """
    rules = rules or RuleSet.load()
    if is_evaluated(session, run_id):
        raise InputError(f"run {run_id} was already evaluated by the signal registry", field="run_id")
    latest = last_evaluated_as_of(session)
    if latest is not None and as_of < latest:
        raise InputError(f"run {run_id} is as of {as_of}, before the last evaluated run ({latest}): "
                         "runs must be evaluated in as-of order", field="as_of")
    frame = _prepare(results, rules, products)
    labels = labels or LabelIndex.from_session(session, groups=groups, products=products)
    session.add(SignalRuleSnapshot(run_id=run_id, as_of=as_of, sha256=rules.digest(), rules=rules.snapshot()))

    run = RegistryUpdate(session, run_id, as_of, rules, labels, incidence)
    signals = {(s.product, s.event, s.level): s for s in session.scalars(select(Signal))}
    history = _history(session, [s.id for s in signals.values()])
    measured: set[int] = set()

    records = frame.to_dict("records")
    # create the new signals first, in one flush (their ids are needed below)
    created: set[int] = set()
    fresh = []
    for row in records:
        key = (row["product"], row["event"], row["level"])
        if key in signals or not row["meets"]:
            continue
        signal = Signal(
            product=key[0], event=key[1], level=key[2], status="new", first_detected=as_of,
            first_run_id=run_id, last_run_id=run_id, last_as_of=as_of, labelled={},
            label_update_jurisdictions=[], consecutive_unlabelled=0, escalated=False,
            label_update_recommended=False, reopened_count=0, priority=0.0, strength=0.0,
        )
        signals[key] = signal
        fresh.append((signal, row))
    if fresh:
        session.add_all([sig for sig, _ in fresh])
        session.flush()
    for signal, row in fresh:
        level_rule = rules.detection.levels[cast(Any, signal.level)]
        lifecycle.record(session, signal, action="created", by=SYSTEM, to_status="new",
                         reason=f"detected: {describe_detection(row, level_rule)}", run_id=run_id, as_of=as_of)
        created.add(signal.id)

    for row in records:
        key = (row["product"], row["event"], row["level"])
        maybe = signals.get(key)
        if maybe is None:
            continue
        signal = maybe
        meets = bool(row["meets"])
        measure = SignalMeasure(
            signal_id=signal.id, run_id=run_id, as_of=as_of, stratified=bool(row["stratified"]),
            meets_rules=meets, criteria_met=list(row["criteria_met"]),
            **{k: optional_float(row.get(k)) for k in MEASURES},
        )
        session.add(measure)
        if signal.id in created:
            run.emit("created", signal, measure)
        hist = [*history.get(signal.id, []), measure]
        measured.add(signal.id)
        signal.last_run_id = run_id
        signal.last_as_of = as_of
        if meets:
            signal.last_met_as_of = as_of
        labelled = run.classify(signal)
        signal.labelled = labelled
        measure.labelled = labelled
        unlabelled = [j for j, v in labelled.items() if not v]

        if signal.status in lifecycle.OPEN_STATES:
            run.clear_flag_if_labelled(signal, unlabelled, measure)
            reopened = run.maybe_reopen(signal, measure)
            persists = meets and bool(unlabelled)
            signal.consecutive_unlabelled = signal.consecutive_unlabelled + 1 if persists else 0
            run.maybe_escalate(signal, measure, unlabelled, hist, reopened=reopened)
        else:
            signal.consecutive_unlabelled = 0
        run.score(signal, measure, hist, unlabelled)

    # signals this run did not measure: they did not persist; a label now in force may still clear a flag
    for signal in signals.values():
        if signal.id in measured:
            continue
        signal.consecutive_unlabelled = 0
        if signal.label_update_recommended and signal.status in lifecycle.OPEN_STATES:
            labelled = run.classify(signal)
            signal.labelled = labelled
            run.clear_flag_if_labelled(signal, [j for j, v in labelled.items() if not v], None)
    session.flush()
    return run.changes()


def is_evaluated(session: Session, run_id: int) -> bool:
    """Whether the registry has evaluated run ``run_id`` (each run is evaluated once)."""
    return session.scalar(select(SignalRuleSnapshot.id).where(SignalRuleSnapshot.run_id == run_id)) is not None


def evaluated_runs(session: Session, as_of: dt.date) -> set[int]:
    """The ids of the runs as of ``as_of`` that the registry has evaluated."""
    return set(session.scalars(select(SignalRuleSnapshot.run_id).where(SignalRuleSnapshot.as_of == as_of)))
