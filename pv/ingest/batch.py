"""The parsed form of one source file, shared by every loader (FAERS, AERS, E2B, CSV).

A parser turns a file into a :class:`Batch` of DataFrames with the columns below (missing values as None/NaT;
text columns may also be pandas Arrow strings, ``pd.StringDtype("pyarrow")``, with pd.NA for missing values,
as the FAERS parser produces them to save two conversions of every string);
:func:`pv.ingest.store.load_batch` writes a Batch into the case store, applying deduplication and deletions.
Dates are ``datetime.date`` or None. ``report_id`` identifies a version within its case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

VERSION_COLUMNS = [
    "case_key", "report_id", "version", "initial_or_followup", "received_date", "initial_received_date",
    "event_date", "age_years", "age_group", "sex", "weight_kg", "reporter_country", "occurrence_country",
    "report_type", "outcomes",  # outcomes: list of FAERS outc_cod codes (DE LT HO DS CA RI OT)
]
DRUG_COLUMNS = [
    "case_key", "report_id", "seq", "role", "drugname", "active_ingredient", "route", "dose_text",
    "start_date", "end_date",
]
REACTION_COLUMNS = ["case_key", "report_id", "pt_verbatim", "meddra_code", "outcome"]
INDICATION_COLUMNS = ["case_key", "report_id", "drug_seq", "term"]
QUARANTINE_COLUMNS = ["file", "line", "field", "raw", "reason"]
SOURCES = ("faers", "aers", "e2b", "csv")  # Batch.kind: the source of every stored version

#: The longest identifiers the case store holds (case_versions.case_key and report_id). An E2B(R3) C.1.8.1 has at
#: most 100 characters and a C.1.1 at most 100, stored with "#" and the 14 digits of C.1.2. A longer identifier is
#: quarantined with its whole report, never cut.
MAX_CASE_KEY = 100
MAX_REPORT_ID = 120


def latest_possible_date() -> dt.date:
    """The latest receipt date a report can have: tomorrow in UTC (a sender east of UTC may be a day ahead). A
    later receipt date is a typing or system error; its report is quarantined."""
    return dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class Batch:
    """One source file parsed: versions, their drugs, reactions, indications; deletions; quarantined rows."""

    kind: str  # faers, aers, e2b, csv
    name: str  # file name as given by the user
    sha256: str
    quarter: str | None = None
    versions: pd.DataFrame = field(default_factory=lambda: _empty(VERSION_COLUMNS))
    drugs: pd.DataFrame = field(default_factory=lambda: _empty(DRUG_COLUMNS))
    reactions: pd.DataFrame = field(default_factory=lambda: _empty(REACTION_COLUMNS))
    indications: pd.DataFrame = field(default_factory=lambda: _empty(INDICATION_COLUMNS))
    deleted_case_keys: list[str] = field(default_factory=list)
    quarantine: pd.DataFrame = field(default_factory=lambda: _empty(QUARANTINE_COLUMNS))
    rows_read: int = 0
