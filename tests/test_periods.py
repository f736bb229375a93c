"""Calendar periods (pv.periods): quarter parsing and arithmetic, period ends and as-of series."""

import datetime
import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pv.periods
from pv.errors import InputError
from pv.periods import (
    Quarter,
    as_of_dates,
    iter_quarters,
    parse_quarters,
    period_end,
    period_ends,
    quarter_end,
    quarter_range,
    quarter_start,
)

D = datetime.date
PERIODS = ("month", "quarter", "year")


def test_parse_forms() -> None:
    assert Quarter.parse("2023Q1") == Quarter(2023, 1)
    assert Quarter.parse("2023q4") == Quarter(2023, 4)
    assert Quarter.parse("23Q2") == Quarter(2023, 2)
    assert Quarter.parse(" 2024-Q3 ") == Quarter(2024, 3)
    assert str(Quarter(2024, 3)) == "2024Q3"
    assert Quarter(2023, 1).short == "23Q1"


@pytest.mark.parametrize("bad", ["2023Q5", "2023Q0", "2023", "Q1", "", "2023Q1x", "abcdQ1"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        Quarter.parse(bad)


def test_ranges() -> None:
    qs = parse_quarters("2023Q1:2024Q4")
    assert len(qs) == 8
    assert qs[0] == Quarter(2023, 1) and qs[-1] == Quarter(2024, 4)
    expected = [Quarter(2023, 4), Quarter(2024, 1), Quarter(2024, 2)]
    assert parse_quarters("2024Q2,2023Q4:2024Q1,2024Q2") == expected
    assert list(iter_quarters("2023Q4", "2024Q1")) == [Quarter(2023, 4), Quarter(2024, 1)]
    with pytest.raises(InputError):
        quarter_range("2024Q1", "2023Q4")
    with pytest.raises(InputError):
        parse_quarters(" , ")


def test_dates() -> None:
    q = Quarter(2024, 1)
    assert q.start == datetime.date(2024, 1, 1)
    assert q.end == datetime.date(2024, 3, 31)
    assert q.days == 91  # leap year
    assert Quarter(2023, 1).days == 90
    assert quarter_end(datetime.date(2023, 11, 28)) == datetime.date(2023, 12, 31)
    assert quarter_start(datetime.date(2023, 11, 28)) == datetime.date(2023, 10, 1)
    assert Quarter.of(datetime.date(2024, 4, 1)) == Quarter(2024, 2)


def test_arithmetic() -> None:
    assert Quarter(2023, 4) + 1 == Quarter(2024, 1)
    assert Quarter(2024, 1) - 1 == Quarter(2023, 4)
    assert Quarter(2024, 4) - Quarter(2023, 1) == 7
    assert Quarter(2023, 4) < Quarter(2024, 1)


@given(st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2100, 12, 31)))
def test_every_date_lies_in_its_quarter(d: datetime.date) -> None:
    q = Quarter.of(d)
    assert q.start <= d <= q.end
    assert (q + 1).start == q.end + datetime.timedelta(days=1)
    assert Quarter.from_index(q.index) == q
    assert Quarter.parse(str(q)) == q


def test_module_examples() -> None:
    assert doctest.testmod(pv.periods).failed == 0


def test_period_end() -> None:
    assert period_end(D(2023, 2, 15), "month") == D(2023, 2, 28)
    assert period_end(D(2024, 2, 1), "month") == D(2024, 2, 29)
    assert period_end(D(2023, 12, 31), "month") == D(2023, 12, 31)
    assert period_end(D(2023, 4, 1), "quarter") == D(2023, 6, 30)
    assert period_end(D(2023, 3, 31), "quarter") == D(2023, 3, 31)
    assert period_end(D(2023, 1, 1), "year") == D(2023, 12, 31)
    with pytest.raises(InputError, match="unknown period 'week'") as err:
        period_end(D(2023, 1, 1), "week")  # type: ignore[arg-type]
    assert err.value.field == "every"


def test_as_of_dates_are_period_ends_within_the_range() -> None:
    assert as_of_dates(D(2023, 2, 15), D(2023, 12, 31)) == [D(2023, 3, 31), D(2023, 6, 30), D(2023, 9, 30),
                                                            D(2023, 12, 31)]
    assert as_of_dates(D(2023, 1, 1), D(2023, 3, 30), "month") == [D(2023, 1, 31), D(2023, 2, 28)]
    assert as_of_dates(D(2020, 6, 1), D(2023, 6, 1), "year") == [D(2020, 12, 31), D(2021, 12, 31),
                                                                 D(2022, 12, 31)]


def test_as_of_dates_boundaries_are_inclusive() -> None:
    assert as_of_dates(D(2023, 3, 31), D(2023, 6, 30)) == [D(2023, 3, 31), D(2023, 6, 30)]
    assert as_of_dates(D(2023, 6, 30), D(2023, 6, 30)) == [D(2023, 6, 30)]
    assert as_of_dates(D(2023, 1, 31), D(2023, 1, 31), "month") == [D(2023, 1, 31)]
    assert as_of_dates(D(2022, 12, 31), D(2023, 12, 31), "year") == [D(2022, 12, 31), D(2023, 12, 31)]
    assert as_of_dates(D(2023, 3, 31), D(2023, 4, 30), "month") == [D(2023, 3, 31), D(2023, 4, 30)]


def test_as_of_dates_leap_years() -> None:
    assert as_of_dates(D(2024, 2, 1), D(2024, 3, 1), "month") == [D(2024, 2, 29)]
    assert as_of_dates(D(2023, 2, 1), D(2023, 3, 1), "month") == [D(2023, 2, 28)]
    assert as_of_dates(D(2000, 2, 29), D(2000, 2, 29), "month") == [D(2000, 2, 29)]  # divisible by 400
    assert as_of_dates(D(2100, 2, 1), D(2100, 2, 28), "month") == [D(2100, 2, 28)]  # divisible by 100 only
    assert as_of_dates(D(2024, 2, 29), D(2025, 2, 28), "year") == [D(2024, 12, 31)]


def test_as_of_dates_empty_ranges() -> None:
    assert as_of_dates(D(2023, 1, 1), D(2023, 3, 30)) == []
    assert as_of_dates(D(2023, 1, 1), D(2023, 1, 1), "month") == []
    assert as_of_dates(D(2023, 1, 1), D(2023, 12, 30), "year") == []
    assert as_of_dates(D(2023, 4, 1), D(2023, 4, 1)) == []


def test_as_of_dates_errors() -> None:
    with pytest.raises(InputError, match="before --from") as err:
        as_of_dates(D(2023, 1, 1), D(2022, 1, 1))
    assert err.value.field == "to"
    with pytest.raises(InputError, match="unknown period 'week'") as err:
        as_of_dates(D(2023, 1, 1), D(2024, 1, 1), "week")  # type: ignore[arg-type]
    assert err.value.field == "every"
    with pytest.raises(InputError) as err:  # the range is checked first
        as_of_dates(D(2023, 1, 1), D(2022, 1, 1), "week")  # type: ignore[arg-type]
    assert err.value.field == "to"


def test_period_ends() -> None:
    assert period_ends(D(2023, 5, 20), D(2023, 12, 31)) == [D(2023, 6, 30), D(2023, 9, 30), D(2023, 12, 31)]
    assert period_ends(D(2023, 5, 20), D(2023, 11, 15)) == [D(2023, 6, 30), D(2023, 9, 30), D(2023, 11, 15)]
    assert period_ends(D(2023, 4, 1), D(2023, 6, 30)) == [D(2023, 6, 30)]
    assert period_ends(D(2023, 6, 30), D(2023, 7, 1)) == [D(2023, 6, 30), D(2023, 7, 1)]
    # as_of before the first quarter end, or before the quarter of since: as_of alone
    assert period_ends(D(2023, 5, 20), D(2023, 5, 1)) == [D(2023, 5, 1)]
    assert period_ends(D(2023, 5, 20), D(2022, 1, 1)) == [D(2022, 1, 1)]


_dates = st.dates(min_value=D(1995, 1, 1), max_value=D(2105, 12, 31))


@given(_dates, st.integers(min_value=0, max_value=1200), st.sampled_from(PERIODS))
def test_as_of_dates_are_every_period_end_in_the_range(start: datetime.date, days: int, every: str) -> None:
    end = start + datetime.timedelta(days=days)
    got = as_of_dates(start, end, every)  # type: ignore[arg-type]
    # every date returned is a period end inside [start, end]
    assert all(start <= d <= end and period_end(d, every) == d for d in got)  # type: ignore[arg-type]
    # consecutive: each is the end of the period following the previous one
    for a, b in zip(got, got[1:], strict=False):
        assert period_end(a + datetime.timedelta(days=1), every) == b  # type: ignore[arg-type]
    # none missed: exactly the days of the range that end their period
    every_day = (start + datetime.timedelta(days=i) for i in range(days + 1))
    assert got == [d for d in every_day if (d + datetime.timedelta(days=1)).day == 1
                   and (d.month % {"month": 1, "quarter": 3, "year": 12}[every] == 0)]


@given(_dates, st.integers(min_value=-400, max_value=1200))
def test_period_ends_end_each_quarter_then_at_as_of(since: datetime.date, days: int) -> None:
    as_of = since + datetime.timedelta(days=days)
    got = period_ends(since, as_of)
    assert got[-1] == as_of
    assert got == sorted(set(got))
    q_ends = got if got[-1] == quarter_end(as_of) else got[:-1]
    assert all(quarter_end(d) == d for d in q_ends)
    if quarter_end(since) <= as_of:
        assert got[0] == quarter_end(since)
        assert q_ends == [q.end for q in quarter_range(Quarter.of(since), Quarter.of(as_of))
                          if q.end <= as_of]
    else:
        assert got == [as_of]

