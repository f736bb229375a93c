"""Cells of the CSV files pv writes for people (``--format csv``, the case line listing, ``pv disproportionality``)
made safe to open in a spreadsheet: a text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
would be read as a formula (CSV injection: a drug name reported as ``=HYPERLINK(...)``), so it is written with a
leading ``'``. A number (``-0.52``, ``+3``, ``1e-05``) is left as it is: it is data, and no formula."""

from __future__ import annotations

import re

#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_START = "=+-@\t\r"
#: a plain number: never a formula
NUMBER = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"
_NUMBER = re.compile(NUMBER)


def safe_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it, never run: prefixed with ``'`` when it would start a formula."""
    if text and text[0] in FORMULA_START and not _NUMBER.match(text):
        return "'" + text
    return text
