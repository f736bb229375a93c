"""Decisions recorded by people on the registry: lifecycle transitions and label changes.

Each re-classifies what it affects and is recorded in the append-only audit trail with who and why. The caller
commits.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.models.signals import Label, Signal
from pv.normalise import EventGroups, ProductDictionary
from pv.signals import lifecycle
from pv.signals.changes import SignalChange
from pv.signals.evaluation import RegistryUpdate, enter_monitoring, withdraw_flag
from pv.signals.labels import LabelEntry, LabelIndex, add_label
from pv.signals.queries import get_signal
from pv.signals.rules import RuleSet

#: A person's decision that ends a signal: its "label update recommended" flag is withdrawn with it.
ENDING_STATES = ("refuted", "closed")


def transition_signal(session: Session, signal_id: int, status: str, *, by: str, reason: str,
                      rules: RuleSet | None = None) -> Signal:
    """A manual lifecycle transition (``pv signal transition``). Refuting or closing a flagged signal withdraws
    its "label update recommended" flag (audit ``label_update_withdrawn``, with the person's reason). The
    caller commits."""
    signal = get_signal(session, signal_id)
    if status == "monitoring":
        lifecycle.check_transition(signal.id, signal.status, status)
        enter_monitoring(session, signal, rules or RuleSet.load(), by=by, reason=reason,
                         as_of=dt.date.today())
    else:
        lifecycle.transition(session, signal, status, by=by, reason=reason)
    if status in ENDING_STATES and signal.label_update_recommended:
        withdraw_flag(session, signal, by=by.strip(), run_id=None, as_of=None,
                      reason=f"label update recommendation withdrawn: signal {status} by {by.strip()} "
                             f"({reason.strip()})")
    session.flush()
    return signal


def record_label_change(
    session: Session,
    entry: LabelEntry,
    *,
    by: str,
    reason: str,
    rules: RuleSet | None = None,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
) -> tuple[Label, list[SignalChange]]:
    """``pv labels add``: record the label entry, re-classify the product's signals with the label in force at
    the entry's effective date (or their last run, if later); flagged signals now covered are cleared and move
    to monitoring. The caller commits.
    """
    rules = rules or RuleSet.load()
    label = add_label(session, entry, by=by, reason=reason, groups=groups, products=products)
    session.flush()
    index = LabelIndex.from_session(session, groups=groups, products=products, seed=False)
    changes: list[SignalChange] = []
    for signal in session.scalars(select(Signal).where(Signal.product == label.product)):
        at = max(signal.last_as_of, label.effective_date)
        run = RegistryUpdate(session, None, at, rules, index, None)
        labelled = run.classify(signal, at)
        signal.labelled = labelled
        if signal.status in lifecycle.OPEN_STATES:
            run.clear_flag_if_labelled(
                signal, [j for j, v in labelled.items() if not v], None, by=by,
                why=f"label change recorded by {by}: {label.jurisdiction} {label.section} now lists "
                    f"{label.event} from {label.effective_date} ({reason})",
            )
        changes.extend(run.changes())
    session.flush()
    changes.sort(key=lambda c: (-c.priority, c.signal_id))
    return label, changes
