"""Cumulative incidence with competing risks: the Aalen-Johansen estimator and cmprsk's variance.

For one group of ``n`` subjects with distinct observed times ``t_1 < t_2 < ...``, ``Y_j`` at risk just before
``t_j`` (everyone with time >= ``t_j``: censorings tied with events are counted after the events, as in
cmprsk), ``d_kj`` events of type ``k`` and ``d_j`` events of any type at ``t_j``:

    S(t_j)   = prod_{i <= j} (1 - d_i / Y_i)                     (Kaplan-Meier, any event)
    F_k(t)   = sum_{t_j <= t} S(t_j-) d_kj / Y_j                  (Aalen-Johansen cumulative incidence)

The variance is the one computed by R's ``cmprsk::cuminc`` (Fortran routine ``cinc``; Gray's delta-method
formula with a correction for tied events): with ``S = S(t_j-)``, ``S' = S(t_j)``, ``F = F_k(t_j)`` and
``c(m) = 1 - (m - 1)/(Y_j - 1)`` for ``m > 1`` tied events (1 otherwise), at each event time

    other events (m = d_j - d_kj > 0, S' > 0):  w = S^2 c(m) m / Y_j^2,  a = F/S',   b = 1/S'
    events of type k (m = d_kj > 0):           w = S^2 c(m) m / Y_j^2,  a = 1 + F/S', b = 1/S' (0 if S' = 0)
    v1 += a^2 w,  v2 += a b w,  v3 += b^2 w

and ``Var F_k(t_j) = v1 + F^2 v3 - 2 F v2`` is recorded at the times with events of type ``k`` (it stays
constant in between, exactly as cmprsk reports it). Estimates are right-continuous step functions: at a
requested time ``t`` the value is the one at the last event time ``<= t``; beyond the largest observed time
of the group (event or censoring) and before 0 the estimate is undefined (NaN), as ``cmprsk::timepoints``
returns NA.

Pointwise 95% intervals (cmprsk computes none): ``conf_type="log-log"`` (default) transforms with
``g = log(-log F)``, ``se(g) = se(F) / |F log F|``, giving ``[F^exp(+z se(g)), F^exp(-z se(g))]`` (Pintilie
2006; Choudhury 2002), always inside [0, 1]; ``conf_type="plain"`` is ``F -/+ z se(F)`` clipped to [0, 1].
Where ``F`` is 0 or 1 or the variance is 0 the interval collapses to the estimate.

References: Aalen & Johansen (1978) Scand J Stat 5:141-150; Kalbfleisch & Prentice (1980); Gray (1988) Ann
Stat 16:1141-1154 (variance); cmprsk by R. Gray (CRAN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pv.errors import InputError
from pv.stats.checks import as_code, event_codes, group_values, sorted_levels, validate_time_event
from pv.stats.gray import GRAY_COLUMNS, gray_test

CONF_TYPES = ("log-log", "plain")


def _check_conf_type(conf_type: str) -> None:
    if conf_type not in CONF_TYPES:
        raise InputError(f"unknown conf_type {conf_type!r}; use one of {', '.join(CONF_TYPES)}",
                         field="conf_type")


def aalen_johansen(time: np.ndarray, event: np.ndarray, causes: Sequence[Any],
                   censored: Any = 0) -> dict[Any, pd.DataFrame]:
    """Aalen-Johansen estimates and cmprsk variances for one group, every cause at once (vectorised).

    Returns, per cause, a DataFrame with one row per distinct time with events of that cause: ``time``,
    ``estimate`` (value from that time on), ``variance``, ``n_risk``, ``n_event`` (events of that cause),
    ``n_any`` (events of any type).
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event)
    n = len(t)
    uniq, inverse = np.unique(t, return_inverse=True)
    m = len(uniq)
    is_event = e != censored
    d_any = np.bincount(inverse[is_event], minlength=m).astype(float)
    n_obs = np.bincount(inverse, minlength=m).astype(float)
    at_risk = n - np.concatenate(([0.0], np.cumsum(n_obs)[:-1]))
    surv = np.cumprod(1.0 - d_any / at_risk)  # S(t_j)
    surv_minus = np.concatenate(([1.0], surv[:-1]))  # S(t_j-)
    has_event = d_any > 0
    inv_surv = np.divide(1.0, surv, out=np.zeros(m), where=surv > 0)

    def tie_factor(k: np.ndarray) -> np.ndarray:
        denom = np.where(at_risk > 1, at_risk - 1.0, 1.0)
        return np.where(k > 1, 1.0 - (k - 1.0) / denom, 1.0)

    out: dict[Any, pd.DataFrame] = {}
    for cause in causes:
        d_k = np.bincount(inverse[e == cause], minlength=m).astype(float)
        d_o = d_any - d_k
        cif = np.cumsum(surv_minus * d_k / at_risk)
        w_other = np.where((d_o > 0) & (surv > 0), surv_minus**2 * tie_factor(d_o) * d_o / at_risk**2, 0.0)
        a_other = cif * inv_surv
        w_k = np.where(d_k > 0, surv_minus**2 * tie_factor(d_k) * d_k / at_risk**2, 0.0)
        a_k = 1.0 + cif * inv_surv
        v1 = np.cumsum(a_other**2 * w_other + a_k**2 * w_k)
        v2 = np.cumsum(inv_surv * a_other * w_other + inv_surv * a_k * w_k)
        v3 = np.cumsum(inv_surv**2 * (w_other + w_k))
        var = v1 + cif**2 * v3 - 2.0 * cif * v2
        jumps = (d_k > 0) & has_event
        out[cause] = pd.DataFrame({
            "time": uniq[jumps],
            "estimate": cif[jumps],
            "variance": var[jumps],
            "n_risk": at_risk[jumps].astype(int),
            "n_event": d_k[jumps].astype(int),
            "n_any": d_any[jumps].astype(int),
        })
    return out


def confidence_interval(estimate: np.ndarray, variance: np.ndarray, alpha: float = 0.05,
                        conf_type: str = "log-log") -> tuple[np.ndarray, np.ndarray]:
    """Pointwise (1 - alpha) interval for cumulative incidence estimates (see the module docstring)."""
    _check_conf_type(conf_type)
    f = np.asarray(estimate, dtype=float)
    se = np.sqrt(np.clip(np.asarray(variance, dtype=float), 0.0, None))
    z = sps.norm.ppf(1 - alpha / 2)
    if conf_type == "plain":
        lower = np.clip(f - z * se, 0.0, 1.0)
        upper = np.clip(f + z * se, 0.0, 1.0)
    else:
        ok = (f > 0) & (f < 1) & (se > 0)
        fs = np.where(ok, f, 0.5)
        se_g = np.where(ok, se / np.abs(fs * np.log(fs)), 0.0)
        lower = np.where(ok, fs ** np.exp(z * se_g), f)
        upper = np.where(ok, fs ** np.exp(-z * se_g), f)
    nan = np.isnan(f)
    return np.where(nan, np.nan, lower), np.where(nan, np.nan, upper)


class CumulativeIncidence:
    """Aalen-Johansen cumulative incidence by group with competing risks, variances as in ``cmprsk::cuminc``.

    Parameters: ``censored`` (the event value meaning censored; every other value is an event type),
    ``alpha`` (1 - confidence level), ``conf_type`` ("log-log" or "plain"), ``rho`` (Gray's test weight
    power).

    After :meth:`fit`: ``groups_``, ``events_`` (event types, sorted), ``curves_`` (DataFrame: group, event,
    time, estimate, variance, n_risk, n_event, n_any: one row per time with an event of that type, plus a
    first row at time 0 with estimate 0 when no such event happens at 0), ``max_time_`` (largest observed time
    per group), ``n_`` (subjects per group), ``gray_test_`` (DataFrame event, statistic, df, p_value, reason; empty
    with a single group).
    """

    def __init__(self, censored: Any = 0, alpha: float = 0.05, conf_type: str = "log-log",
                 rho: float = 0.0) -> None:
        _check_conf_type(conf_type)
        if not 0 < alpha < 1:
            raise InputError("alpha must be between 0 and 1", field="alpha")
        self.censored = censored
        self.alpha = alpha
        self.conf_type = conf_type
        self.rho = rho

    def fit(self, time: Any, event: Any, group: Any = None, strata: Any = None,
            events: Sequence[Any] | None = None) -> CumulativeIncidence:
        """Cumulative incidence of every event type in every group (and Gray's test if > 1 group).

        ``events`` lists the event types to report (default: every non-censored value observed); a listed type
        that never occurs gets a curve that stays at 0. Every non-censored value still counts as an event (a
        competing one when not listed). ``strata`` only stratifies Gray's test, as in cmprsk. Codes are compared
        as the type of the event values (:func:`pv.stats.checks.event_codes`: ``1``, ``1.0`` and ``"1"`` are
        one code when every value is a number; text exactly otherwise); ``events_`` holds them in that type.
        A missing group value is an error: leave such rows out first.
        """
        t, e = validate_time_event(time, event)
        e = event_codes(e)
        censored = as_code(self.censored, e, "censored")
        g = group_values(group, len(t), "group")
        self.groups_ = sorted_levels(g)
        if events is not None:
            self.events_ = list(dict.fromkeys(as_code(c, e, "events") for c in events))
            if censored in self.events_:
                raise InputError(f"event {self.censored!r} is the censoring value", field="events")
        else:
            self.events_ = sorted_levels(e[e != censored]) if np.any(e != censored) else []
        frames = []
        self.max_time_: dict[Any, float] = {}
        self.n_: dict[Any, int] = {}
        for grp in self.groups_:
            sel = g == grp
            self.max_time_[grp] = float(t[sel].max())
            self.n_[grp] = int(sel.sum())
            per_cause = aalen_johansen(t[sel], e[sel], self.events_, censored)
            for cause, df in per_cause.items():
                if len(df) == 0 or df["time"].iloc[0] > 0:
                    start = pd.DataFrame({"time": [0.0], "estimate": [0.0], "variance": [0.0],
                                          "n_risk": [self.n_[grp]], "n_event": [0], "n_any": [0]})
                    df = start if len(df) == 0 else pd.concat([start, df], ignore_index=True)
                df.insert(0, "event", cause)
                df.insert(0, "group", grp)
                frames.append(df)
        cols = ["group", "event", "time", "estimate", "variance", "n_risk", "n_event", "n_any"]
        self.curves_ = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
        if len(self.groups_) > 1 and self.events_:
            self.gray_test_ = gray_test(t, e, g, strata=strata, rho=self.rho, censored=censored,
                                        events=self.events_)
        else:
            self.gray_test_ = pd.DataFrame(columns=GRAY_COLUMNS)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "curves_"):
            raise InputError("CumulativeIncidence is not fitted: call fit() first")

    @property
    def summary(self) -> pd.DataFrame:
        """The step points (``curves_``) with standard error and pointwise interval."""
        self._check_fitted()
        df = self.curves_.copy()
        df["se"] = np.sqrt(df["variance"].astype(float))
        df["lower"], df["upper"] = confidence_interval(df["estimate"].to_numpy(float),
                                                       df["variance"].to_numpy(float), self.alpha,
                                                       self.conf_type)
        return df

    def predict(self, times: Sequence[float] | np.ndarray) -> pd.DataFrame:
        """Estimates at the requested times (right-continuous steps): group, event, time, estimate, variance,
        lower, upper. NaN before 0 and beyond the group's largest observed time."""
        self._check_fitted()
        tp = np.asarray(times, dtype=float)
        rows = []
        for (grp, cause), df in self.curves_.groupby(["group", "event"], sort=False):
            jt = df["time"].to_numpy(float)
            idx = np.searchsorted(jt, tp, side="right") - 1
            est = np.where(idx >= 0, df["estimate"].to_numpy(float)[np.clip(idx, 0, None)], 0.0)
            var = np.where(idx >= 0, df["variance"].to_numpy(float)[np.clip(idx, 0, None)], 0.0)
            outside = (tp < 0) | (tp > self.max_time_[grp])
            est = np.where(outside, np.nan, est)
            var = np.where(outside, np.nan, var)
            lower, upper = confidence_interval(est, var, self.alpha, self.conf_type)
            rows.append(pd.DataFrame({"group": grp, "event": cause, "time": tp, "estimate": est,
                                      "variance": var, "lower": lower, "upper": upper}))
        if not rows:
            return pd.DataFrame(columns=["group", "event", "time", "estimate", "variance", "lower", "upper"])
        return pd.concat(rows, ignore_index=True)
