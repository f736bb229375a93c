"""CSV cells safe in a spreadsheet (issue 14, point 11): pv.export.safe_cell and the exports that use it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pv.export import FORMULA_START, safe_cell


def test_formulas_get_a_leading_quote_and_numbers_do_not() -> None:
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("@SUM(A1:A9)") == "'@SUM(A1:A9)"
    assert safe_cell("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert safe_cell("-2+3") == "'-2+3"
    assert safe_cell("\t=1") == "'\t=1"
    assert [safe_cell(x) for x in ("-0.52", "+3", "-1e-05", ".5", "12")] == ["-0.52", "+3", "-1e-05", ".5", "12"]
    assert safe_cell("") == "" and safe_cell("Yescarta") == "Yescarta"


@given(st.text(max_size=30))
def test_no_cell_starts_a_formula_unless_it_is_a_number(text: str) -> None:
    out = safe_cell(text)
    assert out in (text, "'" + text)
    if out and out[0] in FORMULA_START:
        float(out)  # a plain number, written as it is
