"""Bounded resources on compressed input (issue 14, point 5): a quarter's zip whose members would inflate past
the limits is refused before anything is inflated, with a message naming the member and the setting."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from pv.errors import UnreadableFileError
from pv.ingest.faers import ZipLimits, parse_quarter
from pv.settings import get_settings
from tests.conftest import REAL_DATA

DEMO = b"primaryid$caseid$caseversion$fda_dt$sex\n1001$1$1$20240105$F\n"


def _quarter(tmp_path: Path, members: dict[str, bytes], name: str = "q.zip") -> Path:
    """A quarter's zip: ``members`` over a DRUG and a REAC member of one line each."""
    path = tmp_path / name
    members = {"DRUG24Q1.txt": b"primaryid$caseid$drug_seq$role_cod$drugname\n1001$1$1$PS$KYMRIAH\n",
               "REAC24Q1.txt": b"primaryid$caseid$pt\n1001$1$Pyrexia\n", **members}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in members.items():
            z.writestr(member, data)
    return path


def test_a_member_over_the_size_limit_is_refused_naming_it(tmp_path: Path) -> None:
    path = _quarter(tmp_path, {"DEMO24Q1.txt": DEMO, "DRUG24Q1.txt": b"x" * 3_000_000})
    with pytest.raises(UnreadableFileError, match=r"DRUG24Q1\.txt inflates to 3,000,000 bytes, over the limit "
                                                  r"of 2,000,000 \(PV_INGEST_MAX_MEMBER_BYTES\)") as err:
        parse_quarter(path, limits=ZipLimits(max_member_bytes=2_000_000))
    assert err.value.file == str(path)


def test_a_member_over_the_compression_ratio_is_refused(tmp_path: Path) -> None:
    path = _quarter(tmp_path, {"DEMO24Q1.txt": DEMO, "REAC24Q1.txt": b"\0" * 20_000_000})
    with pytest.raises(UnreadableFileError, match=r"REAC24Q1\.txt inflates [\d,]+ times .* over the limit of "
                                                  r"200 \(PV_INGEST_MAX_RATIO\): a zip bomb"):
        parse_quarter(path, limits=ZipLimits())


def test_members_that_are_never_read_are_not_held_to_the_limits(tmp_path: Path) -> None:
    path = _quarter(tmp_path, {"DEMO24Q1.txt": DEMO, "README.pdf": b"\0" * 20_000_000})
    batch = parse_quarter(path, limits=ZipLimits(max_member_bytes=1_000_000))
    assert batch.versions["report_id"].tolist() == ["1001"]


def test_a_member_that_lies_about_its_size_never_inflates_past_it(tmp_path: Path) -> None:
    """The header says 1,000 bytes; the data inflates to 20 MB: the reader stops at 1,000 and the CRC fails."""
    path = _quarter(tmp_path, {"DEMO24Q1.txt": DEMO + b"\0" * 20_000_000})
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.find(b"PK\x03\x04") + 22, 1000)  # local header: uncompressed size
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 1000)  # central directory: the same
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("DEMO24Q1.txt").file_size == 1000
    with pytest.raises(UnreadableFileError, match=r"cannot read member DEMO24Q1\.txt: Bad CRC-32"):
        parse_quarter(path, limits=ZipLimits())


def test_the_limits_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _quarter(tmp_path, {"DEMO24Q1.txt": DEMO, "DRUG24Q1.txt": b"x" * 3_000_000})
    monkeypatch.setenv("PV_INGEST_MAX_MEMBER_BYTES", "2500000")
    get_settings.cache_clear()
    try:
        assert ZipLimits.from_settings() == ZipLimits(2_500_000, 200.0)
        with pytest.raises(UnreadableFileError, match="over the limit of 2,500,000"):
            parse_quarter(path)
    finally:
        get_settings.cache_clear()


def test_a_real_quarter_is_within_the_default_limits() -> None:
    batch = parse_quarter(REAL_DATA / "faers_ascii_2017q2.zip", limits=ZipLimits())
    assert len(batch.versions) > 0
