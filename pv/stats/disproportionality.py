"""Frequentist and BCPNN disproportionality measures on a count table (see docs/methods.md).

``measures(counts)`` takes the table of :func:`pv.stats.counts.count_table` (columns n, b, c, d, expected,
n_product, n_event, n_total) and adds, for every pair:

================ ===========================================================================================
prr              ``[a/(a+b)] / [c/(c+d)]``; ``inf`` when ``c = 0``; NaN when ``c + d = 0``
prr_chi2         Yates-corrected Pearson chi-square of the crude 2x2 table,
                 ``N (max(0, |ad - bc| - N/2))^2 / ((a+b)(c+d)(a+c)(b+d))``; NaN when a margin is 0
prr_signal       Evans et al. (2001): ``prr >= 2 and prr_chi2 >= 4 and a >= 3``
ror              ``(a d) / (b c)``, with 0.5 added to every cell only when some cell is 0 (Haldane-Anscombe)
ror_lower/upper  95% CI ``exp(ln ror -/+ 1.96 sqrt(1/a + 1/b + 1/c + 1/d))`` (same corrected cells)
ror_signal       ``ror_lower > 1 and a >= 3``
ic               ``log2((a + 0.5) / (E + 0.5))`` with ``E`` the ``expected`` column (Norén et al. 2006)
ic025, ic975     2.5% and 97.5% quantiles of ``log2`` of a Gamma(a + 0.5, rate E + 0.5) variable (exact,
                 default), or the WHO-UMC closed-form approximation (``ic_interval="approx"``)
ic_signal        ``ic025 > 0``
fisher_p         (``fisher=True``) one-sided Fisher exact p-value ``P(X >= a)``, ``X`` hypergeometric
================ ===========================================================================================
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from pv.errors import InputError

#: The eleven measures of a product-event pair, in the order every table of pv lists them: PRR with its
#: chi-square, ROR with its 95% interval, IC with its 95% credibility interval (this module), and EBGM with EB05
#: and EB95 (:mod:`pv.stats.mgps`).
MEASURES: tuple[str, ...] = ("prr", "prr_chi2", "ror", "ror_lower", "ror_upper", "ic", "ic025", "ic975",
                             "ebgm", "eb05", "eb95")

Z95 = float(special.ndtri(0.975))  # the standard normal quantile, as scipy.stats.norm.ppf computes it


def prr_table(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PRR and its Yates-corrected chi-square for arrays of 2x2 cells."""
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        prr = (a / (a + b)) / (c / (c + d))
        prr = np.where((c == 0) & (a > 0) & (c + d > 0), np.inf, prr)
        n = a + b + c + d
        diff = np.maximum(np.abs(a * d - b * c) - n / 2.0, 0.0)
        denom = (a + b) * (c + d) * (a + c) * (b + d)
        chi2 = np.where(denom > 0, n * diff * diff / np.where(denom > 0, denom, 1.0), np.nan)
    return prr, chi2


def ror_table(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, z: float = Z95
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROR and its log-normal CI; 0.5 added to all four cells of a table only when one of them is 0."""
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    corr = np.where(zero, 0.5, 0.0)
    a, b, c, d = a + corr, b + corr, c + corr, d + corr
    log_ror = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    se = np.sqrt(1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d)
    return np.exp(log_ror), np.exp(log_ror - z * se), np.exp(log_ror + z * se)


def ic_table(n: np.ndarray, expected: np.ndarray, *, interval: Literal["gamma", "approx"] = "gamma",
             level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IC = log2((n + 0.5) / (E + 0.5)) and its credibility interval (see the module docstring)."""
    n = np.asarray(n, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    ic = np.log2((n + 0.5) / (e + 0.5))
    tail = (1.0 - level) / 2.0
    if interval == "gamma":
        # Gamma(n + 0.5, rate E + 0.5): its quantile is gammaincinv(n + 0.5, q) / (E + 0.5); the shape only
        # depends on n, so the inverse is computed once per distinct n.
        if len(n) and np.all(n == np.floor(n)) and 0 <= n.min() and n.max() < 10 * len(n) + 1000:
            table = np.arange(int(n.max()) + 1, dtype=np.float64) + 0.5  # a lookup table over the counts
            inv = n.astype(np.int64)
        else:
            table, inv = np.unique(n, return_inverse=True)
            table = table + 0.5
        lo_g = special.gammaincinv(table, tail)[inv]
        hi_g = special.gammaincinv(table, 1.0 - tail)[inv]
        log_e = np.log2(e + 0.5)
        with np.errstate(divide="ignore"):
            lo = np.log2(lo_g) - log_e
            hi = np.log2(hi_g) - log_e
    elif interval == "approx":
        if level != 0.95:
            raise InputError("the closed-form IC interval exists only for the 95% level", field="level")
        s = n + 0.5
        lo = ic - 3.3 * s ** -0.5 - 2.0 * s ** -1.5
        hi = ic + 2.4 * s ** -0.5 - 0.5 * s ** -1.5
    else:
        raise InputError(f"unknown IC interval {interval!r}: use 'gamma' or 'approx'", field="interval")
    return ic, lo, hi


def fisher_greater(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """One-sided Fisher exact p-value P(X >= a) for X ~ Hypergeometric(N, a + c, a + b), vectorised."""
    from scipy import stats  # heavy to import (about a second): only the callers that ask for Fisher pay for it

    a, b, c, d = (np.asarray(x, dtype=np.int64) for x in (a, b, c, d))
    total = a + b + c + d
    return np.asarray(stats.hypergeom.sf(a - 1, total, a + c, a + b), dtype=np.float64)


def measures(counts: pd.DataFrame, *, fisher: bool = False, ic_interval: Literal["gamma", "approx"] = "gamma",
             prr_threshold: float = 2.0, chi2_threshold: float = 4.0, min_cases: int = 3) -> pd.DataFrame:
    """A copy of ``counts`` with the PRR, ROR and IC columns (and ``fisher_p`` when asked) added.

    The signal flags use the Evans criteria (``prr_threshold``, ``chi2_threshold``, ``min_cases``), ROR lower
    bound > 1 with ``a >= min_cases``, and IC025 > 0.
    """
    missing = [c for c in ("n", "b", "c", "d", "expected") if c not in counts.columns]
    if missing:
        raise InputError(f"count table lacks column(s) {', '.join(missing)}", field=missing[0])
    out = counts.copy(deep=False)  # new columns only: the caller's frame is left as it was
    a = out["n"].to_numpy(np.float64)
    b = out["b"].to_numpy(np.float64)
    c = out["c"].to_numpy(np.float64)
    d = out["d"].to_numpy(np.float64)
    prr, chi2 = prr_table(a, b, c, d)
    ror, ror_lo, ror_hi = ror_table(a, b, c, d)
    ic, ic_lo, ic_hi = ic_table(a, out["expected"].to_numpy(np.float64), interval=ic_interval)
    out["prr"] = prr
    out["prr_chi2"] = chi2
    out["prr_signal"] = (prr >= prr_threshold) & (chi2 >= chi2_threshold) & (a >= min_cases)
    out["ror"] = ror
    out["ror_lower"] = ror_lo
    out["ror_upper"] = ror_hi
    out["ror_signal"] = (ror_lo > 1.0) & (a >= min_cases)
    out["ic"] = ic
    out["ic025"] = ic_lo
    out["ic975"] = ic_hi
    out["ic_signal"] = ic_lo > 0.0
    if fisher:
        out["fisher_p"] = fisher_greater(a, b, c, d)
    return out
