"""The GVP Module IX signal states and the transitions allowed between them (rules only, no database).

:mod:`pv.signals.lifecycle` records the transitions in the audit trail. The rules live here, apart from it, so
that the command line can name the states in its help without loading the database layer.
"""

from __future__ import annotations

from typing import Final

from pv.errors import InvalidTransitionError

#: ``tracked``: a statistical finding (a signal of disproportionate reporting) measured every run but not yet
#: opened for a person; the registry opens it (``tracked`` -> ``new``) when the opening rule holds
#: (config/signals.yaml ``opening``). It is neither open nor in the action queue.
STATES: Final[tuple[str, ...]] = (
    "tracked", "new", "validated", "refuted", "prioritised", "assessed", "action_recommended", "monitoring",
    "closed",
)
OPEN_STATES: Final[frozenset[str]] = frozenset(
    {"new", "validated", "prioritised", "assessed", "action_recommended", "monitoring"}
)
#: Manual (human) transitions.
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "tracked": ("validated", "refuted"),  # a person may act on a finding before it opens
    "new": ("validated", "refuted"),
    "validated": ("prioritised", "refuted"),
    "refuted": ("validated",),
    "prioritised": ("assessed",),
    "assessed": ("action_recommended", "monitoring", "closed"),
    "action_recommended": ("monitoring", "closed"),
    "monitoring": ("validated", "closed"),
    "closed": (),
}
#: Extra transitions the feedback loop makes on its own (recorded with by='pv').
AUTOMATIC_TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "tracked": ("new",),  # opened by the opening rule (audit action 'opened')
    "new": ("monitoring",),
    "validated": ("monitoring",),
    "prioritised": ("monitoring",),
    "assessed": (),
    "action_recommended": (),
    "monitoring": (),
    "refuted": (),
    "closed": (),
}
SYSTEM_USER: Final[str] = "pv"


def allowed_targets(status: str, *, automatic: bool = False) -> tuple[str, ...]:
    targets = TRANSITIONS.get(status, ())
    if automatic:
        targets = targets + AUTOMATIC_TRANSITIONS.get(status, ())
    return targets


def check_transition(signal_id: int | None, current: str, target: str, *, automatic: bool = False) -> None:
    """Raise InvalidTransitionError (naming the allowed targets) unless current -> target is allowed."""
    if target not in STATES:
        raise InvalidTransitionError(f"unknown status {target!r}; statuses are: {', '.join(STATES)}")
    allowed = allowed_targets(current, automatic=automatic)
    if target not in allowed:
        who = f"signal {signal_id}" if signal_id is not None else "a signal"
        options = ", ".join(allowed) if allowed else "none (final state)"
        raise InvalidTransitionError(
            f"cannot move {who} from {current!r} to {target!r}; allowed from {current!r}: {options}"
        )
