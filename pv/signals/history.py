"""The signal registry as it stood at an evaluated run, replayed from the append-only audit trail and the run's
measures (never from the live ``signals`` rows, which hold only the latest state).

The *cut-off* of an evaluated run is the moment its evaluation was recorded: the registry at that run holds the
audit rows of the runs evaluated up to it (by run) and the rows recorded by people before the cut-off (by time,
``signal_audit.at``). The last evaluated run has no cut-off: its registry is the live one, decisions made since
its evaluation included. So a report re-rendered for an old run shows the statuses it showed when issued.

The *period* of a run (what its report calls "since the last report") runs from the previous evaluated run's
cut-off to this run's: the rows of this run, and the rows people recorded in between.

For each signal the replay gives its status (the ``to_status`` of its last row), whether it was flagged "label
update recommended" (``label_update_recommended`` sets the flag; ``label_update_cleared`` and
``label_update_withdrawn`` clear it), whether and why it was escalated, and its label classification (the
``labelled`` of its measure in the run, or of its last measure before). A signal whose rows all come after the
cut-off did not exist yet. Statuses outside :data:`~pv.signals.states.OPEN_STATES` (refuted, closed, and a
``tracked`` disproportionality not yet opened) are not open.

Services take the caller's session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pv.models import Run
from pv.models.signals import Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.signals.states import OPEN_STATES, SYSTEM_USER

#: Audit actions (the registry's own and those of the registry rules to come, referenced by name).
CREATED = "created"
OPENED = "opened"  # a tracked disproportionality becomes an open signal (to_status 'new')
TRACKED = "tracked"  # status of a disproportionality that is tracked, not (yet) an open signal
ESCALATED = "escalated"
FLAGGED = "label_update_recommended"
CLEARED = "label_update_cleared"  # the label came to cover the event
WITHDRAWN = "label_update_withdrawn"  # the flag was withdrawn (the reason says why)
TRANSITION = "transition"
FLAG_OFF = (CLEARED, WITHDRAWN)


@dataclass(frozen=True)
class SignalState:
    """One signal as it stood at a run."""

    signal: Signal  # identity (product, event, level, first detection) and the recorded evidence
    status: str
    flagged: bool
    flag_since: dt.date | None
    flag_reason: str | None
    escalated: bool
    escalation_reason: str | None
    labelled: dict[str, bool]
    measure: SignalMeasure | None  # in the run, or the last measure before it
    previous: SignalMeasure | None  # in the previous evaluated run
    measured: bool  # ``measure`` is the run's own

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def unlabelled_in(self) -> list[str]:
        return [j for j, v in self.labelled.items() if not v]

    @property
    def known_risk(self) -> bool:
        """On the label wherever the product is judged (and judged in one jurisdiction at least)."""
        return bool(self.labelled) and all(self.labelled.values())

    @property
    def flag_jurisdictions(self) -> list[str]:
        if not self.flagged:
            return []
        return self.unlabelled_in or list(self.signal.label_update_jurisdictions or [])

    @property
    def new_cases(self) -> float | None:
        """Cases added since the previous evaluated run (all its cases when it was not measured then)."""
        if not self.measured or self.measure is None or self.measure.n is None:
            return None
        before = self.previous.n if self.previous is not None and self.previous.n is not None else 0.0
        return self.measure.n - before

    @property
    def stopped_meeting_rules(self) -> bool:
        """Met the detection rules in the previous evaluated run and not in this one."""
        return (self.measured and self.measure is not None and not self.measure.meets_rules
                and self.previous is not None and bool(self.previous.meets_rules))


@dataclass(frozen=True)
class RegistryAt:
    """The registry at one run: every signal's state, and the audit rows of the run's period."""

    run_id: int
    as_of: dt.date
    evaluated: bool  # False: the run itself was not evaluated; the registry is that of the last run before it
    previous_run_id: int | None
    previous_as_of: dt.date | None
    since: dt.datetime | None  # the period's start (the previous run's cut-off); None: from the beginning
    until: dt.datetime | None  # the cut-off; None: now
    states: dict[int, SignalState]
    period: list[SignalAudit] = field(default_factory=list)  # audit rows of the period, in order

    def open_states(self) -> list[SignalState]:
        return [s for s in self.states.values() if s.is_open]

    def period_rows(self, actions: Iterable[str] | None = None, *, people: bool | None = None
                    ) -> list[SignalAudit]:
        """The period's audit rows of these actions (all when None); ``people``: only those by people (True) or
        only the registry's own (False)."""
        wanted = set(actions) if actions is not None else None
        return [a for a in self.period
                if (wanted is None or a.action in wanted)
                and (people is None or (a.by != SYSTEM_USER) == people)]


def _cut_off(session: Session, snapshot: SignalRuleSnapshot) -> dt.datetime:
    """When the evaluation of a run was recorded: its snapshot, or its last audit row if later."""
    last = session.scalar(select(func.max(SignalAudit.at)).where(SignalAudit.run_id == snapshot.run_id))
    times = [t for t in (snapshot.evaluated_at, last) if t is not None]
    return max(_aware(t) for t in times)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _last_measures(session: Session, signal_ids: Sequence[int], run_ids: Sequence[int]
                   ) -> dict[int, SignalMeasure]:
    out: dict[int, SignalMeasure] = {}
    if not signal_ids or not run_ids:
        return out
    for chunk in range(0, len(signal_ids), 2000):
        ids = list(signal_ids[chunk:chunk + 2000])
        for m in session.scalars(select(SignalMeasure).where(
                SignalMeasure.signal_id.in_(ids), SignalMeasure.run_id.in_(list(run_ids)))
                .order_by(SignalMeasure.as_of, SignalMeasure.run_id)):
            out[m.signal_id] = m  # last wins
    return out


def registry_at(session: Session, run: Run) -> RegistryAt:
    """The registry as it stood at ``run`` (see the module docstring)."""
    snapshots = list(session.scalars(select(SignalRuleSnapshot).order_by(SignalRuleSnapshot.as_of,
                                                                         SignalRuleSnapshot.id)))
    own = next((i for i, s in enumerate(snapshots) if s.run_id == run.id), None)
    # a run the registry did not evaluate shows the registry of the last evaluated run before it
    reference = own if own is not None else max(
        (i for i, s in enumerate(snapshots) if s.as_of <= run.as_of), default=None)
    if reference is None:
        return RegistryAt(run_id=run.id, as_of=run.as_of, evaluated=False, previous_run_id=None,
                          previous_as_of=None, since=None, until=None, states={})
    included = snapshots[: reference + 1]
    later = snapshots[reference + 1:]
    until = _cut_off(session, included[-1]) if later else None
    previous = included[-2] if len(included) >= 2 else None
    since = _cut_off(session, previous) if previous is not None else None
    run_ids = {s.run_id for s in included}
    measured_run = included[-1].run_id

    def in_scope(a: SignalAudit) -> bool:
        if a.run_id is not None:
            return a.run_id in run_ids
        return until is None or _aware(a.at) <= until

    def in_period(a: SignalAudit) -> bool:
        if a.run_id is not None:
            return a.run_id == measured_run
        return (since is None or _aware(a.at) > since) and (until is None or _aware(a.at) <= until)

    scope = or_(SignalAudit.run_id.in_(sorted(run_ids)), SignalAudit.run_id.is_(None))
    rows = [a for a in session.scalars(select(SignalAudit).where(scope).order_by(SignalAudit.id)) if in_scope(a)]
    by_signal: dict[int, list[SignalAudit]] = defaultdict(list)
    for a in rows:
        by_signal[a.signal_id].append(a)
    signals = {s.id: s for s in session.scalars(select(Signal).where(Signal.id.in_(list(by_signal))))} \
        if by_signal else {}
    ids = sorted(signals)
    own_measures = _last_measures(session, ids, [measured_run])
    previous_measures = _last_measures(session, ids, [previous.run_id]) if previous is not None else {}
    unmeasured = [i for i in ids if i not in own_measures]
    earlier = _last_measures(session, unmeasured, sorted(run_ids - {measured_run}))

    states: dict[int, SignalState] = {}
    for sid in ids:
        status = ""
        flagged = escalated = False
        flag_since: dt.date | None = None
        flag_reason = escalation_reason = None
        for a in by_signal[sid]:
            status = a.to_status
            if a.action == FLAGGED:
                flagged, flag_reason = True, a.reason
                flag_since = a.as_of or _aware(a.at).date()
            elif a.action in FLAG_OFF:
                flagged = False
            elif a.action == ESCALATED:
                escalated, escalation_reason = True, a.reason
        measure = own_measures.get(sid) or earlier.get(sid)
        live = until is None
        labelled = dict(measure.labelled or {}) if measure is not None else {}
        if live or not labelled:
            labelled = dict(signals[sid].labelled or {}) or labelled  # label changes recorded since the run
        states[sid] = SignalState(
            signal=signals[sid], status=status, flagged=flagged, flag_since=flag_since, flag_reason=flag_reason,
            escalated=escalated, escalation_reason=escalation_reason, labelled=labelled, measure=measure,
            previous=previous_measures.get(sid), measured=sid in own_measures,
        )
    return RegistryAt(
        run_id=run.id, as_of=run.as_of, evaluated=own is not None,
        previous_run_id=previous.run_id if previous is not None else None,
        previous_as_of=previous.as_of if previous is not None else None,
        since=since, until=until, states=states, period=[a for a in rows if in_period(a)],
    )


def measure_trend(session: Session, signal_id: int, as_of: dt.date) -> list[SignalMeasure]:
    """The measures of a signal in every evaluated run up to ``as_of``, oldest first."""
    return list(session.scalars(select(SignalMeasure).where(
        SignalMeasure.signal_id == signal_id, SignalMeasure.as_of <= as_of)
        .order_by(SignalMeasure.as_of, SignalMeasure.run_id)))
