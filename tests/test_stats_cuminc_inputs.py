"""Inputs of the time-to-event estimators that must never give a silently wrong answer: event codes spelt as
numbers or text, missing group values, constant or collinear Fine-Gray covariates, undefined Gray tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
