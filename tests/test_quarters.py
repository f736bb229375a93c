"""Quarter parsing and arithmetic (pv.quarters)."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pv.errors import InputError
from pv.quarters import Quarter, iter_quarters, parse_quarters, quarter_end, quarter_range, quarter_start


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
