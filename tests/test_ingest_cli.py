"""``pv ingest faers`` and ``pv store summary`` through the real entry point on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pv.cli import main

from .conftest import REAL_DATA
from .faers_fixtures import case, write_quarter


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def summary(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, _ = run(["store", "summary", "--format", "json"], capsys)
    assert code == 0
    return json.loads(out)


def test_ingest_real_quarters_and_summary(pv_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ingest", "faers", str(REAL_DATA / "faers_ascii_2017q2.zip"),
                        str(REAL_DATA / "aers_ascii_2004q1.zip")], capsys)
    assert code == 0
    assert "faers_ascii_2017q2.zip" in out and "2004Q1" in out and "2 loaded, 0 already loaded, 0 refused" in out
    data = summary(capsys)
    assert data["cases"] == 200 and data["case_versions"] == 200 and data["quarantined"] == 0
    assert data["drugs"] == 328 + 386 and data["reactions"] == 286 + 416
    assert set(data) >= {"cases_by_product", "cases_by_event_group"}
    assert data["cases_by_event_group"]["icans"] > 0  # type: ignore[index]

    code, out, _ = run(["ingest", "faers", str(REAL_DATA / "faers_ascii_2017q2.zip")], capsys)
    assert code == 0 and "0 loaded, 1 already loaded, 0 refused" in out
    assert summary(capsys)["cases"] == 200

    code, out, _ = run(["store", "summary"], capsys)
    assert code == 0 and "case_versions" in out and "Cases by product" in out


def test_unreadable_file_fails_but_others_load(pv_env: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    good = write_quarter(tmp_path, "23Q1", [case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")],
                                                 reactions=["Cytokine release syndrome"])],
                         raw={"REAC": b"primaryid$caseid$pt$drug_rec_act\n"
                                      b"11$1$Cytokine release syndrome$\n9$9$X$\n"})
    code, out, _ = run(["ingest", "faers", str(junk), str(good)], capsys)
    assert code == 1
    assert "refused" in out and "not a zip" in out and "1 loaded, 0 already loaded, 1 refused" in out
    data = summary(capsys)
    assert data["cases"] == 1 and data["quarantined"] == 1
    assert data["cases_by_product"] == {"tisagenlecleucel": 1}
    assert data["cases_by_event_group"]["crs"] == 1  # type: ignore[index]


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ingest", "faers"], capsys)
    assert code == 2 and "PATH" in err.upper()
