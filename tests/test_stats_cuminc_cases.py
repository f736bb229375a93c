"""Hand-computed cases for the Aalen-Johansen estimator and its cmprsk variance, and a property test.

Variances below are worked by hand from the recursion in pv.stats.cuminc's docstring (the numbers were also
checked against cmprsk::cuminc: 0.04 and 0.11 for the ties case, 0.0625 and 0.15625 for the time-0 case).
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from fractions import Fraction as Fr

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pv.stats.checks
from pv.errors import InputError
from pv.stats.cuminc import CumulativeIncidence, confidence_interval
from pv.stats.finegray import FineGray
from pv.stats.gray import gray_test
from pv.stats.survival import kaplan_meier


def _at(ci: CumulativeIncidence, times: list[float], event: object, group: object = "all") -> pd.DataFrame:
    p = ci.predict(times)
    return p[(p.event == event) & (p.group == group)].reset_index(drop=True)


def test_ties_between_event_types_and_censoring_after_events() -> None:
    # t=1: 5 at risk, one event 1, one event 2, one censored (counted after the events)
    ci = CumulativeIncidence().fit([1, 1, 1, 2, 3], [1, 2, 0, 1, 0])
    e1 = _at(ci, [0.5, 1, 1.5, 2, 3], 1)
    e2 = _at(ci, [0.5, 1, 1.5, 2, 3], 2)
    # F1(1) = 1/5, S(1) = 3/5; t=2: 2 at risk, F1(2) = 1/5 + 3/5 * 1/2 = 1/2
    np.testing.assert_allclose(e1.estimate, [0, 0.2, 0.2, 0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(e2.estimate, [0, 0.2, 0.2, 0.2, 0.2], atol=1e-12)
    # variance of F1 at 1: v1 = 1/225 + 16/225, v2 = 1/45 + 4/45, v3 = 1/9 + 1/9
    v1, v2, v3, f = Fr(17, 225), Fr(1, 9), Fr(2, 9), Fr(1, 5)
    var1 = v1 + f * f * v3 - 2 * f * v2
    assert var1 == Fr(1, 25)
    # at 2 (S- = 3/5, S = 3/10, 2 at risk, F = 1/2): w = 9/100, a = 1 + 5/3, b = 10/3
    w, a, b, f2 = Fr(9, 100), Fr(8, 3), Fr(10, 3), Fr(1, 2)
    var2 = (v1 + a * a * w) + f2 * f2 * (v3 + b * b * w) - 2 * f2 * (v2 + a * b * w)
    assert var2 == Fr(11, 100)
    np.testing.assert_allclose(e1.variance, [0, 0.04, 0.04, 0.11, 0.11], rtol=1e-12)
    np.testing.assert_allclose(e2.variance, [0, 0.04, 0.04, 0.04, 0.04], rtol=1e-12)


def test_tied_events_of_one_type_use_the_tie_correction() -> None:
    # two events of type 1 at t=1 among 4: F = 1/2; w = 1 * (1 - 1/3) * 2 / 16 = 1/12, S = 1/2
    ci = CumulativeIncidence().fit([1, 1, 2, 2], [1, 1, 0, 0])
    got = _at(ci, [1], 1)
    a, b, w, f = Fr(2), Fr(2), Fr(1, 12), Fr(1, 2)
    var = a * a * w + f * f * b * b * w - 2 * f * a * b * w
    assert got.estimate[0] == pytest.approx(0.5)
    assert got.variance[0] == pytest.approx(float(var), rel=1e-12)


def test_events_at_time_zero_count_at_zero() -> None:
    ci = CumulativeIncidence().fit([0, 0, 1, 2], [1, 0, 2, 1])
    e1 = _at(ci, [0, 0.5, 1, 2], 1)
    e2 = _at(ci, [0, 0.5, 1, 2], 2)
    # t=0: 4 at risk, F1 = 1/4, S = 3/4; censoring at 0 leaves 2 at risk at t=1: F2 = 3/4 * 1/2 = 3/8
    np.testing.assert_allclose(e1.estimate, [0.25, 0.25, 0.25, 0.625], atol=1e-12)
    np.testing.assert_allclose(e2.estimate, [0, 0, 0.375, 0.375], atol=1e-12)
    np.testing.assert_allclose(e1.variance[:3], [0.0625] * 3, rtol=1e-12)
    np.testing.assert_allclose(e2.variance[2:], [0.15625] * 2, rtol=1e-12)
    assert ci.curves_[(ci.curves_.event == 1)].time.iloc[0] == 0.0


def test_all_censored_gives_zero_curves() -> None:
    ci = CumulativeIncidence().fit([1, 2, 3, 4], [0, 0, 0, 0], events=[1, 2])
    p = ci.predict([0, 1, 2.5, 4, 5])
    assert set(p.event) == {1, 2}
    np.testing.assert_array_equal(p.estimate.to_numpy()[[0, 1, 2, 3, 5, 6, 7, 8]], 0.0)
    assert np.isnan(p.estimate[4]) and np.isnan(p.estimate[9])  # beyond the last follow-up
    assert (p.variance.fillna(0) == 0).all()
    assert CumulativeIncidence().fit([1, 2], [0, 0]).curves_.empty


def test_single_group_is_named_all_and_has_no_test() -> None:
    ci = CumulativeIncidence().fit([1, 2, 3], [1, 2, 1])
    assert ci.groups_ == ["all"]
    assert ci.gray_test_.empty
    assert set(ci.summary.group) == {"all"}


def test_group_with_no_events_of_interest() -> None:
    time = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    event = [1, 1, 2, 0, 1, 2, 0, 2, 0, 0]
    group = ["A"] * 5 + ["B"] * 5
    ci = CumulativeIncidence().fit(time, event, group)
    b1 = _at(ci, [0, 1, 3, 5], 1, "B")
    np.testing.assert_array_equal(b1.estimate, [0, 0, 0, 0])
    np.testing.assert_array_equal(b1.variance, [0, 0, 0, 0])
    a1 = _at(ci, [1, 2, 5], 1, "A")
    # A: 1/5 at 1; 1/5 + 4/5 * 1/4 = 2/5 at 2; t=3 type 2 (S = 2/5); t=4 censored; t=5: + 2/5 * 1/1
    np.testing.assert_allclose(a1.estimate, [0.2, 0.4, 0.8], atol=1e-12)
    res = ci.gray_test_.set_index("event")
    assert np.isfinite(res.loc[1, "statistic"]) and res.loc[1, "statistic"] > 0
    assert res.loc[1, "df"] == 1


def test_event_type_never_observed_has_no_test_statistic() -> None:
    res = gray_test([1, 2, 3, 4], [2, 0, 2, 0], ["A", "A", "B", "B"], events=[1])
    assert np.isnan(res.statistic[0]) and np.isnan(res.p_value[0])


def test_string_event_values_and_censoring_label() -> None:
    ci = CumulativeIncidence(censored="censored").fit(
        [1, 1, 1, 2, 3], ["malignancy", "death", "censored", "malignancy", "censored"])
    assert ci.events_ == ["death", "malignancy"]
    assert _at(ci, [2], "malignancy").estimate[0] == pytest.approx(0.5)


def test_predict_is_right_continuous_and_nan_outside_follow_up() -> None:
    ci = CumulativeIncidence().fit([2, 4, 6], [1, 1, 0])
    p = _at(ci, [-1, 0, 1.999, 2, 3, 4, 6, 6.0001], 1)
    np.testing.assert_allclose(p.estimate[1:7], [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert np.isnan(p.estimate[0]) and np.isnan(p.estimate[7])


def test_confidence_intervals() -> None:
    f, v = np.array([0.2, 0.0, 0.5]), np.array([0.01, 0.0, 0.0])
    lo, hi = confidence_interval(f, v, conf_type="plain")
    np.testing.assert_allclose(lo, [0.2 - 1.959963984540054 * 0.1, 0.0, 0.5])
    np.testing.assert_allclose(hi, [0.2 + 1.959963984540054 * 0.1, 0.0, 0.5])
    lo, hi = confidence_interval(f, v, conf_type="log-log")
    se_g = 0.1 / abs(0.2 * np.log(0.2))
    assert lo[0] == pytest.approx(0.2 ** np.exp(1.959963984540054 * se_g))
    assert hi[0] == pytest.approx(0.2 ** np.exp(-1.959963984540054 * se_g))
    assert 0 < lo[0] < 0.2 < hi[0] < 1
    with pytest.raises(InputError):
        confidence_interval(f, v, conf_type="arcsine")


def test_bad_input_is_rejected_with_the_field() -> None:
    with pytest.raises(InputError, match="negative time"):
        CumulativeIncidence().fit([1, -1], [1, 0])
    with pytest.raises(InputError, match="missing event"):
        CumulativeIncidence().fit([1, 2], [1, None])
    with pytest.raises(InputError, match="time has 2 values but event has 3"):
        CumulativeIncidence().fit([1, 2], [1, 0, 1])


@pytest.mark.parametrize("fit", [
    lambda t, e: CumulativeIncidence().fit(t, e),
    lambda t, e: gray_test(t, e, ["a", "b", "a"][: len(t)]),
    lambda t, e: FineGray().fit(t, e, np.zeros(len(t))),
    lambda t, e: kaplan_meier(t, e),
], ids=["cuminc", "gray", "finegray", "kaplan_meier"])
def test_every_time_to_event_estimator_checks_time_and_event_alike(fit) -> None:  # type: ignore[no-untyped-def]
    for time, event, field, message in [
        ([1.0, np.nan], [1, 0], "time", "missing or infinite time at position 1"),
        ([1.0, -2.0], [1, 0], "time", "negative time at position 1"),
        ([1.0, 2.0], [1, None], "event", "missing event at position 1"),
        ([1.0, 2.0], [1, 0, 1], "event", "time has 2 values but event has 3"),
        ([[1.0], [2.0]], [1, 0], "time", "time must be one-dimensional"),
    ]:
        with pytest.raises(InputError, match=message) as err:
            fit(time, event)
        assert err.value.field == field


def test_shared_checks_examples_and_import_direction() -> None:
    assert doctest.testmod(pv.stats.checks).failed == 0
    # Gray's test does not need the cumulative incidence module (the imports go one way: cuminc -> gray)
    code = "import sys, pv.stats.gray, pv.stats.survival, pv.stats.finegray; print('pv.stats.cuminc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3)), min_size=1, max_size=60))
def test_cif_of_all_types_plus_km_survival_is_one(rows: list[tuple[int, int]]) -> None:
    time = np.array([r[0] for r in rows], dtype=float)
    event = np.array([r[1] for r in rows])
    ci = CumulativeIncidence().fit(time, event, events=[1, 2, 3])
    grid = np.arange(0, 13, 0.5)
    p = ci.predict(grid)
    total = p.groupby("time")["estimate"].sum(min_count=1).reindex(grid).to_numpy()
    km = kaplan_meier(time, event != 0, times=grid)["survival"].to_numpy()
    inside = grid <= time.max()
    np.testing.assert_allclose(total[inside] + km[inside], 1.0, atol=1e-12)
    assert np.isnan(total[~inside]).all()
