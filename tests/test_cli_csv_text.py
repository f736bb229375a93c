"""``pv.cli.csv_text.csv_text`` writes exactly the text of ``DataFrame.to_csv(index=False)``, except that a text a
spreadsheet would read as a formula gets a leading ' (pv.export)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pv.cli import csv_text as csv_text_module
from pv.cli.csv_text import csv_text

TRICKY_FLOATS = [0.0, -0.0, 1.0, 0.1, 1e16, 1e15, 123456789012345678.0, 1e-4, 1e-5, 0.0001234, 5e-324,
                 1.7976931348623157e308, math.inf, -math.inf, math.nan, 2.0 / 3.0, 100.0]
TRICKY_TEXT = ["plain", "", "a,b", 'say "hi"', "two\nlines", "carriage\rreturn", " leading space", "tab\there",
               "é ü 中", "NA", "None", "nan"]


def _same(frame: pd.DataFrame) -> None:
    """What pandas writes, once its texts that would start a spreadsheet formula have their leading ' ."""
    assert csv_text(frame) == csv_text_module._neutralised(frame).to_csv(index=False)


def test_measures_table_like_the_command_writes() -> None:
    rng = np.random.default_rng(1)
    n = 500
    frame = pd.DataFrame({
        "product": [f"PRODUCT {i % 37}" for i in range(n)],
        "event": [f"event {i % 11}" for i in range(n)],
        "n": rng.integers(1, 1000, n),
        "expected": rng.lognormal(0, 3, n),
        "prr": np.where(rng.random(n) < 0.05, np.inf, rng.lognormal(0, 2, n)),
        "prr_chi2": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(0, 4, n)),
        "prr_signal": rng.random(n) < 0.3,
    })
    _same(frame)


def test_tricky_values() -> None:
    floats = TRICKY_FLOATS * 2
    text = (TRICKY_TEXT * 3)[: len(floats)]
    frame = pd.DataFrame({"text": text, "x": floats, "n": np.arange(len(floats), dtype=np.uint64),
                          "flag": [i % 2 == 0 for i in range(len(floats))]})
    _same(frame)
    _same(frame.drop(columns="text"))  # no text: the fast path throughout
    _same(frame.assign(text=[None if i % 3 == 0 else t for i, t in enumerate(text)]))  # missing text


def test_edge_shapes_and_other_column_kinds() -> None:
    _same(pd.DataFrame({"a": pd.Series(dtype="float64"), "b": pd.Series(dtype="object")}))  # no rows
    _same(pd.DataFrame({"only": ["", "x", None]}))  # one column: an empty field alone is quoted
    _same(pd.DataFrame({"only": [math.nan, 1.5]}))
    _same(pd.DataFrame({"a,b": [1.0], 'q"': ["x"]}))  # column names that need quoting
    _same(pd.DataFrame({"f32": np.array([0.1, 2.5], dtype=np.float32), "x": [1.0, 2.0]}))  # written by pandas
    _same(pd.DataFrame({"cat": pd.Categorical(["a", "b"]), "x": [1.0, 2.0]}))
    _same(pd.DataFrame({"cat": pd.Categorical(["b", None, "a,c", "b"]), "x": [1.0, 2.0, 3.0, 4.0]}))  # quoted
    _same(pd.DataFrame({"cat": pd.Categorical([1, 2]), "x": [1.0, 2.0]}))  # categories of numbers: by pandas
    _same(pd.DataFrame({"mixed": ["a", 1], "x": [1.0, 2.0]}))
    _same(pd.DataFrame({"bytes": ["a", b"b"], "x": [1.0, 2.0]}))
    _same(pd.DataFrame({"na": ["a", pd.NA, None, math.nan], "x": [1.0, 2.0, 3.0, 4.0]}))
    _same(pd.DataFrame({"none": [None, None], "x": [1.0, 2.0]}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True, width=64),
                          st.integers(min_value=-(2**63), max_value=2**63 - 1),
                          st.one_of(st.none(), st.text(max_size=8)), st.booleans()),
                max_size=30))
def test_any_table_of_numbers_text_and_flags(rows: list[tuple[float, int, str | None, bool]]) -> None:
    frame = pd.DataFrame({
        "x": pd.Series([r[0] for r in rows], dtype="float64"),
        "n": pd.Series([r[1] for r in rows], dtype="int64"),
        "text": pd.Series([r[2] for r in rows], dtype="object"),
        "flag": pd.Series([r[3] for r in rows], dtype="bool"),
    })
    _same(frame)


def test_floats_from_arrow_are_pythons_repr() -> None:
    """Every magnitude, random digits, whole numbers, boundaries: the text is ``repr``'s, NaN empty."""
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True)
    values = np.concatenate([
        bits.view(np.float64),  # any double, subnormals, infinities and NaNs included
        rng.lognormal(0, 8, 100_000),
        np.round(rng.lognormal(0, 6, 20_000)),
        10.0 ** np.arange(-330, 309),  # 1e-330 is 0, 1e308 the largest power
        np.nextafter(10.0 ** np.arange(-12, 20), 0), np.nextafter(10.0 ** np.arange(-12, 20), np.inf),
        TRICKY_FLOATS,
    ])
    values = np.concatenate([values, -values])
    assert csv_text_module._arrow_agrees()
    expected = ["" if v != v else repr(v) for v in values.tolist()]
    assert csv_text_module._float_texts(values).to_pylist() == expected


def test_floats_without_arrow_are_pythons_repr_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a pyarrow release write floats otherwise, the check at first use sends every float to ``repr``."""
    monkeypatch.setattr(csv_text_module, "_arrow_agrees", lambda: False)
    values = np.array(TRICKY_FLOATS + [3.5, 1e12, 2.5e-6])
    assert csv_text_module._float_texts(values).to_pylist() == ["" if v != v else repr(v) for v in values.tolist()]
    _same(pd.DataFrame({"x": values, "t": ["a"] * len(values)}))


def test_categories_of_texts_are_written_by_their_codes() -> None:
    """Text columns held as categories (as the command's count table holds products and events)."""
    text = (TRICKY_TEXT * 3)[:30]
    frame = pd.DataFrame({"product": pd.Categorical([f"P{i % 7}" for i in range(30)]),
                          "event": pd.Categorical([None if i % 5 == 0 else f"e {i % 4}" for i in range(30)],
                                                  categories=["e 3", "e 0", "e 1", "e 2", "unused"]),
                          "x": np.linspace(0.0, 3.0, 30)})
    _same(frame)
    assert csv_text_module.csv_bytes(frame) == csv_text_module._neutralised(frame).to_csv(index=False).encode()
    _same(frame.assign(product=pd.Categorical(text)))  # texts that need quoting
    _same(frame.iloc[:0])


def test_texts_that_would_start_a_formula_are_neutralised_numbers_are_not() -> None:
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "KYMRIAH", "-0.52", "+3",
               "1e-05", "-"]
    frame = pd.DataFrame({"product": hostile, "event": pd.Categorical(hostile), "n": range(len(hostile))})
    lines = csv_text(frame).splitlines()
    assert lines[1].startswith('"\'=HYPERLINK(""http://x"",""y"")","\'=HYPERLINK')
    cells = [line.split(",") for line in lines[2:]]
    assert [c[0] for c in cells[:8]] == ["'+1+2", "'-2+3", "'@SUM(A1)", "'\tcmd", "KYMRIAH", "-0.52", "+3", "1e-05"]
    assert [c[1] for c in cells[:8]] == [c[0] for c in cells[:8]]  # categories too
    assert cells[8][:2] == ["'-", "'-"]
