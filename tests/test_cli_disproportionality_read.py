"""How ``pv disproportionality`` reads its case-level CSV: Arrow's reader, pandas' for what Arrow rejects.

Both must give what pandas' reader gave (text, empty cells missing), and the command's CSV must be the text
pandas writes for the table of :func:`pv.stats.disproportionality`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pv.cli import main
from pv.cli.disproportionality import read_case_rows
from pv.errors import UnreadableFileError
from pv.stats import RESULT_COLUMNS, disproportionality
from tests.conftest import REAL_DATA

CAERS = REAL_DATA / "caers_2012.csv"
COLUMNS = ["id", "var1", "var2", "strat1"]


def _pandas_read(path: Path, columns: list[str]) -> pd.DataFrame:
    """The reading the command did with pandas alone."""
    return pd.read_csv(path, usecols=columns, dtype=dict.fromkeys(columns, str), keep_default_na=False,
                       na_values=[""])


def _same_frame(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got[list(expected.columns)]
    assert list(got.columns) == list(expected.columns)
    assert got.isna().equals(expected.isna())  # missing cells: None from Arrow, NaN from pandas
    assert got.where(got.notna(), np.nan).equals(expected)


def test_arrow_reads_what_pandas_read(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_bytes(
        "\ufeffid,var1,var2,strat1\r\n"
        '1,"A, B",x,F\r\n'
        '2,"say ""hi""","two\nlines",\r\n'
        "3,,y,M\r\n"
        "\r\n"
        '4,"",NA,null\r\n'
        "5,C ,  z,F\r\n"
        "007,é,ü,M\r\n".encode()
    )
    _same_frame(read_case_rows(src, COLUMNS), _pandas_read(src, COLUMNS))
    _same_frame(read_case_rows(CAERS, COLUMNS), _pandas_read(CAERS, COLUMNS))


def test_rows_arrow_rejects_are_read_by_pandas_as_before(tmp_path: Path) -> None:
    src = tmp_path / "ragged.csv"
    src.write_text("id,var1,var2\n1,a,x\n2,b,y,extra\n3,c\n")
    _same_frame(read_case_rows(src, COLUMNS[:3]), _pandas_read(src, COLUMNS[:3]))


def test_text_that_is_not_utf8_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "latin1.csv"
    src.write_bytes("id,var1,var2\n1,caf\u00e9,x\n".encode("latin-1"))
    with pytest.raises(UnreadableFileError, match="not a readable CSV file"):
        read_case_rows(src, COLUMNS[:3])
    with pytest.raises(SystemExit) as exc:
        main(["disproportionality", str(src)])
    assert exc.value.code == 1
    assert capsys.readouterr().err.startswith(f"pv: error: {src}: not a readable CSV file")


@pytest.mark.parametrize("strata", [[], ["--strata", "strat1"]])
def test_command_writes_the_text_pandas_writes(strata: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    main(["disproportionality", str(CAERS), *strata])
    out = capsys.readouterr().out
    rows = _pandas_read(CAERS, COLUMNS)
    table = disproportionality(rows, product_col="var1", event_col="var2", strata=strata[1:] or None)
    expected = table[RESULT_COLUMNS].astype({"product": str, "event": str}).to_csv(index=False)
    assert out == expected
    assert len(pd.read_csv(io.StringIO(out))) == len(table)


def test_categorical_columns_hold_the_same_texts(tmp_path: Path) -> None:
    """Columns asked for as categories (the command's ids, products and events) hold what the text read holds."""
    src = tmp_path / "ragged.csv"
    src.write_text("id,var1,var2\n1,a,x\n2,b,y,extra\n3,,z\n")  # read by pandas
    for path in (CAERS, src):
        plain = read_case_rows(path, COLUMNS[:3])
        coded = read_case_rows(path, COLUMNS[:3], categorical=["id", "var1"])
        assert isinstance(coded["var1"].dtype, pd.CategoricalDtype)
        assert isinstance(coded["id"].dtype, pd.CategoricalDtype)
        assert coded["var2"].dtype == object
        _same_frame(coded.astype(object), plain)
