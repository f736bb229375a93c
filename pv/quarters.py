"""Calendar quarters: parsing ("2023Q1", "2023Q1:2024Q4"), arithmetic and date helpers.

FAERS publishes one extract per calendar quarter and most analyses step through quarters, so this small module
is shared by ingestion, simulation and the signal cycle.

>>> parse_quarters("2023Q3:2024Q1")
[Quarter(year=2023, q=3), Quarter(year=2023, q=4), Quarter(year=2024, q=1)]
>>> Quarter.parse("24q2").short
'24Q2'
>>> quarter_end(datetime.date(2023, 11, 28))
datetime.date(2023, 12, 31)
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import overload

from pv.errors import InputError

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
