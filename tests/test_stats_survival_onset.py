"""Kaplan-Meier, incidence rates with Garwood intervals, rate ratios, and time to onset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pv.errors import InputError
from pv.stats.onset import time_to_onset, weibull_shape
from pv.stats.survival import garwood_interval, incidence_rates, kaplan_meier, rate_ratios


def test_kaplan_meier_hand_computed() -> None:
    # 5 subjects: deaths at 1, 3; censored at 2, 4, 5: S(1) = 4/5, S(3) = 4/5 * 2/3
    km = kaplan_meier([1, 2, 3, 4, 5], [1, 0, 1, 0, 0], times=[0, 1, 2.5, 3, 5, 6])
    np.testing.assert_allclose(km.survival[:5], [1, 0.8, 0.8, 0.8 * 2 / 3, 0.8 * 2 / 3])
    assert np.isnan(km.survival[5])
    assert (km.lower[1:5] < km.survival[1:5]).all() and (km.upper[1:5] > km.survival[1:5]).all()


def test_garwood_interval_matches_exact_poisson_tables() -> None:
    lo, hi = garwood_interval([0, 1, 5, 10], [1, 1, 1, 1])
    # exact 95% limits for a Poisson count (e.g. Ulm 1990 / standard tables)
    np.testing.assert_allclose(lo, [0, 0.025318, 1.623486, 4.795389], atol=1e-5)
    np.testing.assert_allclose(hi, [3.688879, 5.571643, 11.668332, 18.390356], atol=1e-5)


def test_incidence_rates_per_100_person_years() -> None:
    data = pd.DataFrame({"arm": ["a", "a", "b", "b"], "events": [2, 3, 1, 0],
                         "py": [40.0, 60.0, 25.0, 25.0]})
    r = incidence_rates(data, "events", "py", "arm").set_index("group")
    assert r.loc["a", "events"] == 5 and r.loc["a", "person_years"] == 100
    assert r.loc["a", "rate"] == pytest.approx(5.0)
    assert r.loc["a", "lower"] == pytest.approx(1.623486, abs=1e-5)
    assert r.loc["a", "upper"] == pytest.approx(11.668332, abs=1e-5)
    assert r.loc["b", "rate"] == pytest.approx(2.0)
    with pytest.raises(InputError, match="missing column"):
        incidence_rates(data, "events", "nope")


def test_rate_ratio_from_poisson_glm_equals_closed_form() -> None:
    data = pd.DataFrame({"arm": ["ctl", "ctl", "trt", "trt"], "events": [5, 7, 10, 20],
                         "py": [150.0, 250.0, 200.0, 300.0]})
    rr = rate_ratios(data, "events", "py", "arm", reference="ctl").iloc[0]
    expected = (30 / 500) / (12 / 400)
    se = np.sqrt(1 / 30 + 1 / 12)
    assert rr["group"] == "trt"
    assert rr["rate_ratio"] == pytest.approx(expected, rel=1e-6)
    assert rr["lower"] == pytest.approx(expected * np.exp(-1.959963984540054 * se), rel=1e-6)
    assert rr["upper"] == pytest.approx(expected * np.exp(1.959963984540054 * se), rel=1e-6)
    assert rr["p_value"] == pytest.approx(2 * sps.norm.sf(np.log(expected) / se), rel=1e-5)


def test_weibull_shape_matches_scipy_mle_and_recovers_truth() -> None:
    rng = np.random.default_rng(7)
    days = 30 * rng.weibull(0.6, size=3000) + 1  # early hazard
    shape, lo, hi, scale = weibull_shape(days)
    c, _, sc = sps.weibull_min.fit(days, floc=0)
    assert shape == pytest.approx(c, rel=1e-3)
    assert scale == pytest.approx(sc, rel=1e-3)
    assert lo < shape < hi < 1  # decreasing hazard detected
    assert np.isnan(weibull_shape(np.array([5.0, 5.0, 5.0]))[0])  # one distinct value: no fit


def test_time_to_onset_per_product_event() -> None:
    data = pd.DataFrame({
        "product": ["p1"] * 6 + ["p2"] * 2,
        "event": ["crs"] * 6 + ["crs"] * 2,
        "start_date": ["2023-01-01"] * 6 + ["2023-01-01", None],
        "event_date": ["2023-01-01", "2023-01-02", "2023-01-03", "2023-01-05", "2023-01-09", "2022-12-30",
                       "2023-03-01", "2023-03-01"],
    })
    out = time_to_onset(data).set_index("product")
    assert out.loc["p1", "n"] == 5 and out.loc["p1", "n_excluded"] == 1  # event before start excluded
    assert out.loc["p1", "median_days"] == 2.0
    assert out.loc["p1", "q1_days"] == 1.0 and out.loc["p1", "q3_days"] == 4.0
    assert np.isfinite(out.loc["p1", "weibull_shape"])
    assert out.loc["p2", "n"] == 1 and out.loc["p2", "n_excluded"] == 1
    assert out.loc["p2", "median_days"] == 59.0
    assert np.isnan(out.loc["p2", "weibull_shape"])  # too few to fit
