"""One bad file never stops the others (issue 14, point 6): in `pv ingest` and in the weekly cycle's drop folder,
each file is its own unit; a file that fails is refused with a one-line reason (moved to failed/ in the drop
folder) and the rest load. A failure of the service itself (the database unreachable) is not a file's."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from pv.cli import main
from pv.errors import ConfigError
from pv.ingest import drop
from pv.settings import get_settings
from tests.conftest import REAL_DATA
from tests.faers_fixtures import case, write_quarter


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, _ = capsys.readouterr()
    return code, out


def _bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DEMO24Q1.txt", b"primaryid$caseid$caseversion$fda_dt\n" + b"\0" * 30_000_000)
        z.writestr("DRUG24Q1.txt", b"primaryid$caseid$drug_seq$role_cod$drugname\n")
        z.writestr("REAC24Q1.txt", b"primaryid$caseid$pt\n")
    return path


def _corrupt(path: Path) -> Path:
    """A zip whose DEMO member's deflate stream is damaged (zlib refuses it)."""
    text = b"primaryid$caseid$caseversion$fda_dt\n" + b"".join(b"%d$%d$1$20240105\n" % (i, i) for i in range(5000))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DEMO24Q1.txt", text)
        z.writestr("DRUG24Q1.txt", b"primaryid$caseid$drug_seq$role_cod$drugname\n")
        z.writestr("REAC24Q1.txt", b"primaryid$caseid$pt\n")
    data = bytearray(path.read_bytes())
    start = data.find(b"DEMO24Q1.txt") + len("DEMO24Q1.txt")
    data[start + 10:start + 200] = bytes(range(190))
    path.write_bytes(bytes(data))
    return path


def _good(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_quarter(folder, "23Q1", [case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")],
                                                reactions=["Cytokine release syndrome"])])


def test_pv_ingest_refuses_each_bad_file_with_one_line_and_loads_the_rest(
        pv_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb, corrupt, good = _bomb(tmp_path / "bomb.zip"), _corrupt(tmp_path / "corrupt.zip"), _good(tmp_path / "g")
    code, out = run(["ingest", "faers", str(bomb), str(corrupt), str(good)], capsys)
    assert code == 1
    assert "1 loaded, 0 already loaded, 2 refused" in out
    assert "DEMO24Q1.txt inflates" in out and "PV_INGEST_MAX_RATIO" in out
    assert "cannot read member DEMO24Q1.txt" in out
    code, out = run(["store", "summary", "--format", "json"], capsys)
    assert json.loads(out)["cases"] == 1


def test_a_failure_of_any_kind_in_one_file_is_that_file_s(
        pv_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of memory, a configuration error or a bug while parsing one file: that file is refused, the next loads."""
    import pv.ingest.faers as faers

    first, second = _good(tmp_path / "a"), _good(tmp_path / "b")
    parse = faers.parse_quarter

    def failing(path: Path, progress=None, limits=None):  # type: ignore[no-untyped-def]
        if Path(path) == first:
            raise MemoryError()
        return parse(path, progress, limits)

    monkeypatch.setattr(faers, "parse_quarter", failing)
    code, out = run(["ingest", "faers", str(first), str(second)], capsys)
    assert code == 1 and "1 loaded, 0 already loaded, 1 refused" in out
    assert "out of memory while loading it" in out


def test_file_failure_tells_the_file_s_failures_from_the_service_s() -> None:
    assert drop.file_failure(ConfigError("mapping.yaml: columns.case_id missing")) == (
        "mapping.yaml: columns.case_id missing")
    assert drop.file_failure(ValueError("bad\nvalue")) == "ValueError: bad value"  # one line
    assert drop.file_failure(OperationalError("SELECT 1", {}, Exception("connection refused"))) is None
    assert drop.file_failure(KeyboardInterrupt()) is None


def test_the_weekly_cycle_sets_bad_files_aside_and_goes_on(pv_env: str, tmp_path: Path) -> None:
    from workers.app import app, configure
    from workers.tasks import ingest_file

    configure(app)
    folder = get_settings().var_dir / "drop"
    folder.mkdir(parents=True)
    _bomb(folder / "a_bomb.zip")
    _corrupt(folder / "b_corrupt.zip")
    shutil.copy(REAL_DATA / "faers_ascii_2017q2.zip", folder / "c_good.zip")
    results = [ingest_file.apply(args=(str(p), None, True, str(folder))).get() for p in drop.pending(folder)]
    assert [r["file"] for r in results[:2]] == [str(folder / "a_bomb.zip"), str(folder / "b_corrupt.zip")]
    assert "PV_INGEST_MAX_RATIO" in results[0]["error"] and "cannot read member" in results[1]["error"]
    assert results[2]["cases_added"] == 100
    assert sorted(p.name for p in (folder / "failed").iterdir()) == [
        "a_bomb.zip", "a_bomb.zip.error", "b_corrupt.zip", "b_corrupt.zip.error"]
    assert (folder / "failed" / "a_bomb.zip.error").read_text().count("\n") == 1
    assert (folder / "done" / "c_good.zip").exists()
    assert drop.pending(folder) == []  # nothing left to fail the next cycle
