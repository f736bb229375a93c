"""What the weekly report shows, as plain data: built from the store by pv.report.build, rendered by
pv.report.render. Keeping the two apart lets the rendering be tested on hand-made data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pv.signals.findings import Finding

JURISDICTIONS = ("FDA", "NMPA", "EMA")


@dataclass(frozen=True)
class SignalRow:
    """One signal as the report lists it, with its state and measures as of the reported run.

    ``event`` is the event as people name it (group label or PT); ``event_key`` the registry's key (group name or
    normalised PT), by which signals are grouped into findings. ``note``: what happened to it, when a section
    lists it for a change (the audit trail's reason).
    """

    id: int
    product: str
    event: str
    level: str
    status: str
    priority: float
    first_detected: dt.date | None
    measures: dict[str, float | None]
    labelled: dict[str, bool] = field(default_factory=dict)
    label_update_recommended: bool = False
    change: str | None = None  # the kind of change a "since the last report" section lists it for
    event_key: str = ""
    new_cases: float | None = None  # cases added since the previous evaluated run
    flag_jurisdictions: tuple[str, ...] = ()
    escalated: bool = False
    meets_rules: bool | None = None
    note: str = ""


#: A finding (:mod:`pv.signals.findings`): a product's PT, group and parent-group signals, head first.
FindingRows = Finding[SignalRow]


@dataclass(frozen=True)
class TrendPoint:
    as_of: dt.date
    n: float | None
    eb05: float | None
    prr: float | None
    meets_rules: bool


@dataclass(frozen=True)
class Recommendation:
    """An outstanding "label update recommended" finding, with what a safety officer defends it with.

    ``flagged``: the members flagged; ``reason``: why the first of them was flagged (the audit trail);
    ``jurisdictions``: where the label does not cover it; ``trend``: the flagged member's measures in every
    evaluated run up to the report's; ``incidence``: the cohort cumulative incidence recorded as its evidence
    (None when there was none); ``new``: flagged since the last report.
    """

    finding: FindingRows
    flagged: tuple[SignalRow, ...]
    reason: str
    since: dt.date | None
    jurisdictions: tuple[str, ...]
    trend: tuple[TrendPoint, ...]
    incidence: dict[str, Any] | None
    new: bool


@dataclass(frozen=True)
class Decision:
    """A decision a person recorded on a signal in the period (an audit row with ``by`` not 'pv')."""

    at: dt.datetime
    by: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    signal: SignalRow


@dataclass(frozen=True)
class LabelChange:
    """A change to the label registry in the period: recorded by someone, or a recorded entry coming into
    force (``kind``: recorded | in force)."""

    kind: str
    date: dt.date
    product: str
    jurisdiction: str
    event: str
    section: str
    effective_date: dt.date
    by: str
    reason: str


@dataclass(frozen=True)
class OnsetRow:
    """Time to onset in spontaneous reports (days from therapy start to event) for one product and event."""

    product: str
    event: str
    level: str
    n: int
    n_excluded: int
    median: float | None
    q1: float | None
    q3: float | None
    shape: float | None
    shape_lower: float | None
    shape_upper: float | None


@dataclass(frozen=True)
class SinceLast:
    """What changed since the last report, each list grouped into findings (decisions and label changes are
    listed one by one)."""

    new: list[FindingRows] = field(default_factory=list)  # new findings not on the label somewhere
    new_labelled: list[FindingRows] = field(default_factory=list)  # new findings labelled wherever judged
    escalated: list[FindingRows] = field(default_factory=list)
    reopened: list[FindingRows] = field(default_factory=list)
    flags_withdrawn: list[FindingRows] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    label_changes: list[LabelChange] = field(default_factory=list)
    stopped_meeting_rules: list[FindingRows] = field(default_factory=list)
    new_cases: list[FindingRows] = field(default_factory=list)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    quarter: str | None
    sha256: str
    loaded_at: dt.datetime
    versions_loaded: int
    rows_quarantined: int


@dataclass(frozen=True)
class EventSection:
    """One event of interest: the figures and the case counts across products.

    forest: product, estimate, lower, upper, n (one row per product with at least one case).
    trend: quarter (period end date), product, value (cumulative EB05 or IC025 up to that quarter).
    cif: group, time, estimate, lower, upper (cohort cumulative incidence, empty when no cohort), in
    ``cif_time_unit`` (days for events of the first weeks, e.g. CRS and ICANS: config/report.yaml ``time_scale``).
    followup: group, time (each cohort patient's time to event, death or last follow-up, in the same unit): the
    end of follow-up of each curve and the numbers at risk beneath the figure.
    counts: product, cases, serious, non_serious, deaths (cases of the run, as of its date).
    onset: time to onset in spontaneous reports of the group, by product.
    """

    group: str
    label: str
    forest_measure: str
    forest: pd.DataFrame
    trend_measure: str
    trend: pd.DataFrame
    counts: pd.DataFrame
    cif: pd.DataFrame | None = None
    cif_time_unit: str = "years"
    followup: pd.DataFrame | None = None
    cif_window: float | None = None  # the time shown (config/report.yaml time_window); None: all follow-up
    onset: list[OnsetRow] = field(default_factory=list)


@dataclass(frozen=True)
class ReportData:
    as_of: dt.date
    run_id: int
    generated_at: dt.datetime
    config_hash: str
    previous_report_as_of: dt.date | None
    recommendations: list[Recommendation]  # page one: every outstanding label update recommendation
    since: SinceLast
    open_unlabelled: list[FindingRows]  # open findings unlabelled somewhere, not flagged
    labelled: list[FindingRows]  # open findings labelled wherever judged: known risks, still measured
    onset: list[OnsetRow]  # time to onset of the signals of the work (PT and group)
    open_signals: list[SignalRow]  # every open signal, by priority
    sections: list[EventSection]
    sources: list[SourceInfo]
    parameters: dict[str, object]
    rules: dict[str, object]
    totals: dict[str, int]
    products: tuple[str, ...] = ()  # the CAR-T products in dictionary order: one colour each, in every figure
    statuses_as_of_run: bool = False  # statuses replayed for an older run (not the live registry)
    title: str = "Weekly CAR-T safety signal report"
