"""Options shared by the commands: output formats, the interval between as-of dates, dates; how a command's
process ends."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pv.errors import InputError


class TableOrJson(StrEnum):
    table = "table"
    json = "json"


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class Every(StrEnum):
    """Period ends: month, quarter or year."""

    month = "month"
    quarter = "quarter"
    year = "year"


def iso_date(value: str | None, option: str) -> dt.date | None:
    """The date of an option given as YYYY-MM-DD; None when the option was not given."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"not a date (expected YYYY-MM-DD): {value!r}", field=option) from exc


class ProcessEnd:
    """Set ``at_once`` when a command's work is done and written: ``pv`` run as a process then ends without
    Python's teardown of the modules (for pandas, SciPy and Arrow about 0.15 s of CPU), once the standard streams
    are flushed and the ``atexit`` handlers have run. Only for commands that hold nothing else open (files,
    connections): see :func:`pv.cli.main`."""

    at_once = False
