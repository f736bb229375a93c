"""PRR, chi-square, ROR and CI, IC and its interval on hand-computed 2x2 tables (zero cells, n = 1)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pv.stats import fisher_greater, ic_table, measures


def _table(a: int, b: int, c: int, d: int) -> pd.DataFrame:
    n_total = a + b + c + d
    return pd.DataFrame({"n": [a], "b": [b], "c": [c], "d": [d], "n_product": [a + b], "n_event": [a + c],
                         "n_total": [n_total], "expected": [(a + b) * (a + c) / n_total]})


def _row(a: int, b: int, c: int, d: int, **kw: object) -> dict:
    return measures(_table(a, b, c, d), **kw).iloc[0].to_dict()  # type: ignore[arg-type]


def test_typical_table() -> None:
    r = _row(10, 90, 20, 880)
    assert r["prr"] == pytest.approx((10 / 100) / (20 / 900))  # 4.5
    assert r["prr"] == pytest.approx(4.5)
    # Yates: N (|ad - bc| - N/2)^2 / ((a+b)(c+d)(a+c)(b+d)) = 1000 * 6500^2 / (100*900*30*970)
    assert r["prr_chi2"] == pytest.approx(1000 * 6500**2 / (100 * 900 * 30 * 970))
    assert r["prr_chi2"] == pytest.approx(16.13211, rel=1e-6)
    assert r["prr_signal"]
    assert r["ror"] == pytest.approx(8800 / 1800)
    se = math.sqrt(1 / 10 + 1 / 90 + 1 / 20 + 1 / 880)
    assert r["ror_lower"] == pytest.approx(math.exp(math.log(8800 / 1800) - 1.959964 * se), rel=1e-6)
    assert r["ror_upper"] == pytest.approx(math.exp(math.log(8800 / 1800) + 1.959964 * se), rel=1e-6)
    assert r["ror_signal"]
    # E = 100 * 30 / 1000 = 3; IC = log2(10.5 / 3.5) = log2(3)
    assert r["ic"] == pytest.approx(math.log2(3))
    lo = math.log2(stats.gamma.ppf(0.025, 10.5, scale=1 / 3.5))
    hi = math.log2(stats.gamma.ppf(0.975, 10.5, scale=1 / 3.5))
    assert r["ic025"] == pytest.approx(lo, rel=1e-9)
    assert r["ic975"] == pytest.approx(hi, rel=1e-9)
    assert r["ic_signal"]


def test_n_equal_one() -> None:
    r = _row(1, 4, 2, 93)
    assert r["prr"] == pytest.approx((1 / 5) / (2 / 95))  # 9.5
    assert r["prr_chi2"] == pytest.approx(100 * 35**2 / (5 * 95 * 3 * 97))  # |93 - 8| - 50 = 35
    assert not r["prr_signal"]  # a < 3
    assert r["ror"] == pytest.approx(93 / 8)  # no zero cell, so no correction
    assert r["ic"] == pytest.approx(math.log2(1.5 / (0.15 + 0.5)))
    assert r["ic025"] == pytest.approx(math.log2(stats.gamma.ppf(0.025, 1.5) / 0.65))
    assert not r["ic_signal"]
    # the WHO-UMC closed form: IC -/+ the (n + 0.5)^(-1/2), (n + 0.5)^(-3/2) terms
    s = 1.5
    r2 = _row(1, 4, 2, 93, ic_interval="approx")
    assert r2["ic025"] == pytest.approx(r["ic"] - 3.3 * s**-0.5 - 2 * s**-1.5)
    assert r2["ic975"] == pytest.approx(r["ic"] + 2.4 * s**-0.5 - 0.5 * s**-1.5)


def test_zero_cells() -> None:
    # a product and an event that only occur together, once, among 10 cases
    r = _row(1, 0, 0, 9)
    assert r["prr"] == math.inf  # c = 0
    assert r["prr_chi2"] == pytest.approx(10 * (9 - 5) ** 2 / (1 * 9 * 1 * 9))
    # zero cells: 0.5 added to all four -> (1.5 * 9.5) / (0.5 * 0.5) = 57
    assert r["ror"] == pytest.approx(57.0)
    se = math.sqrt(1 / 1.5 + 1 / 0.5 + 1 / 0.5 + 1 / 9.5)
    assert r["ror_lower"] == pytest.approx(57.0 * math.exp(-1.959964 * se), rel=1e-6)
    assert r["ror_upper"] == pytest.approx(57.0 * math.exp(1.959964 * se), rel=1e-6)
    # E = 1 * 1 / 10
    assert r["ic"] == pytest.approx(math.log2(1.5 / 0.6))


def test_zero_c_cell_with_other_cells() -> None:
    r = _row(3, 7, 0, 90)
    assert r["prr"] == math.inf
    assert r["prr_chi2"] == pytest.approx(100 * (abs(3 * 90 - 0) - 50) ** 2 / (10 * 90 * 3 * 97))
    assert r["ror"] == pytest.approx((3.5 * 90.5) / (7.5 * 0.5))
    assert r["prr_signal"]  # inf >= 2, chi2 = 18.8 >= 4, a = 3


def test_yates_correction_floors_at_zero() -> None:
    r = _row(1, 9, 9, 81)  # ad - bc = 0
    assert r["prr"] == pytest.approx(1.0)
    assert r["prr_chi2"] == 0.0
    assert r["ror"] == pytest.approx(1.0)


def test_evans_needs_three_cases() -> None:
    assert not _row(2, 8, 1, 989)["prr_signal"]
    assert _row(3, 7, 1, 989)["prr_signal"]


def test_fisher_matches_scipy() -> None:
    tables = [(10, 90, 20, 880), (1, 4, 2, 93), (1, 0, 0, 9), (0, 5, 5, 90), (3, 7, 0, 90)]
    a, b, c, d = (np.array(x) for x in zip(*tables, strict=True))
    got = fisher_greater(a, b, c, d)
    for (aa, bb, cc, dd), p in zip(tables, got, strict=True):
        want = stats.fisher_exact([[aa, bb], [cc, dd]], alternative="greater")[1]
        assert p == pytest.approx(want, rel=1e-9)
    t = measures(pd.concat([_table(*x) for x in tables]), fisher=True)
    np.testing.assert_allclose(t["fisher_p"], got)


def test_ic_interval_vectorised_over_many_counts() -> None:
    n = np.array([1, 2, 2, 5, 100, 1])
    e = np.array([0.1, 3.0, 0.5, 5.0, 50.0, 2.0])
    ic, lo, hi = ic_table(n, e)
    for i in range(len(n)):
        assert lo[i] == pytest.approx(math.log2(stats.gamma.ppf(0.025, n[i] + 0.5, scale=1 / (e[i] + 0.5))))
        assert hi[i] == pytest.approx(math.log2(stats.gamma.ppf(0.975, n[i] + 0.5, scale=1 / (e[i] + 0.5))))
        assert lo[i] < ic[i] < hi[i]
