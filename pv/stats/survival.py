"""Overall survival (Kaplan-Meier) and incidence rates per person-time with exact Poisson intervals.

- :func:`kaplan_meier`: lifelines' KaplanMeierFitter (Greenwood variance, log(-log) intervals), by group.
- :func:`incidence_rates`: events / person-time, per 100 person-years by default, with the exact (Garwood
  1936) Poisson interval ``[chi2(alpha/2; 2k) / 2, chi2(1 - alpha/2; 2k + 2) / 2] / PT`` (lower bound 0 when
  ``k = 0``).
- :func:`rate_ratios`: rate ratios between groups from a Poisson GLM with ``log(person-time)`` offset
  (statsmodels), Wald intervals and p-values, against a reference group.

Reference: Garwood F (1936) Fiducial limits for the Poisson distribution. Biometrika 28:437-442.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pv.errors import InputError
from pv.stats.checks import as_array, require_columns, sorted_levels, validate_time_event


def kaplan_meier(time: Any, died: Any, group: Any = None, times: Sequence[float] | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """Kaplan-Meier survival by group: group, time, survival, lower, upper (log(-log) interval).

    ``died`` is truthy for an event (death, or any event for "event-free survival"). Without ``times`` the
    rows are the group's distinct observed times (and 0); with ``times`` the right-continuous values there.
    """
    from lifelines import KaplanMeierFitter

    t, d = validate_time_event(time, died)
    observed = d.astype(bool)
    g = np.full(len(t), "all", dtype=object) if group is None else as_array(group, "group")
    frames = []
    for grp in sorted_levels(g):
        sel = g == grp
        kmf = KaplanMeierFitter(alpha=alpha).fit(t[sel], observed[sel])
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        grid = np.asarray(sf.index, dtype=float) if times is None else np.asarray(times, dtype=float)
        idx = np.searchsorted(np.asarray(sf.index, dtype=float), grid, side="right") - 1
        safe = np.clip(idx, 0, None)
        surv = np.where(idx >= 0, sf.to_numpy()[safe], 1.0)
        lower = np.where(idx >= 0, ci.iloc[:, 0].to_numpy()[safe], 1.0)
        upper = np.where(idx >= 0, ci.iloc[:, 1].to_numpy()[safe], 1.0)
        beyond = grid > t[sel].max()
        frames.append(pd.DataFrame({
            "group": grp, "time": grid,
            "survival": np.where(beyond, np.nan, surv),
            "lower": np.where(beyond, np.nan, lower),
            "upper": np.where(beyond, np.nan, upper),
        }))
    return pd.concat(frames, ignore_index=True)


def garwood_interval(events: Any, person_time: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Exact Poisson (Garwood) interval for the rate events / person_time."""
    k = np.asarray(events, dtype=float)
    pt = np.asarray(person_time, dtype=float)
    lower = np.where(k > 0, sps.chi2.ppf(alpha / 2, 2 * np.maximum(k, 1)) / 2, 0.0) / pt
    upper = sps.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2 / pt
    return lower, upper


def incidence_rates(data: pd.DataFrame, events: str, person_years: str, group: str | None = None,
                    per: float = 100.0, alpha: float = 0.05) -> pd.DataFrame:
    """Incidence rate per ``per`` person-years by group: group, events, person_years, rate, lower, upper.

    ``data`` has one row per subject (or per stratum cell): the event count column and the person-years
    column.
    """
    require_columns(data, [events, person_years] + ([group] if group else []))
    py = data[person_years].astype(float)
    if (py < 0).any() or py.isna().any():
        raise InputError("person-years must be non-negative and present", field=person_years)
    keys = data[group] if group else pd.Series("all", index=data.index)
    agg = (pd.DataFrame({"group": keys, "events": data[events].astype(float), "person_years": py})
           .groupby("group", sort=True).sum().reset_index())
    if (agg["person_years"] <= 0).any():
        bad = agg.loc[agg["person_years"] <= 0, "group"].iloc[0]
        raise InputError(f"group {bad!r} has no person-time", field=person_years)
    lower, upper = garwood_interval(agg["events"], agg["person_years"], alpha)
    agg["events"] = agg["events"].astype(int)
    agg["rate"] = agg["events"] / agg["person_years"] * per
    agg["lower"] = lower * per
    agg["upper"] = upper * per
    return agg


def rate_ratios(data: pd.DataFrame, events: str, person_years: str, group: str, reference: Any = None,
                alpha: float = 0.05) -> pd.DataFrame:
    """Rate ratios of each group against ``reference`` (default: first sorted level) by Poisson regression.

    Returns group, rate_ratio, lower, upper, p_value (Wald), one row per non-reference group.
    """
    import statsmodels.api as sm

    agg = incidence_rates(data, events, person_years, group, per=1.0, alpha=alpha)
    levels = list(agg["group"])
    ref = levels[0] if reference is None else reference
    if ref not in levels:
        raise InputError(f"reference group {ref!r} not in the data", field=group)
    others = [g for g in levels if g != ref]
    if not others:
        return pd.DataFrame(columns=["group", "rate_ratio", "lower", "upper", "p_value"])
    x = np.column_stack([np.ones(len(agg))] + [(agg["group"] == g).to_numpy(float) for g in others])
    model = sm.GLM(agg["events"].to_numpy(float), x, family=sm.families.Poisson(),
                   offset=np.log(agg["person_years"].to_numpy(float)))
    with warnings.catch_warnings():
        # the model is saturated (one row per group), which statsmodels flags as "perfect prediction"
        warnings.filterwarnings("ignore", message=".*[Pp]erfect.*")
        res = model.fit()
    ci = np.asarray(res.conf_int(alpha=alpha))
    params = np.asarray(res.params)
    pvalues = np.asarray(res.pvalues)
    return pd.DataFrame({
        "group": others,
        "rate_ratio": np.exp(params[1:]),
        "lower": np.exp(ci[1:, 0]),
        "upper": np.exp(ci[1:, 1]),
        "p_value": pvalues[1:],
    })
