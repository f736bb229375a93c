"""Inputs of the time-to-event estimators that must never give a silently wrong answer: event codes spelt as
numbers or text, missing group values, constant or collinear Fine-Gray covariates, undefined Gray tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pv.errors import InputError
from pv.stats.checks import as_code, event_codes
from pv.stats.cuminc import CumulativeIncidence
from pv.stats.finegray import FineGray
from pv.stats.gray import gray_test

TIME = [1, 1, 2, 3, 4, 5, 6, 7]
CODES = [1, 0, 2, 1, 0, 2, 1, 0]


def test_event_codes_are_numbers_whatever_their_spelling() -> None:
    assert event_codes(["1", "0", " 2 ", "1.0", "-0"]).tolist() == [1, 0, 2, 1, 0]
    assert event_codes(np.array([1.0, 0.0, 2.0])).dtype.kind == "i"
    assert event_codes(np.array([1, 0], dtype=object)).tolist() == [1, 0]
    assert event_codes([0.5, 1]).tolist() == [0.5, 1.0]
    assert event_codes(np.array([True, False])).tolist() == [1, 0]


def test_event_codes_are_text_when_one_value_is_not_a_number() -> None:
    assert event_codes(["CRS", "0", "death"]).tolist() == ["CRS", "0", "death"]
    # "nan" and "inf" are text here, not numbers
    assert event_codes(["nan", "1"]).tolist() == ["nan", "1"]
    assert event_codes(["inf", "1"]).tolist() == ["inf", "1"]
    assert event_codes(np.array(["a", 1], dtype=object)).tolist() == ["a", "1"]


def test_a_code_takes_the_type_of_the_event_codes() -> None:
    numeric = event_codes([1, 0])
    assert as_code("1.0", numeric, "censored") == 1 and isinstance(as_code("1.0", numeric, "censored"), int)
    assert as_code(2.5, numeric, "censored") == 2.5
    with pytest.raises(InputError, match="'censored' is not a number, but the event codes are numbers") as err:
        as_code("censored", numeric, "censored")
    assert err.value.field == "censored"
    text = event_codes(["CRS", "0"])
    assert as_code(0, text, "censored") == "0"
    assert as_code("crs", text, "event") == "crs"  # text is compared exactly: no match for CRS


@pytest.mark.parametrize("events,censored", [
    ([1.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.0], 0),
    (["1", "0", "2", "1", "0", "2", "1", "0"], 0),
    (["1.0", "0.0", "2.0", "1.0", "0.0", "2.0", "1.0", "0.0"], "0"),
    (CODES, "0.0"),
    (CODES, 0.0),
], ids=["float", "int-text", "float-text", "int-censored-text", "int-censored-float"])
def test_cumulative_incidence_is_the_same_for_every_spelling_of_the_codes(events: list, censored: object) -> None:
    want = CumulativeIncidence().fit(TIME, CODES, ["a", "b"] * 4)
    got = CumulativeIncidence(censored=censored).fit(TIME, events, ["a", "b"] * 4)
    assert got.events_ == [1, 2]
    pd.testing.assert_frame_equal(got.curves_, want.curves_)
    pd.testing.assert_frame_equal(got.gray_test_, want.gray_test_)
    listed = CumulativeIncidence(censored=censored).fit(TIME, events, events=["2", 1.0])
    assert listed.events_ == [2, 1]
    assert listed.predict([7]).estimate.tolist() == pytest.approx(
        CumulativeIncidence().fit(TIME, CODES, events=[2, 1]).predict([7]).estimate.tolist())


def test_a_text_code_for_numeric_events_is_refused() -> None:
    with pytest.raises(InputError, match="is not a number") as err:
        CumulativeIncidence(censored="censored").fit(TIME, CODES)
    assert err.value.field == "censored"
    with pytest.raises(InputError, match="is not a number") as err:
        CumulativeIncidence().fit(TIME, CODES, events=["relapse"])
    assert err.value.field == "events"


def test_gray_test_and_fine_gray_compare_codes_as_numbers() -> None:
    group = ["a", "b"] * 4
    want = gray_test(TIME, CODES, group)
    got = gray_test(TIME, [str(float(c)) for c in CODES], group, censored="0", events=["1", "2"])
    np.testing.assert_allclose(got.statistic, want.statistic, rtol=1e-12)
    assert got.event.tolist() == [1, 2]
    x = np.array([0.3, 1.2, -0.5, 0.8, 0.1, -1.0, 0.4, 2.0])
    fg_want = FineGray(event_of_interest=1).fit(TIME, CODES, x)
    fg_got = FineGray(event_of_interest="1.0", censored="0").fit(TIME, [str(c) for c in CODES], x)
    np.testing.assert_allclose(fg_got.coef_, fg_want.coef_, rtol=1e-12)
    np.testing.assert_allclose(fg_got.se_, fg_want.se_, rtol=1e-12)


def test_missing_group_or_stratum_is_refused_not_made_a_group() -> None:
    for group in (["a", None, "b"], ["a", np.nan, "b"], pd.Series(["a", None, "b"])):
        with pytest.raises(InputError, match="missing group at position 1") as err:
            CumulativeIncidence().fit([1, 2, 3], [1, 0, 1], group)
        assert err.value.field == "group"
        with pytest.raises(InputError, match="missing group at position 1"):
            gray_test([1, 2, 3], [1, 0, 1], group)
    with pytest.raises(InputError, match="missing strata at position 2") as err:
        gray_test([1, 2, 3], [1, 0, 1], ["a", "b", "a"], strata=["x", "y", None])
    assert err.value.field == "strata"
    # a list mixing text and NaN keeps the NaN missing (numpy alone would make it the text "nan")
    with pytest.raises(InputError, match="missing event at position 1"):
        CumulativeIncidence(censored="c").fit([1, 2], ["relapse", np.nan])


@pytest.mark.parametrize("time,event,group,reason", [
    ([1, 2, 3, 4], [2, 0, 2, 0], ["A", "A", "B", "B"], "no events of type 1"),
    ([1, 2, 3], [1, 0, 1], ["A", "A", "A"], "one group only"),
    # B's two subjects are censored before the first event of type 1 (t=1)
    ([1, 2, 3, 4, 5, 0.5, 0.6], [1, 0, 1, 2, 0, 0, 0], ["A"] * 5 + ["B"] * 2,
     "group B has no subject at risk at the times of events of type 1"),
    ([1, 2, 3, 4, 0.5, 0.6], [1, 0, 1, 2, 0, 0], ["A"] * 4 + ["B", "C"],
     "groups B, C have no subject at risk at the times of events of type 1"),
], ids=["no-events", "one-group", "group-not-at-risk", "groups-not-at-risk"])
def test_gray_test_says_why_it_is_undefined(time: list, event: list, group: list, reason: str) -> None:
    res = gray_test(time, event, group, events=[1])
    assert np.isnan(res.statistic[0]) and np.isnan(res.p_value[0])
    assert res.reason[0] == reason
    assert res.df[0] == len(set(group)) - 1


def test_gray_test_has_no_reason_when_defined() -> None:
    # B has no event of type 1 but is at risk: the test is defined
    res = gray_test([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], [1, 1, 2, 0, 1, 2, 0, 2, 0, 0], ["A"] * 5 + ["B"] * 5)
    assert res.reason.tolist() == [None, None] and np.isfinite(res.statistic).all()


# --- Fine-Gray covariates that give no hazard ratio ---------------------------------------------------------

FG_TIME = np.arange(1.0, 13.0)
FG_EVENT = np.array([1, 2, 0, 1, 1, 0, 2, 1, 0, 1, 2, 0])
X1 = np.array([0.5, 1.2, -0.3, 0.8, 2.0, -1.1, 0.0, 1.5, 0.7, -0.4, 0.9, 0.1])
X2 = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0])


def _fit_error(covariates: pd.DataFrame, event: np.ndarray = FG_EVENT) -> InputError:
    with pytest.raises(InputError) as err:
        FineGray(event_of_interest=1).fit(FG_TIME, event, covariates)
    assert err.value.field == "covariates"
    return err.value


def test_fine_gray_fits_the_well_posed_design() -> None:
    fg = FineGray(event_of_interest=1).fit(FG_TIME, FG_EVENT, pd.DataFrame({"x1": X1, "x2": X2}))
    assert fg.converged_ and np.isfinite(fg.se_).all() and (fg.se_ < 5).all()


def test_fine_gray_refuses_a_constant_covariate() -> None:
    err = _fit_error(pd.DataFrame({"x1": X1, "dose": 5.0}))
    assert err.reason == "covariate dose is constant (5 in every row used): it has no hazard ratio; leave it out"
    # alone it used to end in a numpy traceback
    err = _fit_error(pd.DataFrame({"dose": np.full(12, 5.0)}))
    assert err.reason.startswith("covariate dose is constant")
    # constant among the rows used: the only other value is in a row dropped for a missing covariate
    err = _fit_error(pd.DataFrame({"x1": np.where(np.arange(12) == 3, np.nan, X1),
                                   "arm": np.where(np.arange(12) == 3, 1.0, 0.0)}))
    assert err.reason.startswith("covariate arm is constant (0 in every row used)")
    err = _fit_error(pd.DataFrame({"a": 1.0, "x1": X1, "b": -2.0}))
    assert err.reason.startswith("covariates a, b are constant (1, -2 in every row used)")


def test_fine_gray_refuses_collinear_covariates_and_names_them() -> None:
    err = _fit_error(pd.DataFrame({"x1": X1, "x2": X2, "x3": X1 + 2 * X2 - 1, "other": X1 ** 2}))
    assert err.reason == ("covariates x1, x2, x3 are collinear: x3 = x1 + 2 * x2 - 1; "
                          "a hazard ratio for each cannot be estimated, leave one of them out")
    err = _fit_error(pd.DataFrame({"x1": X1, "x2": X2, "x3": 3 - X1 - X2}))
    assert "collinear: x3 = -x1 - x2 + 3;" in err.reason
    err = _fit_error(pd.DataFrame({"weight_kg": X1 + 70, "weight_lb": (X1 + 70) * 2.20462}))
    assert "covariates weight_kg, weight_lb are collinear: weight_lb = 2.205 * weight_kg" in err.reason
    # numerically collinear: a difference of one part in 10^9 is no information
    err = _fit_error(pd.DataFrame({"x1": X1, "x1b": X1 * (1 + 1e-9 * np.sin(np.arange(12)))}))
    assert err.reason.startswith("covariates x1, x1b are collinear")


def test_fine_gray_refuses_a_covariate_without_information_on_the_event() -> None:
    # z varies only among the two subjects censored before the first event of interest (t=1): in every risk
    # set of the likelihood z is 0, so the information on its coefficient is 0 although the column varies
    time = np.array([0.5, 0.7, 1, 2, 3, 4, 5, 6, 7, 8])
    event = np.array([0, 0, 1, 2, 1, 0, 1, 2, 1, 0])
    z = np.array([1.0, 2.0, 0, 0, 0, 0, 0, 0, 0, 0])
    x = np.array([0.3, -0.2, 0.5, 1.1, -0.7, 0.2, 0.9, -1.4, 0.4, 0.0])
    with pytest.raises(InputError) as err:
        FineGray(event_of_interest=1).fit(time, event, pd.DataFrame({"x": x, "z": z}))
    assert err.value.reason == (
        "covariate z carries no information on event 1: it takes one value among the subjects at risk at "
        "every time of an event of interest (it varies only among subjects who left before); leave it out")


def test_fine_gray_refuses_an_estimate_that_goes_to_infinity() -> None:
    # every event of interest is in arm 1: the likelihood grows without bound in the arm's coefficient
    arm = np.array([1.0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0])
    with pytest.raises(InputError) as err:
        FineGray(event_of_interest=1).fit(FG_TIME, FG_EVENT, pd.DataFrame({"x1": X1, "arm": arm}))
    assert err.value.field == "covariates"
    assert err.value.reason == (
        "the Fine-Gray estimate for arm goes to infinity (monotone likelihood, e.g. every event of interest, "
        "or none, in one level of the covariate): no finite hazard ratio fits; leave it out or regroup it")


def test_fine_gray_counts_rows_dropped_for_missing_covariates() -> None:
    x = np.where(np.isin(np.arange(12), [2, 5]), np.nan, X1)
    fg = FineGray(event_of_interest=1).fit(FG_TIME, FG_EVENT, pd.DataFrame({"x1": x}))
    want = FineGray(event_of_interest=1).fit(np.delete(FG_TIME, [2, 5]), np.delete(FG_EVENT, [2, 5]),
                                             pd.DataFrame({"x1": np.delete(X1, [2, 5])}))
    assert fg.n_missing_ == 2 and fg.n_ == 10
    np.testing.assert_allclose(fg.coef_, want.coef_, rtol=1e-12)
    # the only events of interest are in rows with a missing covariate
    with pytest.raises(InputError, match=r"no events of type 1 among the 7 rows with every covariate \(5 dropped"):
        FineGray(event_of_interest=1).fit(FG_TIME, FG_EVENT, np.where(FG_EVENT == 1, np.nan, X1))


# --- properties --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=30))
def test_every_spelling_of_whole_number_codes_is_the_same_code(codes: list[int]) -> None:
    want = np.array(codes, dtype=np.int64)
    for spelt in (codes, [float(c) for c in codes], [str(c) for c in codes], [f"{c}.0" for c in codes],
                  np.array(codes, dtype=object), [f" {c}" for c in codes]):
        got = event_codes(spelt)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def _residual(relation: str, design: pd.DataFrame) -> float:
    """Largest |left - right| over the rows for a relation such as ``combo = 2 * x1 - 0.5 * x2 + 3``, relative
    to the size of its terms (the coefficients are printed to 4 significant digits)."""
    left, right = relation.split(" = ")
    terms = []
    for term in right.replace(" - ", " + -").split(" + "):
        if " * " in term:
            coef, name = term.split(" * ")
            terms.append(float(coef) * design[name].to_numpy())
        elif term.lstrip("-") in design.columns:
            terms.append((-1 if term.startswith("-") else 1) * design[term.lstrip("-")].to_numpy())
        else:
            terms.append(np.full(len(design), float(term)))
    lhs = design[left].to_numpy()
    scale = np.abs(lhs) + np.sum(np.abs(terms), axis=0)
    return float(np.max(np.abs(lhs - np.sum(terms, axis=0)) / scale))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), a=st.floats(0.1, 10) | st.floats(-10, -0.1),
       b=st.floats(0.1, 10) | st.floats(-10, -0.1), c=st.floats(-100, 100))
def test_fine_gray_always_names_a_linear_combination(seed: int, a: float, b: float, c: float) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    time = rng.exponential(1.0, n)
    event = np.concatenate([[1, 2, 0], rng.integers(0, 3, n - 3)])
    x1, x2, noise = rng.normal(size=n), rng.integers(0, 2, n).astype(float), rng.normal(size=n)
    x2[:2] = [0.0, 1.0]
    design = pd.DataFrame({"noise": noise, "x1": x1, "x2": x2, "combo": a * x1 + b * x2 + c})
    with pytest.raises(InputError) as err:
        FineGray(event_of_interest=1).fit(time, event, design)
    assert err.value.field == "covariates"
    assert err.value.reason.startswith("covariates x1, x2, combo are collinear: ")
    relation = err.value.reason.split("collinear: ")[1].split(";")[0]
    assert _residual(relation, design) < 1e-3  # the relation holds (coefficients to 4 digits)
    with pytest.raises(InputError, match="covariate k is constant"):
        FineGray(event_of_interest=1).fit(time, event, pd.DataFrame({"x1": x1, "k": np.full(n, c)}))
