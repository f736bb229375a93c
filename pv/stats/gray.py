"""Gray's K-sample test for equality of cumulative incidence functions (Gray 1988), as R's ``cmprsk::crstm``.

For the cause of interest, each group ``g`` gets a score that compares its subdistribution hazard with the
pooled one, weighted by ``W(t) = (1 - F(t-))^rho`` (``rho = 0`` by default; ``F`` is the pooled cumulative
incidence):

    z_g = sum_t W(t) [d_1g(t) - d_1(t) R_g(t) / sum_r R_r(t)],   R_g(t) = Y_g(t) (1 - F_g(t-)) / S_g(t-)

``Y_g`` is the number at risk, ``S_g`` the Kaplan-Meier survival of any event and ``F_g`` the cumulative
incidence of the cause in group ``g``. The variance of the first ``K - 1`` scores is Gray's estimator (ties
corrected as in cmprsk); the statistic ``z' V^-1 z`` is chi-square with ``K - 1`` degrees of freedom. With
strata, scores and variances are summed over strata. When the test is undefined the statistic is NaN and
``reason`` says why: one group only, no events of the cause, a group with no subject at risk at the times of
the cause's events (e.g. everyone censored before the first event), or otherwise a singular variance.

Reference: Gray RJ (1988) A class of K-sample tests for comparing the cumulative incidence of a competing
risk. Ann Stat 16:1141-1154. The arithmetic follows cmprsk's Fortran so that results agree to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pv.stats.checks import as_code, event_codes, group_values, sorted_levels, validate_time_event

GRAY_COLUMNS = ["event", "statistic", "df", "p_value", "reason"]


def _crst(y: np.ndarray, m: np.ndarray, ig: np.ndarray, ng: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Score and variance for one stratum. y sorted; m: 0 censored, 1 cause, 2 other; ig: 0..ng-1."""
    ng1 = ng - 1
    n = len(y)
    rs = np.bincount(ig, minlength=ng).astype(float)
    s = np.zeros(ng1)
    v = np.zeros((ng1, ng1))
    f1m = np.zeros(ng)
    f1 = np.zeros(ng)
    skmm = np.ones(ng)
    skm = np.ones(ng)
    v3 = np.zeros(ng)
    v2 = np.zeros((ng1, ng))
    c = np.zeros((ng, ng))
    fm = 0.0
    f = 0.0
    uniq, starts = np.unique(y, return_index=True)
    bounds = np.append(starts, n)
    for b in range(len(uniq)):
        lo, hi = bounds[b], bounds[b + 1]
        mm = m[lo:hi]
        gg = ig[lo:hi]
        d1 = np.bincount(gg[mm == 1], minlength=ng).astype(float)
        d2 = np.bincount(gg[mm == 2], minlength=ng).astype(float)
        nd1 = d1.sum()
        nd2 = d2.sum()
        if nd1 > 0 or nd2 > 0:
            live = rs > 0
            rs_safe = np.where(live, rs, 1.0)
            skmm_safe = np.where(live, skmm, 1.0)
            skm = np.where(live, skmm * (rs - d1 - d2) / rs_safe, skm)
            f1 = np.where(live, f1m + skmm * d1 / rs_safe, f1)
            h = np.where(live, rs / skmm_safe, 0.0)  # rs/skmm, the paper's h_r
            tr = h.sum()
            tq = np.where(live, rs * (1 - f1m) / skmm_safe, 0.0).sum()
            f = fm + nd1 / tr
            fb = (1 - fm) ** rho
            a = -fb * np.outer(h, h) / tr
            np.fill_diagonal(a, fb * h * (1 - h / tr))
            c += a * nd1 / (tr * (1 - fm))
            s += np.where(live[:ng1], fb * (d1[:ng1] - nd1 * rs[:ng1] * (1 - f1m[:ng1])
                                            / (skmm_safe[:ng1] * tq)), 0.0)
            if nd1 > 0:
                t4 = np.where(skm > 0, 1 - (1 - f) / np.where(skm > 0, skm, 1.0), 1.0)
                t5 = 1 - (nd1 - 1) / (tr * skmm - 1) if nd1 > 1 else np.ones(ng)
                t3 = np.where(live, t5 * skmm * nd1 / (tr * rs_safe), 0.0)
                v3 += t4 * t4 * t3
                t1 = a[:ng1, :] - t4[None, :] * c[:ng1, :]
                v2 += t1 * (t4 * t3)[None, :]
                v += (t1 * t3[None, :]) @ t1.T
            if nd2 > 0:
                ok = (skm > 0) & (d2 > 0)
                t4 = np.where(ok, (1 - f) / np.where(skm > 0, skm, 1.0), 0.0)
                t5 = np.where(d2 > 1, 1 - (d2 - 1.0) / np.where(rs > 1, rs - 1.0, 1.0), 1.0)
                t3 = np.where(ok, t5 * skmm**2 * d2 / rs_safe**2, 0.0)
                v3 += t4 * t4 * t3
                t1 = t4[None, :] * c[:ng1, :]
                v2 -= t1 * (t4 * t3)[None, :]
                v += (t1 * t3[None, :]) @ t1.T
        if hi >= n:
            break
        rs -= np.bincount(ig[lo:hi], minlength=ng)
        fm = f
        f1m = f1.copy()
        skmm = skm.copy()
    cc = c[:ng1, :]
    v += (cc * v3[None, :]) @ cc.T + cc @ v2.T + v2 @ cc.T
    return s, v


def _strata(strata: Any, n: int) -> np.ndarray:
    if strata is None:
        return np.zeros(n, dtype=int)
    return pd.factorize(group_values(strata, n, "strata"))[0]


def gray_scores(time: Any, event: Any, group: Any, cause: Any, strata: Any = None, rho: float = 0.0,
                censored: Any = 0) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Gray's scores for the first K-1 groups (sorted levels) and their covariance, summed over strata.

    Codes are compared as the type of the event values (:func:`pv.stats.checks.event_codes`)."""
    t, e = validate_time_event(time, event)
    e = event_codes(e)
    cause = as_code(cause, e, "cause")
    censored = as_code(censored, e, "censored")
    g = group_values(group, len(t), "group")
    levels = sorted_levels(g)
    ig = pd.Categorical(g, categories=levels).codes.astype(int)
    ng = len(levels)
    m = np.where(e == censored, 0, np.where(e == cause, 1, 2))
    st = _strata(strata, len(t))
    order = np.argsort(t, kind="stable")
    t, m, ig, st = t[order], m[order], ig[order], st[order]
    s = np.zeros(ng - 1)
    v = np.zeros((ng - 1, ng - 1))
    for k in np.unique(st):
        sel = st == k
        sk, vk = _crst(t[sel], m[sel], ig[sel], ng, rho)
        s += sk
        v += vk
    return s, v, levels


def _undefined_reason(t: np.ndarray, is_cause: np.ndarray, g: np.ndarray, st: np.ndarray, levels: list[Any],
                      cause: Any) -> str:
    """Why Gray's statistic for ``cause`` is undefined (its variance is singular)."""
    if len(levels) < 2:
        return "one group only"
    if not is_cause.any():
        return f"no events of type {cause!r}"
    at_risk = set()
    for k in np.unique(st):
        sel = st == k
        if is_cause[sel].any():
            first = t[sel & is_cause].min()
            at_risk.update(g[sel & (t >= first)].tolist())
    silent = [str(level) for level in levels if level not in at_risk]
    if silent:
        return (f"group {', '.join(silent)} has no subject at risk at the times of events of type {cause!r}"
                if len(silent) == 1 else
                f"groups {', '.join(silent)} have no subject at risk at the times of events of type {cause!r}")
    return "the variance of the scores is singular"


def gray_test(time: Any, event: Any, group: Any, strata: Any = None, rho: float = 0.0,
              censored: Any = 0, events: list[Any] | None = None) -> pd.DataFrame:
    """Gray's test for every event type (or those given): DataFrame event, statistic, df, p_value, reason.

    ``reason`` is None when the statistic is defined and says why it is not otherwise (NaN statistic)."""
    t, e = validate_time_event(time, event)
    e = event_codes(e)
    censored = as_code(censored, e, "censored")
    g = group_values(group, len(t), "group")
    levels = sorted_levels(g)
    st = _strata(strata, len(t))
    causes = ([as_code(c, e, "events") for c in events] if events is not None
              else sorted_levels(e[e != censored]))
    rows = []
    for cause in causes:
        df = len(levels) - 1
        stat = np.nan
        if df > 0:
            s, v, _ = gray_scores(t, e, g, cause, strata=strata, rho=rho, censored=censored)
            sv = np.linalg.svd(v, compute_uv=False)
            if sv.size and sv[0] > 0 and sv[-1] > 1e-7 * sv[0]:
                stat = float(s @ np.linalg.solve(v, s))
        p = float(sps.chi2.sf(stat, df)) if np.isfinite(stat) else np.nan
        reason = None if np.isfinite(stat) else _undefined_reason(t, e == cause, g, st, levels, cause)
        rows.append({"event": cause, "statistic": stat, "df": df, "p_value": p, "reason": reason})
    return pd.DataFrame(rows, columns=GRAY_COLUMNS)
