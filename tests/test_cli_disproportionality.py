"""``pv disproportionality`` on the real CAERS sample: formats, options and errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pv.cli import main
from tests.conftest import REAL_DATA, REPO

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


def _first_reports(tmp_path: Path, k: int) -> Path:
    raw = pd.read_csv(CAERS)
    path = tmp_path / f"caers_first_{k}.csv"
    raw[raw["id"].isin(raw["id"].drop_duplicates().iloc[:k])].to_csv(path, index=False)
    return path


def test_a_degenerate_prior_is_reported_and_its_ebgm_withheld(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # the first 200 reports: the fit ends on the edge of the parameter space (beta1 = alpha2 = 1e4)
    code, out, err = _run(["disproportionality", str(_first_reports(tmp_path, 200)), "--format", "json",
                           "--all-columns"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["converged"] is True and doc["at_bound"] is True
    assert "degenerate" in doc["reason"] and "alpha2 = 1e+04 at its upper bound" in doc["reason"]
    assert "EBGM, EB05 and EB95 withheld: the MGPS prior is degenerate" in err
    pairs = doc["pairs"]
    assert len(pairs) == 828
    assert all(p["ebgm"] is None and p["eb05"] is None and p["ebgm_signal"] is False for p in pairs)
    assert sum(p["prr_signal"] for p in pairs) == 15 and all(p["ic"] is not None for p in pairs)


def test_every_pair_is_written_when_the_prior_is_degenerate(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # the first 300 reports used to stop the command with no output (a posterior quantile did not converge)
    code, out, err = _run(["disproportionality", str(_first_reports(tmp_path, 300))], capsys)
    assert code == 0 and "withheld" in err
    table = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert len(table) == 1288 and table["eb05"].isna().all() and table["prr"].notna().all()


def test_a_table_with_fewer_than_five_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rows.csv"
    pd.DataFrame({"id": [1, 1, 2, 3], "var1": ["A", "A", "B", "B"], "var2": ["x", "y", "x", "y"]}).to_csv(
        src, index=False)
    code, out, err = _run(["disproportionality", str(src), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["hyperparameters"] is None and doc["converged"] is False and doc["loglik"] is None
    assert doc["reason"] == "MGPS needs at least 5 pairs to fit its 5 hyperparameters, the table has 4"
    assert "withheld: MGPS needs at least 5 pairs" in err
    assert len(doc["pairs"]) == 4 and all(p["ror"] is not None and p["ebgm"] is None for p in doc["pairs"])


def test_pairs_whose_quantiles_fail_are_summarised_on_stderr(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pv.stats import mgps as mgps_module

    solve = mgps_module._mixture_quantile
    monkeypatch.setattr(mgps_module, "_mixture_quantile",
                        lambda *a, **k: solve(*a, **{**k, "max_iter": 2}))  # too few iterations for some pairs
    code, out, err = _run(["disproportionality", str(CAERS), "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    empty = sum(p["eb05"] is None or p["eb95"] is None for p in doc["pairs"])
    assert 0 < empty == doc["quantiles_not_converged"] and doc["reason"] is None
    assert f"EB05/EB95 left empty for {empty} pair(s)" in err
    assert all(p["ebgm"] is not None for p in doc["pairs"])


@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_the_process_ends_at_once_with_all_its_output(output_format: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Run as a process, the command ends without Python's teardown: what it wrote to a pipe and to a file is
    whole, and its status is 0."""
    args = ["disproportionality", str(CAERS), "--strata", "strat1", "--format", output_format]
    code, expected, _ = _run(args, capsys)
    assert code == 0
    piped = subprocess.run([sys.executable, "-m", "pv", *args], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected
    written = tmp_path / "out.txt"
    done = subprocess.run([sys.executable, "-m", "pv", *args, "-o", str(written)], cwd=REPO, timeout=300)
    assert done.returncode == 0
    assert written.read_text(encoding="utf-8") == expected


def test_a_reader_that_goes_away_early_ends_the_command_quietly() -> None:
    """``pv disproportionality FILE | head``: the output (megabytes) outgrows the pipe, the reader closes it after
    a line, and the command ends with status 0 and nothing on stderr, as it did when it wrote text."""
    proc = subprocess.Popen([sys.executable, "-m", "pv", "disproportionality", str(CAERS)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(8) == b"product,"
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0
    assert err == b""
