"""Pure statistics: DataFrames and arrays in, DataFrames and frozen dataclasses out (see docs/methods.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import pandas as pd

from pv.stats.background import ROLE_CHOICES, select_background
from pv.stats.counts import COUNT_COLUMNS, count_table, event_group_rows
from pv.stats.disproportionality import (
    MEASURES,
    fisher_greater,
    ic_table,
    measures,
    prr_table,
    ror_table,
)
from pv.stats.mgps import DEFAULT_STARTS, MGPS, Hyperparameters, ebgm_scores, log_likelihood

__all__ = [
    "COUNT_COLUMNS", "DEFAULT_STARTS", "MEASURES", "MGPS", "RESULT_COLUMNS", "ROLE_CHOICES",
    "Hyperparameters", "count_table", "disproportionality", "ebgm_scores", "event_group_rows",
    "fisher_greater", "ic_table", "log_likelihood", "measures", "prr_table", "ror_table", "select_background",
]

#: The leading columns of :func:`disproportionality`, in order; more columns follow them.
RESULT_COLUMNS = ["product", "event", "n", "expected", *MEASURES]


@overload
def disproportionality(rows: pd.DataFrame, *, id_col: str = ..., product_col: str = ..., event_col: str = ...,
                       strata: Sequence[str] | str | None = ..., min_count: int = ..., fisher: bool = ...,
                       model: MGPS | None = ..., ic_interval: Literal["gamma", "approx"] = ...,
                       return_model: Literal[False] = ...) -> pd.DataFrame: ...


@overload
def disproportionality(rows: pd.DataFrame, *, id_col: str = ..., product_col: str = ..., event_col: str = ...,
                       strata: Sequence[str] | str | None = ..., min_count: int = ..., fisher: bool = ...,
                       model: MGPS | None = ..., ic_interval: Literal["gamma", "approx"] = ...,
                       return_model: Literal[True]) -> tuple[pd.DataFrame, MGPS]: ...


def disproportionality(rows: pd.DataFrame, *, id_col: str = "id", product_col: str = "product",
                       event_col: str = "event", strata: Sequence[str] | str | None = None,
                       min_count: int = 1, fisher: bool = False, model: MGPS | None = None,
                       ic_interval: Literal["gamma", "approx"] = "gamma",
                       return_model: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, MGPS]:
    """Every measure for every product x event pair of case-level ``rows``, in one call.

    Columns: ``RESULT_COLUMNS`` first, then the other count and flag columns (n_product, n_event, n_total,
    b, c, d, prr_signal, ror_signal, ic_signal, ebgm_signal = EB05 >= 2, and fisher_p when asked).
    The MGPS prior is fitted on all pairs (n >= 1) whatever ``min_count``; ``min_count`` only drops rows of
    the result with fewer cases. ``model`` is an unfitted MGPS to fit with other settings, or a fitted one
    (e.g. ``MGPS.from_hyperparameters(h)``) to score only. The fitted hyperparameters and log-likelihood are
    also in ``result.attrs``.
    """
    counts = count_table(rows, id_col=id_col, product_col=product_col, event_col=event_col, strata=strata)
    table = measures(counts, fisher=fisher, ic_interval=ic_interval)
    mgps = model if model is not None else MGPS()
    if not hasattr(mgps, "hyperparameters_"):
        mgps.fit(counts)
    table = mgps.score(table)
    table["ebgm_signal"] = table["eb05"] >= 2.0
    if min_count > 1:
        table = table.loc[table["n"] >= min_count].reset_index(drop=True)
    rest = [c for c in table.columns if c not in RESULT_COLUMNS]
    table = table[RESULT_COLUMNS + rest]
    table.attrs["hyperparameters"] = mgps.hyperparameters_.to_dict()
    table.attrs["loglik"] = mgps.loglik_
    table.attrs["converged"] = mgps.converged_
    table.attrs["strata"] = list(counts.attrs.get("strata", []))
    return (table, mgps) if return_model else table
