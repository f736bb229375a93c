"""The tables of a run and how they are read: scratch counts, results and trend.

``run_counts`` holds the count tables of a run while it is computed (scratch, emptied when it succeeds);
``run_results`` every measure of every pair; ``run_trend`` the cumulative counts and measures by quarter end
of the pairs of interest. The column lists here are the one definition of each table's columns as the
analysis writes and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from pv.db.bulk import read_frame
from pv.stats import MEASURES

#: The values of one pair in a run's results: cases, expected cases, the eleven measures, serious cases, deaths.
PAIR_VALUES: tuple[str, ...] = ("n", "expected", *MEASURES, "n_serious", "n_deaths")
#: (level, stratified, product, event) identify a pair's row in a run's results.
PAIR_KEYS: tuple[str, ...] = ("level", "stratified", "product", "event")

COUNT_COLUMNS: tuple[str, ...] = ("shard", *PAIR_KEYS, "n", "n_product", "n_event", "n_total", "expected",
                                  "n_serious", "n_deaths")
RESULT_COLUMNS: tuple[str, ...] = ("shard", *PAIR_KEYS, *PAIR_VALUES)
TREND_COLUMNS: tuple[str, ...] = ("level", "product", "event", "period_end", "n", "n_product", "n_event",
                                  "n_total", "expected", *MEASURES)

_TEXT = {"product": "str", "event": "str", "level": "str"}
_PAIR_ORDER = "level, stratified, product, event"


def _where(filters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """SQL conditions (AND ...) and parameters for equality filters and ``products`` (a list)."""
    sql, params = "", dict[str, Any]()
    for col, value in filters.items():
        if value is None:
            continue
        if col == "products":
            names = [f"p{i}" for i in range(len(value))]
            sql += f" AND product IN ({', '.join(':' + n for n in names)})" if names else " AND FALSE"
            params.update(zip(names, value, strict=True))
        else:
            sql += f" AND {col} = :{col}"
            params[col] = value
    return sql, params


def _as_bool(v: object) -> bool:
    if isinstance(v, str):
        return v.lower() in ("t", "true", "1")
    return bool(v)


def _read(session: Session, table: str, columns: Sequence[str], order: str, run_id: int,
          filters: dict[str, Any]) -> pd.DataFrame:
    where, params = _where(filters)
    frame = read_frame(
        session, f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = :run_id{where} ORDER BY {order}",
        {"run_id": run_id, **params}, dtypes=_TEXT,
    )
    if "stratified" in frame.columns:
        frame["stratified"] = frame["stratified"].map(_as_bool).astype(bool)
    return frame


def read_counts(session: Session, run_id: int, *, level: str | None = None, stratified: bool | None = None,
                shard: int | None = None) -> pd.DataFrame:
    """A run's scratch count tables with the 2x2 cells b, c, d, ordered by (level, stratified, product, event)."""
    frame = _read(session, "run_counts", COUNT_COLUMNS, _PAIR_ORDER, run_id,
                  {"level": level, "stratified": stratified, "shard": shard})
    for col in ("n", "n_product", "n_event", "n_total", "n_serious", "n_deaths", "shard"):
        frame[col] = frame[col].astype("int64")
    frame["expected"] = frame["expected"].astype("float64")
    frame["b"] = frame["n_product"] - frame["n"]
    frame["c"] = frame["n_event"] - frame["n"]
    frame["d"] = frame["n_total"] - frame["n_product"] - frame["n_event"] + frame["n"]
    return frame


def results_frame(session: Session, run_id: int, *, level: str | None = None, stratified: bool | None = None,
                  event: str | None = None, products: Sequence[str] | None = None) -> pd.DataFrame:
    """A run's results, one row per (level, stratified, product, event) in that order, optionally filtered."""
    return _read(session, "run_results", (*PAIR_KEYS, *PAIR_VALUES), _PAIR_ORDER, run_id,
                 {"level": level, "stratified": stratified, "event": event, "products": products})


def read_trend(session: Session, run_id: int, *, level: str | None = None, event: str | None = None,
               products: Sequence[str] | None = None) -> pd.DataFrame:
    """A run's trend, ordered by (level, product, event, period_end), optionally filtered."""
    return _read(session, "run_trend", TREND_COLUMNS, "level, product, event, period_end", run_id,
                 {"level": level, "event": event, "products": products})
