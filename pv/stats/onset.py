"""Time to onset in spontaneous reports: days from therapy start to event, by product and event.

Input: one row per (report, product, event) with ``start_date`` (THER start_dt / Drug.start_date) and
``event_date``. Onset = ``event_date - start_date`` in days; rows with a missing date or an event before the
start are excluded (and counted). Per product-event: the number of usable reports, median and quartiles, and
the Weibull shape parameter ``k`` fitted by maximum likelihood (lifelines' WeibullFitter, whose ``rho_`` is
the shape and ``lambda_`` the scale) with its Wald interval (lifelines' summary). ``k < 1`` means a hazard
that falls with time (early onset: CRS, ICANS); ``k > 1`` a hazard that rises (late onset, e.g. secondary
malignancies); an interval excluding 1 is the usual criterion (Cornelius et al. 2012, Drug Saf
35:599-610). Onsets on day 0 are set to 0.5 day for the Weibull fit only (its density needs
positive times).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pv.stats.checks import require_columns

ZERO_DAY = 0.5
ONSET_COLUMNS = ["product", "event", "n", "n_excluded", "median_days", "q1_days", "q3_days",
                 "weibull_shape", "shape_lower", "shape_upper", "weibull_scale"]


def onset_days(data: pd.DataFrame) -> pd.Series:
    """Days from ``start_date`` to ``event_date`` (NaN when either is missing)."""
    require_columns(data, ("start_date", "event_date"))
    start = pd.to_datetime(data["start_date"], errors="coerce")
    end = pd.to_datetime(data["event_date"], errors="coerce")
    return (end - start).dt.days.astype(float)


def weibull_shape(days: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(shape, lower, upper, scale) of a Weibull fitted by ML to onset days; NaNs when it cannot be fitted."""
    from lifelines import WeibullFitter

    x = np.asarray(days, dtype=float)
    x = np.where(x <= 0, ZERO_DAY, x)
    if len(x) < 3 or np.unique(x).size < 2:
        return (np.nan, np.nan, np.nan, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wf = WeibullFitter(alpha=alpha).fit(x)
        except Exception:  # lifelines raises its own convergence errors
            return (np.nan, np.nan, np.nan, np.nan)
    row = wf.summary.loc["rho_"]
    lower = float(row.filter(like="lower").iloc[0])
    upper = float(row.filter(like="upper").iloc[0])
    return (float(wf.rho_), lower, upper, float(wf.lambda_))


def time_to_onset(data: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Time-to-onset summary per product and event (columns: :data:`ONSET_COLUMNS`).

    ``data`` columns: product, event, start_date, event_date (dates or ISO strings).
    """
    require_columns(data, ("product", "event"))
    frame = data[["product", "event"]].copy()
    frame["days"] = onset_days(data)
    rows = []
    for (product, event), part in frame.groupby(["product", "event"], sort=True):
        days = part["days"].to_numpy(float)
        ok = np.isfinite(days) & (days >= 0)
        use = days[ok]
        row: dict[str, object] = {"product": product, "event": event, "n": int(ok.sum()),
                                  "n_excluded": int((~ok).sum())}
        if len(use):
            q1, med, q3 = np.percentile(use, [25, 50, 75])
            row.update(median_days=float(med), q1_days=float(q1), q3_days=float(q3))
        else:
            row.update(median_days=np.nan, q1_days=np.nan, q3_days=np.nan)
        shape, lo, hi, scale = weibull_shape(use, alpha)
        row.update(weibull_shape=shape, shape_lower=lo, shape_upper=hi, weibull_scale=scale)
        rows.append(row)
    return pd.DataFrame(rows, columns=ONSET_COLUMNS)
