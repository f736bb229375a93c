"""Pure statistics: DataFrames and arrays in, DataFrames and frozen dataclasses out (see docs/methods.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
import pandas as pd

from pv.errors import ConvergenceError
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
from pv.stats.mgps import (
    DEFAULT_STARTS,
    EBGM_WITHHELD,
    MGPS,
    MIN_PAIRS,
    QUANTILE_FAILURES,
    Hyperparameters,
    ebgm_scores,
    log_likelihood,
)

__all__ = [
    "COUNT_COLUMNS", "DEFAULT_STARTS", "EBGM_WITHHELD", "MEASURES", "MGPS", "MIN_PAIRS", "QUANTILE_FAILURES",
    "RESULT_COLUMNS", "ROLE_CHOICES",
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
    (e.g. ``MGPS.from_hyperparameters(h)``) to score only.

    EBGM, EB05 and EB95 are withheld (empty, and ``ebgm_signal`` False) when the table has fewer than
    ``MIN_PAIRS`` pairs, when the fit does not converge or when its prior is degenerate (on the edge of the
    parameter space); the other measures are always given. ``result.attrs`` says what happened:
    ``hyperparameters`` (None when nothing was fitted), ``loglik``, ``converged``, ``at_bound``, ``reason`` (why
    EBGM is withheld, else None), ``quantiles_not_converged`` (pairs with empty EB05/EB95 only) and ``strata``.
    With ``return_model`` the model comes back too (unfitted when the table was too small to fit).
    """
    counts = count_table(rows, id_col=id_col, product_col=product_col, event_col=event_col, strata=strata)
    table = measures(counts, fisher=fisher, ic_interval=ic_interval)
    mgps = model if model is not None else MGPS()
    reason: str | None = None
    if not hasattr(mgps, "hyperparameters_"):
        fitted = int((counts["n"] >= 1).sum()) if mgps.truncated else len(counts)
        if fitted < MIN_PAIRS:
            reason = f"MGPS needs at least {MIN_PAIRS} pairs to fit its 5 hyperparameters, the table has {fitted}"
        else:
            try:
                mgps.fit(counts)
            except ConvergenceError as exc:
                reason = str(exc)
    if reason is None:
        table = mgps.score(table)
        reason = table.attrs.get(EBGM_WITHHELD)
        failures = int(table.attrs.get(QUANTILE_FAILURES, 0))
    else:
        table = table.assign(ebgm=np.nan, eb05=np.nan, eb95=np.nan)
        failures = 0
    table["ebgm_signal"] = table["eb05"] >= 2.0
    if min_count > 1:
        table = table.loc[table["n"] >= min_count].reset_index(drop=True)
    rest = [c for c in table.columns if c not in RESULT_COLUMNS]
    table = table[RESULT_COLUMNS + rest]
    fitted_model = hasattr(mgps, "hyperparameters_")
    table.attrs = {
        "hyperparameters": mgps.hyperparameters_.to_dict() if fitted_model else None,
        "loglik": mgps.loglik_ if fitted_model else math.nan,
        "converged": bool(mgps.converged_) if fitted_model else False,
        "at_bound": bool(mgps.at_bound_) if fitted_model else False,
        "reason": reason,
        QUANTILE_FAILURES: failures,
        "strata": list(counts.attrs.get("strata", [])),
    }
    return (table, mgps) if return_model else table
