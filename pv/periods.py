"""Temporary: replaced by the periods module."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pv.errors import InputError

Every = Literal["month", "quarter", "year"]


def period_ends(since: dt.date, as_of: dt.date) -> list[dt.date]:
    """Quarter ends from the quarter of ``since`` up to ``as_of``, plus ``as_of`` when it is not one."""
    out: list[dt.date] = []
    year, quarter = since.year, (since.month - 1) // 3 + 1
    while True:
        month = quarter * 3
        end = dt.date(year, month, 31 if month in (3, 12) else 30)
        if end > as_of:
            break
        out.append(end)
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
    if not out or out[-1] != as_of:
        out.append(as_of)
    return out


def _period_end(year: int, month: int) -> dt.date:
    if month == 12:
        return dt.date(year, 12, 31)
    return dt.date(year, month + 1, 1) - dt.timedelta(days=1)


def as_of_dates(start: dt.date, end: dt.date, every: Every = "quarter") -> list[dt.date]:
    """The period ends (month, quarter or year) falling within [start, end]."""
    if end < start:
        raise InputError(f"--to {end} is before --from {start}", field="to")
    step = {"month": 1, "quarter": 3, "year": 12}.get(every)
    if step is None:
        raise InputError(f"unknown period {every!r}; expected month, quarter or year", field="every")
    out = []
    year, month = start.year, start.month
    month = ((month - 1) // step + 1) * step  # the period end month of start's period
    while True:
        d = _period_end(year, month)
        if d > end:
            break
        if d >= start:
            out.append(d)
        month += step
        if month > 12:
            year, month = year + 1, month - 12
    return out
