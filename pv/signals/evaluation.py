"""The signal registry and the dynamic feedback loop (docs/signals.md).

:func:`evaluate_run` takes one analysis run's pair-level results and, in the caller's transaction:

1. stores the detection rules used (``signal_rule_snapshots``);
2. tracks every product x event x level that meets the detection rules for the first time (status
   ``tracked``: a signal of disproportionate reporting, not yet a signal for a person), and records every
   known signal's measures in this run (``signal_measures``: the trend);
3. classifies each signal as labelled or unlabelled in each jurisdiction, using the label in force at the
   run's as-of date (:class:`~pv.signals.labels.LabelIndex`);
4. opens a tracked finding (``tracked`` -> ``new``) when the opening rule holds (``opening`` in
   config/signals.yaml): persistent over consecutive runs or strong, bringing new cases, and unlabelled
   somewhere unless it strengthened markedly;
5. runs the feedback loop: an open signal unlabelled somewhere that meets the rules in K consecutive runs, or
   meets the strong criterion, and brings new cases, is escalated and flagged "label update recommended" with
   its evidence and the reasons; the flag is withdrawn when the signal stops meeting the rules for K runs;
   when the label comes to cover it the flag clears and the signal moves to ``monitoring``; a monitored signal
   whose measure reaches ``factor`` x its value when monitoring began reopens (and is flagged again if
   unlabelled and bringing new cases);
6. scores every measured signal (:mod:`pv.signals.priority`).

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
from pv.signals.queries import is_known_risk
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


def _cases(measure: SignalMeasure | None) -> float | None:
    return optional_float(measure.n) if measure is not None else None


def _runs_text(runs: Sequence[SignalMeasure]) -> str:
    return ", ".join(f"run {m.run_id} ({m.as_of})" for m in runs)


def _runs_json(runs: Sequence[SignalMeasure]) -> list[dict[str, Any]]:
    return [{"run_id": m.run_id, "as_of": m.as_of.isoformat(), "n": json_float(m.n),
             "criteria_met": list(m.criteria_met or [])} for m in runs]


def withdraw_flag(session: Session, signal: Signal, *, by: str, reason: str, run_id: int | None,
                  as_of: dt.date | None, measure: SignalMeasure | None = None) -> None:
    """Withdraw a "label update recommended" flag (audit ``label_update_withdrawn``): the evidence went away, or
    a person refuted or closed the signal. The flag's evidence is kept, with the withdrawal added; the case
    count becomes the baseline a new escalation must exceed. The caller emits the change."""
    lifecycle.record(session, signal, action="label_update_withdrawn", by=by, reason=reason, run_id=run_id,
                     as_of=as_of)
    jurisdictions = list(signal.label_update_jurisdictions or [])
    signal.label_update_recommended = False
    signal.label_update_jurisdictions = []
    signal.escalated = False
    signal.evidence = {**(signal.evidence or {}), "withdrawn": {
        "as_of": as_of.isoformat() if as_of else None, "run_id": run_id, "by": by, "reason": reason,
        "jurisdictions": jurisdictions}}
    _raise_cases_checked(signal, measure)


def _raise_cases_checked(signal: Signal, measure: SignalMeasure | None) -> None:
    """After a decision that does not need new cases (a withdrawal, entering monitoring): the case count a later
    escalation must exceed is the highest count decided on, so that counts falling and rising back are not new
    cases."""
    n = _cases(measure)
    if n is not None:
        signal.cases_checked = n if signal.cases_checked is None else max(signal.cases_checked, n)


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
        fb = self.rules.feedback
        return self.labels.classify(signal.product, signal.event, signal.level, as_of or self.as_of,
                                    jurisdictions=self.jurisdictions, sections=self.sections,
                                    required=fb.required_sections,
                                    highest={str(j): s for j, s in fb.highest_sections.items()})

    # -- opening ---------------------------------------------------------------------------------------
    @staticmethod
    def has_new_cases(signal: Signal, measure: SignalMeasure) -> bool:
        """Whether the run's case count exceeds the count at the feedback loop's last decision on the signal
        (none yet: every case is new)."""
        n = _cases(measure)
        return n is not None and (signal.cases_checked is None or n > signal.cases_checked)

    def _new_cases_text(self, signal: Signal, measure: SignalMeasure, since: str) -> str:
        n = _cases(measure) or 0.0
        if signal.cases_checked is None:
            return f"{n:g} cases, all new"
        return f"{n:g} cases, {n - signal.cases_checked:g} new since {since} ({signal.cases_checked:g})"

    def _strengthened(self, signal: Signal, measure: SignalMeasure) -> str | None:
        """For a tracked known risk: why it strengthened markedly since first tracked, or None."""
        reo = self.rules.feedback.reopening
        floor = self.rules.opening.known_risk_floor
        base = signal.tracked_baseline
        value = optional_float(getattr(measure, reo.measure))
        if base is None or value is None:
            return None
        reference = max(base, floor)
        if reference <= 0 or value < reo.factor * reference:
            return None
        if reference > base:
            return (f"{reo.measure} {value:.3g} >= {reo.factor:g} x {reference:g} (its value when first tracked on "
                    f"{signal.first_detected}, {base:.3g}, counted as at least {floor:g})")
        return (f"{reo.measure} {value:.3g} >= {reo.factor:g} x {base:.3g} (its value when first tracked on "
                f"{signal.first_detected})")

    def maybe_open(self, signal: Signal, measure: SignalMeasure, unlabelled: list[str],
                   history: list[SignalMeasure], *, new_cases: bool) -> bool:
        """Open a tracked finding (``tracked`` -> ``new``) when the opening rule holds; record why."""
        if signal.status != "tracked" or not measure.meets_rules or not new_cases:
            return False
        op = self.rules.opening
        values = _measure_values(measure)
        persistent = signal.consecutive_met >= op.persistence
        strong = op.strong is not None and op.strong.holds(values)
        if not (persistent or strong):
            return False
        known = is_known_risk(signal.labelled or {})
        strengthened = self._strengthened(signal, measure) if known else None
        if known and strengthened is None:
            return False
        rules_held: list[dict[str, Any]] = []
        why = []
        if persistent:
            runs = history[-signal.consecutive_met:]
            why.append(f"persistence: met the detection rules in {signal.consecutive_met} consecutive runs "
                       f"(threshold {op.persistence}): {_runs_text(runs)}")
            rules_held.append({"rule": "persistence", "threshold": op.persistence, "runs": _runs_json(runs)})
        if strong and op.strong is not None:
            why.append(f"strong: {op.strong.describe(values)} in run {measure.run_id} ({measure.as_of})")
            rules_held.append({"rule": "strong", "criterion": op.strong.describe(values),
                               "runs": _runs_json([measure])})
        level_rule = self.rules.detection.levels[cast(Any, signal.level)]
        why.append(f"criteria met: {describe_detection(values, level_rule)}")
        why.append(self._new_cases_text(signal, measure, "first tracked"))
        if known:
            why.append(f"labelled in every judged jurisdiction ({', '.join(sorted(signal.labelled))}) but "
                       f"strengthened: {strengthened}")
        elif unlabelled:
            why.append(f"unlabelled in {', '.join(unlabelled)}")
        else:
            why.append("no label known (the product is judged in no jurisdiction)")
        reason = "opened: " + "; ".join(why)
        lifecycle.transition(self.session, signal, "new", by=SYSTEM, reason=reason, automatic=True,
                             run_id=self.run_id, as_of=self.as_of, action="opened")
        signal.opened_as_of = self.as_of
        signal.cases_checked = _cases(measure)
        signal.evidence = {**(signal.evidence or {}), "opened": {
            "as_of": self.as_of.isoformat(), "run_id": self.run_id, "reason": reason, "rules": rules_held,
            "cases": json_float(measure.n), "unlabelled_in": list(unlabelled),
            "strengthened": strengthened}}
        self.emit("opened", signal, measure)
        return True

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

    def maybe_withdraw(self, signal: Signal, measure: SignalMeasure | None) -> bool:
        """Withdraw the flag of a signal that has not met the rules in ``feedback.withdrawal.runs_not_meeting``
        consecutive runs."""
        k = self.rules.feedback.withdrawal.runs_not_meeting
        if not signal.label_update_recommended or signal.consecutive_not_met < k:
            return False
        last = f"last met them on {signal.last_met_as_of}" if signal.last_met_as_of else "never met them"
        reason = (f"label update recommendation withdrawn: the signal has not met the detection rules in "
                  f"{signal.consecutive_not_met} consecutive runs (threshold {k}; {last}), the last run "
                  f"{self.run_id} ({self.as_of})")
        withdraw_flag(self.session, signal, by=SYSTEM, reason=reason, run_id=self.run_id, as_of=self.as_of,
                      measure=measure)
        self.emit("label_update_withdrawn", signal, measure)
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

    def label_section(self, signal: Signal, measure: SignalMeasure) -> tuple[str, str]:
        """The label section a recommended update would belong in, and why (``feedback.label_section``)."""
        rule = self.rules.feedback.label_section
        groups = self.labels.groups.groups
        if signal.level == "group":
            own = groups.get(signal.event, frozenset())
            member = [g for g in rule.boxed_warning_groups
                      if g == signal.event or (own and own <= groups.get(g, frozenset()))]
        else:
            member = [g for g in rule.boxed_warning_groups if signal.event in groups.get(g, frozenset())]
        if member:
            return "boxed_warning", f"event in group {', '.join(member)}"
        n = _cases(measure) or 0.0
        deaths = optional_float(measure.n_deaths) or 0.0
        serious = optional_float(measure.n_serious) or 0.0
        if n > 0 and deaths / n >= rule.boxed_warning_death_share:
            return "boxed_warning", f"{deaths:g} of {n:g} cases fatal (>= {rule.boxed_warning_death_share:.0%})"
        if n > 0 and deaths / n >= rule.warnings_death_share:
            return "warnings_and_precautions", (f"{deaths:g} of {n:g} cases fatal "
                                                f"(>= {rule.warnings_death_share:.0%})")
        if n > 0 and serious / n >= rule.warnings_serious_share:
            return "warnings_and_precautions", (f"{serious:g} of {n:g} cases serious "
                                                f"(>= {rule.warnings_serious_share:.0%})")
        return "adverse_reactions", f"{serious:g} of {n:g} cases serious, {deaths:g} fatal"

    def maybe_escalate(self, signal: Signal, measure: SignalMeasure, unlabelled: list[str],
                       history: list[SignalMeasure], *, reopened: bool, new_cases: bool) -> None:
        if signal.label_update_recommended or not unlabelled or not measure.meets_rules:
            return
        if signal.status not in lifecycle.OPEN_STATES or (signal.status == "monitoring" and not reopened):
            return
        esc = self.rules.feedback.escalation
        values = _measure_values(measure)
        strong = esc.strong is not None and esc.strong.holds(values)
        persistent = signal.consecutive_unlabelled >= esc.consecutive_unlabelled_runs
        if not (strong or persistent or reopened) or not new_cases:
            return  # unchanged counts never escalate
        why = []
        rules_held: list[dict[str, Any]] = []
        if persistent:
            runs = history[-signal.consecutive_unlabelled:]
            why.append(f"persistence: met the detection rules while unlabelled in {', '.join(unlabelled)} in "
                       f"{signal.consecutive_unlabelled} consecutive runs (threshold "
                       f"{esc.consecutive_unlabelled_runs}): {_runs_text(runs)}")
            rules_held.append({"rule": "persistence", "threshold": esc.consecutive_unlabelled_runs,
                               "runs": _runs_json(runs)})
        if strong and esc.strong is not None:
            why.append(f"strong: {esc.strong.describe(values)} in run {measure.run_id} ({measure.as_of})")
            rules_held.append({"rule": "strong", "criterion": esc.strong.describe(values),
                               "runs": _runs_json([measure])})
        if reopened:
            why.append(f"reopened in run {measure.run_id} ({measure.as_of}) while unlabelled in "
                       f"{', '.join(unlabelled)}")
            rules_held.append({"rule": "reopened", "runs": _runs_json([measure])})
        level_rule = self.rules.detection.levels[cast(Any, signal.level)]
        why.append(f"criteria met: {describe_detection(values, level_rule)}")
        why.append(self._new_cases_text(signal, measure, "the last check"))
        why.append(f"unlabelled in {', '.join(unlabelled)}")
        section, section_why = self.label_section(signal, measure)
        why.append(f"label section: {section} ({section_why})")
        reason = "; ".join(why)
        evidence = self.evidence(signal, measure, unlabelled, history, reason)
        evidence.update({
            "rules": rules_held,
            "new_cases": {"n": json_float(measure.n), "since": json_float(signal.cases_checked)},
            "label_section": {"section": section, "why": section_why},
        })
        if not signal.escalated:
            signal.escalated = True
            signal.escalated_at = self.as_of
            lifecycle.record(self.session, signal, action="escalated", by=SYSTEM, reason=reason,
                             run_id=self.run_id, as_of=self.as_of)
            self.emit("escalated", signal, measure)
        signal.label_update_recommended = True
        signal.label_update_since = self.as_of
        signal.label_update_jurisdictions = list(unlabelled)
        signal.evidence = evidence
        signal.cases_checked = _cases(measure)
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
        opened = (signal.evidence or {}).get("opened")
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
            **({"opened": opened} if opened else {}),
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
    """Transition to monitoring and record the baseline of the reopening measure (and the case count a later
    escalation must exceed)."""
    lifecycle.transition(session, signal, "monitoring", by=by, reason=reason, automatic=automatic,
                         run_id=run_id, as_of=as_of)
    name = rules.feedback.reopening.measure
    if measure is None:
        measure = session.scalars(
            select(SignalMeasure).where(SignalMeasure.signal_id == signal.id)
            .order_by(SignalMeasure.as_of.desc(), SignalMeasure.run_id.desc())
        ).first()
    signal.monitoring_baseline = optional_float(getattr(measure, name)) if measure is not None else None
    _raise_cases_checked(signal, measure)
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
    # track the new findings first, in one flush (their ids are needed below)
    created: set[int] = set()
    fresh = []
    for row in records:
        key = (row["product"], row["event"], row["level"])
        if key in signals or not row["meets"]:
            continue
        signal = Signal(
            product=key[0], event=key[1], level=key[2], status="tracked", first_detected=as_of,
            first_run_id=run_id, last_run_id=run_id, last_as_of=as_of, labelled={},
            label_update_jurisdictions=[], consecutive_unlabelled=0, escalated=False,
            label_update_recommended=False, reopened_count=0, priority=0.0, strength=0.0,
            consecutive_met=0, consecutive_not_met=0,
            tracked_baseline=optional_float(row.get(rules.feedback.reopening.measure)),
        )
        signals[key] = signal
        fresh.append((signal, row))
    if fresh:
        session.add_all([sig for sig, _ in fresh])
        session.flush()
    for signal, row in fresh:
        level_rule = rules.detection.levels[cast(Any, signal.level)]
        lifecycle.record(session, signal, action="created", by=SYSTEM, to_status="tracked",
                         reason=f"detected: {describe_detection(row, level_rule)}; tracked until the opening "
                                "rule holds", run_id=run_id, as_of=as_of)
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
        signal.consecutive_met = (signal.consecutive_met or 0) + 1 if meets else 0
        signal.consecutive_not_met = 0 if meets else (signal.consecutive_not_met or 0) + 1
        labelled = run.classify(signal)
        signal.labelled = labelled
        measure.labelled = labelled
        unlabelled = [j for j, v in labelled.items() if not v]
        new_cases = run.has_new_cases(signal, measure)  # before this run's decisions

        acted_on = signal.status == "tracked" or signal.status in lifecycle.OPEN_STATES
        persists = meets and bool(unlabelled) and acted_on
        signal.consecutive_unlabelled = signal.consecutive_unlabelled + 1 if persists else 0
        if signal.status == "tracked":
            run.maybe_open(signal, measure, unlabelled, hist, new_cases=new_cases)
            if signal.id in created:
                signal.cases_checked = _cases(measure)  # the count when first tracked
        if signal.status in lifecycle.OPEN_STATES:
            run.clear_flag_if_labelled(signal, unlabelled, measure)
            reopened = run.maybe_reopen(signal, measure)
            run.maybe_withdraw(signal, measure)
            run.maybe_escalate(signal, measure, unlabelled, hist, reopened=reopened, new_cases=new_cases)
        run.score(signal, measure, hist, unlabelled)

    # signals this run did not measure: they did not persist; a label now in force may still clear a flag, and
    # a flag whose evidence went away is withdrawn
    for signal in signals.values():
        if signal.id in measured:
            continue
        signal.consecutive_unlabelled = 0
        signal.consecutive_met = 0
        signal.consecutive_not_met = (signal.consecutive_not_met or 0) + 1
        if signal.label_update_recommended and signal.status in lifecycle.OPEN_STATES:
            labelled = run.classify(signal)
            signal.labelled = labelled
            if not run.clear_flag_if_labelled(signal, [j for j, v in labelled.items() if not v], None):
                run.maybe_withdraw(signal, None)
    session.flush()
    return run.changes()


def is_evaluated(session: Session, run_id: int) -> bool:
    """Whether the registry has evaluated run ``run_id`` (each run is evaluated once)."""
    return session.scalar(select(SignalRuleSnapshot.id).where(SignalRuleSnapshot.run_id == run_id)) is not None


def evaluated_runs(session: Session, as_of: dt.date) -> set[int]:
    """The ids of the runs as of ``as_of`` that the registry has evaluated."""
    return set(session.scalars(select(SignalRuleSnapshot.run_id).where(SignalRuleSnapshot.as_of == as_of)))
