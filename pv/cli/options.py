"""Choices shared by the commands: output formats and the interval between as-of dates."""

from __future__ import annotations

from enum import StrEnum


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
