"""What the weekly report shows, as plain data: built from the store by pv.report.build, rendered by
pv.report.render. Keeping the two apart lets the rendering be tested on hand-made data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

JURISDICTIONS = ("FDA", "NMPA", "EMA")


@dataclass(frozen=True)
class SignalRow:
    """One signal as the report lists it, with the measures of the reported run."""

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
    change: str | None = None  # opened / escalated / label_update_recommended / reopened / label_update_withdrawn


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
    cif: group, time, estimate, lower, upper (cohort cumulative incidence, empty when no cohort).
    counts: product, cases, serious, non_serious, deaths (cases of the run, as of its date).
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


@dataclass(frozen=True)
class ReportData:
    as_of: dt.date
    run_id: int
    generated_at: dt.datetime
    config_hash: str
    previous_report_as_of: dt.date | None
    headline: dict[str, list[SignalRow]]  # change kind -> signals
    open_signals: list[SignalRow]
    sections: list[EventSection]
    sources: list[SourceInfo]
    parameters: dict[str, object]
    rules: dict[str, object]
    totals: dict[str, int]
    title: str = "Weekly CAR-T safety signal report"
