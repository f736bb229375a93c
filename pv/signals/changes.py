"""What a run changed in the signal registry: the events that alerts and the weekly report are made of."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

#: ``created``: a finding first meeting the detection rules, now tracked (no alert by default); ``opened``: a
#: tracked finding opened as a signal for a person by the opening rule; ``label_update_withdrawn``: a flag
#: withdrawn because the evidence went away (``label_update_cleared``: because the label came to cover it).
ChangeKind = Literal["created", "opened", "escalated", "label_update_recommended", "reopened",
                     "label_update_cleared", "label_update_withdrawn"]


@dataclass(frozen=True)
class SignalChange:
    """One change to one signal made by evaluating one analysis run.

    ``measures`` holds the run's figures for the pair: n, expected, prr, prr_chi2, ror, ror_lower, ror_upper,
    ic, ic025, ic975, ebgm, eb05, eb95 (missing ones absent). ``key`` identifies the change for alerting.
    """

    kind: ChangeKind
    signal_id: int
    run_id: int
    as_of: dt.date
    product: str
    event: str
    level: Literal["pt", "group"]
    status: str
    priority: float
    labelled: dict[str, bool] = field(default_factory=dict)  # jurisdiction -> event on the label in force
    measures: dict[str, float] = field(default_factory=dict)
    serious_cases: int | None = None
    deaths: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.signal_id}:{self.run_id}"
