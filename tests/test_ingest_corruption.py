"""Quiet corruption (issue 14, point 10): what used to load silently wrong is now quarantined or refused.

- one invalid byte in a UTF-8 member no longer decodes the whole member as Latin-1 (mojibake): the line holding
  it is quarantined, the valid UTF-8 names load as written; a member with no UTF-8 at all is still Latin-1;
- a CSV field over 131,072 characters quarantines its row, not the file; a damaged row of a UTF-8 CSV too;
- a DEMO without its sex column, an E2B file in a foreign namespace, an unknown data scope: refused;
- a receipt date in the future (FAERS fda_dt, E2B C.1.5, CSV received date) is quarantined.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from pv.analysis.runs import request_run
from pv.errors import InputError, UnreadableFileError
from pv.ingest.csv import mapping_from_dict, parse_csv_bytes
from pv.ingest.delimited import read_table
from pv.ingest.e2b import parse_e2b_bytes
from pv.ingest.faers import parse_quarter
from tests.faers_fixtures import FAERS_HEADERS, case, write_quarter

E2B = Path(__file__).parent / "data" / "e2b"
DRUG_HEADER = b"primaryid$caseid$drug_seq$role_cod$drugname\n"


def test_one_invalid_byte_quarantines_its_line_and_keeps_utf8_names() -> None:
    data = DRUG_HEADER + "1$1$1$PS$奕凯达 (Yikaida)\n".encode() + b"2$2$1$PS$BAD \xff NAME\n" + b"3$3$1$PS$KYMRIAH\n"
    table = read_table(data, "DRUG24Q1.txt")
    assert table.frame["drugname"].tolist() == ["奕凯达 (Yikaida)", "KYMRIAH"]
    assert table.frame["_line"].tolist() == [2, 4]
    (row,) = table.quarantine
    assert row["line"] == 3 and row["raw"] == "2$2$1$PS$BAD \ufffd NAME"
    assert "not valid UTF-8 (byte 0xff at character 14)" in str(row["reason"])
    assert table.rows_read == 3


def test_a_member_without_any_utf8_is_latin1() -> None:
    table = read_table(DRUG_HEADER + "1$1$1$PS$CAFÉ GÜNTHER\n".encode("latin-1"), "DRUG24Q1.txt")
    assert table.frame["drugname"].tolist() == ["CAFÉ GÜNTHER"] and table.quarantine == []


ROW_MAPPING = mapping_from_dict({
    "layout": "row",
    "columns": {"case_id": "case", "received_date": "received", "drug": "product", "event": "pt",
                "role": "role"},
}, "inline.yaml")


def test_a_csv_field_over_the_limit_quarantines_its_row_not_the_file() -> None:
    text = ("case,received,product,role,pt\n"
            "1,20240105,KYMRIAH,PS,Pyrexia\n"
            f"2,20240105,KYMRIAH,PS,{'x' * 200_000}\n"
            "3,20240105,YESCARTA,PS,Aphasia\n")
    batch = parse_csv_bytes(text.encode(), "long.csv", ROW_MAPPING)
    assert batch.versions["case_key"].tolist() == ["1", "3"]
    (row,) = batch.quarantine.to_dict("records")
    assert (row["line"], row["field"]) == (3, "pt")
    assert row["reason"] == "field of 200,000 characters, over the limit of 131,072"


def test_a_damaged_row_of_a_utf8_csv_is_quarantined_and_the_names_stay_utf8() -> None:
    data = ("case,received,product,role,pt\n"
            "1,20240105,奕凯达,PS,Pyrexia\n").encode() + b"2,20240105,BAD\xe9,PS,Aphasia\n"
    batch = parse_csv_bytes(data, "mixed.csv", ROW_MAPPING)
    assert batch.drugs["drugname"].tolist() == ["奕凯达"]
    (row,) = batch.quarantine.to_dict("records")
    assert row["line"] == 3 and row["field"] == "product" and "not valid UTF-8 (byte 0xe9" in row["reason"]
    # a Windows-1252 file (no UTF-8 at all) is still read as such
    legacy = parse_csv_bytes("case,received,product,role,pt\n1,20240105,CAFÉ,PS,Pyrexia\n".encode("cp1252"),
                             "legacy.csv", ROW_MAPPING)
    assert legacy.drugs["drugname"].tolist() == ["CAFÉ"] and legacy.quarantine.empty


def test_a_demo_without_its_sex_column_is_refused(tmp_path: Path) -> None:
    header = FAERS_HEADERS["DEMO"].replace("$sex", "")
    demo = (header + "\n" + "$".join(["11", "1", "1", "I"] + [""] * 3 + ["20230110"]
                                     + [""] * (header.count("$") - 7)) + "\n").encode()
    path = write_quarter(tmp_path, "23Q1", raw={"DEMO": demo})
    with pytest.raises(UnreadableFileError, match="DEMO header lacks the sex column") as err:
        parse_quarter(path)
    assert err.value.field == "sex"


def test_future_receipt_dates_are_quarantined(tmp_path: Path) -> None:
    path = write_quarter(tmp_path, "23Q1", [
        case(11, 1, 1, "20230110", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"]),
        case(12, 2, 1, "20991231", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"]),
    ])
    batch = parse_quarter(path)
    assert batch.versions["report_id"].tolist() == ["11"]
    reasons = batch.quarantine[batch.quarantine["field"] == "fda_dt"]["reason"].tolist()
    assert reasons == ["receipt date (fda_dt) in the future"]

    e2b = (E2B / "kymriah_initial.xml").read_text(encoding="utf-8")
    old = '<availabilityTime value="20231102"/>'
    assert old in e2b
    icsr = parse_e2b_bytes(e2b.replace(old, '<availabilityTime value="20991231"/>').encode(), "future.xml")
    (row,) = icsr.quarantine.to_dict("records")
    assert row["field"] == "C.1.5" and "2099-12-31 is in the future" in row["reason"]

    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    csv = parse_csv_bytes((f"case,received,product,role,pt\n1,{tomorrow:%Y%m%d},KYMRIAH,PS,Pyrexia\n"
                           "2,20991231,KYMRIAH,PS,Pyrexia\n").encode(), "future.csv", ROW_MAPPING)
    assert csv.versions["case_key"].tolist() == ["1"]  # a day ahead is a sender east of UTC, not an error
    assert csv.quarantine["reason"].tolist() == ["receipt date 2099-12-31 is in the future"]


def test_an_e2b_file_in_a_foreign_namespace_is_refused() -> None:
    text = (E2B / "kymriah_initial.xml").read_text(encoding="utf-8")
    assert 'xmlns="urn:hl7-org:v3"' in text
    with pytest.raises(UnreadableFileError, match="in the namespace 'urn:example:not-hl7', not HL7 v3"):
        parse_e2b_bytes(text.replace('xmlns="urn:hl7-org:v3"', 'xmlns="urn:example:not-hl7"').encode(), "x.xml")


def test_an_unknown_data_scope_is_refused(session: Session) -> None:
    with pytest.raises(InputError, match="unknown data scope 'faers2'; scopes are: all, faers, aers, e2b, csv"):
        request_run(session, dt.date(2024, 3, 31), scope="faers2")
