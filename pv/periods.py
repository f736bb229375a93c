"""Calendar periods: quarters ("2023Q1", "2023Q1:2024Q4") and their arithmetic, and the ends of months,
quarters and years that as-of series step through.

FAERS publishes one extract per calendar quarter and most analyses step through quarters, so this small module
is shared by ingestion, simulation, analysis runs (the trend), re-analysis series and the signal backtest.

>>> parse_quarters("2023Q3:2024Q1")
[Quarter(year=2023, q=3), Quarter(year=2023, q=4), Quarter(year=2024, q=1)]
>>> Quarter.parse("24q2").short
'24Q2'
>>> quarter_end(datetime.date(2023, 11, 28))
datetime.date(2023, 12, 31)
>>> period_end(datetime.date(2024, 2, 10), "month")
datetime.date(2024, 2, 29)
>>> as_of_dates(datetime.date(2023, 2, 15), datetime.date(2023, 9, 30))
[datetime.date(2023, 3, 31), datetime.date(2023, 6, 30), datetime.date(2023, 9, 30)]
>>> as_of_dates(datetime.date(2023, 12, 31), datetime.date(2024, 3, 30), "month")
[datetime.date(2023, 12, 31), datetime.date(2024, 1, 31), datetime.date(2024, 2, 29)]
>>> as_of_dates(datetime.date(2021, 1, 1), datetime.date(2023, 12, 30), "year")
[datetime.date(2021, 12, 31), datetime.date(2022, 12, 31)]
>>> period_ends(datetime.date(2023, 5, 20), datetime.date(2023, 11, 15))
[datetime.date(2023, 6, 30), datetime.date(2023, 9, 30), datetime.date(2023, 11, 15)]
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, overload

from pv.errors import InputError

#: The periods of an as-of series: each as-of date is the last day of one.
Every = Literal["month", "quarter", "year"]

_MONTHS_IN: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
_QUARTER = re.compile(r"^\s*(\d{2}|\d{4})\s*[-_ ]?\s*[Qq]\s*([1-4])\s*$")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter. Ordered; ``q + 1`` is the next quarter, ``b - a`` the quarters between."""

    year: int
    q: int

    def __post_init__(self) -> None:
        if not 1 <= self.q <= 4:
            raise InputError(f"quarter number must be 1-4, got {self.q}", field="quarter")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """'2023Q1', '2023q1', '2023-Q1', '23Q1' (two-digit years are 20yy)."""
        m = _QUARTER.match(str(text))
        if not m:
            raise InputError(f"not a quarter: {text!r} (expected e.g. 2023Q1)", field="quarter")
        year = int(m.group(1))
        if year < 100:
            year += 2000
        return cls(year, int(m.group(2)))

    @classmethod
    def of(cls, date: datetime.date) -> Quarter:
        """The quarter containing ``date``."""
        return cls(date.year, (date.month - 1) // 3 + 1)

    @classmethod
    def from_index(cls, index: int) -> Quarter:
        return cls(index // 4, index % 4 + 1)

    @property
    def index(self) -> int:
        """Quarters since year 0: consecutive quarters have consecutive indexes."""
        return self.year * 4 + self.q - 1

    @property
    def start(self) -> datetime.date:
        return datetime.date(self.year, 3 * self.q - 2, 1)

    @property
    def end(self) -> datetime.date:
        return (self + 1).start - datetime.timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def short(self) -> str:
        """'23Q1', as in FAERS file names (DEMO23Q1.txt)."""
        return f"{self.year % 100:02d}Q{self.q}"

    def __add__(self, n: int) -> Quarter:
        return Quarter.from_index(self.index + int(n))

    @overload
    def __sub__(self, other: Quarter) -> int: ...

    @overload
    def __sub__(self, other: int) -> Quarter: ...

    def __sub__(self, other: Quarter | int) -> Quarter | int:
        if isinstance(other, Quarter):
            return self.index - other.index
        return Quarter.from_index(self.index - int(other))

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"


def quarter_range(first: Quarter | str, last: Quarter | str) -> list[Quarter]:
    """Every quarter from ``first`` to ``last`` inclusive."""
    a = first if isinstance(first, Quarter) else Quarter.parse(first)
    b = last if isinstance(last, Quarter) else Quarter.parse(last)
    if b < a:
        raise InputError(f"quarter range runs backwards: {a}:{b}", field="quarters")
    return [Quarter.from_index(i) for i in range(a.index, b.index + 1)]


def iter_quarters(first: Quarter | str, last: Quarter | str) -> Iterator[Quarter]:
    yield from quarter_range(first, last)


def parse_quarters(spec: str) -> list[Quarter]:
    """'2023Q1:2024Q4' (inclusive range), '2023Q1' or a comma list of either; sorted, without repeats."""
    out: set[Quarter] = set()
    parts = [p for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise InputError("no quarters given (expected e.g. 2023Q1:2024Q4)", field="quarters")
    for part in parts:
        if ":" in part:
            a, _, b = part.partition(":")
            out.update(quarter_range(a, b))
        else:
            out.add(Quarter.parse(part))
    return sorted(out)


def quarter_start(date: datetime.date) -> datetime.date:
    return Quarter.of(date).start


def quarter_end(date: datetime.date) -> datetime.date:
    return Quarter.of(date).end


def quarter_of(date: datetime.date) -> Quarter:
    return Quarter.of(date)


def _months_in(every: str) -> int:
    months = _MONTHS_IN.get(every)
    if months is None:
        raise InputError(f"unknown period {every!r}; expected month, quarter or year", field="every")
    return months


def _month_end(year: int, month: int) -> datetime.date:
    if month == 12:
        return datetime.date(year, 12, 31)
    return datetime.date(year, month + 1, 1) - datetime.timedelta(days=1)


def period_end(date: datetime.date, every: Every) -> datetime.date:
    """The last day of the month, quarter or year (``every``) containing ``date``."""
    months = _months_in(every)
    return _month_end(date.year, ((date.month - 1) // months + 1) * months)


def as_of_dates(start: datetime.date, end: datetime.date, every: Every = "quarter") -> list[datetime.date]:
    """The period ends (month, quarter or year) falling within [start, end], in order.

    Empty when no period ends in the range (e.g. 2023-01-01 to 2023-03-30 by quarter). ``end`` before
    ``start`` or an unknown period is an :class:`~pv.errors.InputError`.
    """
    if end < start:
        raise InputError(f"--to {end} is before --from {start}", field="to")
    out: list[datetime.date] = []
    day = period_end(start, every)
    while day <= end:
        out.append(day)
        day = period_end(day + datetime.timedelta(days=1), every)
    return out


def period_ends(since: datetime.date, as_of: datetime.date) -> list[datetime.date]:
    """Quarter ends from the quarter of ``since`` up to ``as_of``, plus ``as_of`` when it is not one.

    The cut points of a cumulative trend: always ends with ``as_of`` (alone when ``as_of`` falls before the
    quarter of ``since``).
    """
    first = quarter_start(since)
    out = as_of_dates(first, as_of, "quarter") if as_of >= first else []
    if not out or out[-1] != as_of:
        out.append(as_of)
    return out
