"""``pv disproportionality`` on the real CAERS sample: formats, options and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from pv.cli import main
from tests.conftest import REAL_DATA

CAERS = REAL_DATA / "caers_2012.csv"
COLUMNS = ["product", "event", "n", "expected", "prr", "prr_chi2", "ror", "ror_lower", "ror_upper", "ic",
           "ic025", "ic975", "ebgm", "eb05", "eb95"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_defaults_work_on_caers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["disproportionality", str(CAERS)], capsys)
    assert code == 0
    table = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert list(table.columns) == COLUMNS
    assert len(table) == 17189
    row = table[(table["product"] == "5 HOUR ENERGY") & (table["event"] == "MYOCARDIAL INFARCTION")].iloc[0]
    assert row["n"] == 6


def test_json_stratified_with_min_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["disproportionality", str(CAERS), "--strata", "strat1", "--format", "json",
                         "--min-count", "3"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert set(doc["hyperparameters"]) == {"alpha1", "beta1", "alpha2", "beta2", "p"}
    assert doc["loglik"] < 0 and doc["converged"] is True
    assert doc["pairs"] and all(p["n"] >= 3 for p in doc["pairs"])
    assert list(doc["pairs"][0]) == COLUMNS


def test_table_format_and_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.txt"
    code, out, _ = _run(["disproportionality", str(CAERS), "--format", "table", "--min-count", "20",
                         "--output", str(target)], capsys)
    assert code == 0 and out == ""
    lines = target.read_text().splitlines()
    assert lines[0].split() == COLUMNS and len(lines) > 1


def test_custom_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rows.csv"
    pd.DataFrame({"case": [1, 1, 2, 3, 4, 5, 6, 7], "drug": list("AABBCCAD"),
                  "pt": list("xyxyzxzz")}).to_csv(src, index=False)
    args = ["disproportionality", str(src), "--id", "case", "--product", "drug", "--event", "pt"]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    assert len(pd.read_csv(io.StringIO(out))) == 8


def test_missing_column_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["disproportionality", str(CAERS), "--product", "drug"], capsys)
    assert code == 1 and "field 'drug'" in err and "caers_2012.csv" in err
    code, _, err = _run(["disproportionality", str(tmp_path / "none.csv")], capsys)
    assert code == 1 and "no such file" in err
