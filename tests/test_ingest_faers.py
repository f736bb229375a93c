"""FAERS / legacy AERS quarter parsing: layouts, conversions, quarantine, unreadable files."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pv.errors import UnreadableFileError
from pv.ingest.delimited import parse_partial_dates, read_table
from pv.ingest.faers import parse_quarter

from .conftest import REAL_DATA
from .faers_fixtures import AERS_HEADERS, FAERS_HEADERS, case, line, write_quarter

D = dt.date


def _row(frame: pd.DataFrame, **where: object) -> dict[str, object]:
    mask = pd.Series(True, index=frame.index)
    for k, v in where.items():
        mask &= frame[k] == v
    rows = frame[mask]
    assert len(rows) == 1, rows
    return rows.iloc[0].to_dict()


def test_real_faers_2017q2() -> None:
    batch = parse_quarter(REAL_DATA / "faers_ascii_2017q2.zip")
    assert (batch.kind, batch.quarter) == ("faers", "2017Q2")
    assert len(batch.versions) == 100 and batch.versions["case_key"].nunique() == 100
    assert batch.quarantine.empty
    assert (len(batch.drugs), len(batch.reactions), len(batch.indications)) == (328, 286, 232)
    v = _row(batch.versions, report_id="115630624")
    assert v["case_key"] == "11563062" and v["version"] == 4 and v["initial_or_followup"] == "F"
    assert v["event_date"] == D(2015, 7, 1)  # 201507: first of the month
    assert v["received_date"] == D(2017, 4, 3) and v["initial_received_date"] == D(2015, 9, 28)
    assert v["age_years"] == 55.0 and v["sex"] == "F" and v["reporter_country"] == "US"
    assert v["outcomes"] == ["OT"] and v["report_type"] == "PER"
    assert _row(batch.versions, report_id="109792364")["event_date"] == D(2003, 1, 1)  # 2003: 1 January
    drug = _row(batch.drugs, report_id="115630624", seq=1)
    assert drug["drugname"] == "XELJANZ" and drug["active_ingredient"] == "TOFACITINIB CITRATE"
    assert drug["role"] == "PS" and drug["route"] == "Oral" and drug["dose_text"] == "5 MG, 2X/DAY"
    assert (drug["start_date"], drug["end_date"]) == (D(2015, 3, 27), D(2015, 7, 1))  # THER join
    assert _row(batch.indications, report_id="115630624")["term"] == "Rheumatoid arthritis"
    # rows_read counts every data line of the seven files
    assert batch.rows_read == 100 + 328 + 232 + 75 + 286 + 2 + 142


def test_real_aers_2004q1() -> None:
    batch = parse_quarter(REAL_DATA / "aers_ascii_2004q1.zip")
    assert (batch.kind, batch.quarter) == ("aers", "2004Q1")
    assert len(batch.versions) == 100 and batch.versions["case_key"].nunique() == 100
    assert batch.quarantine.empty
    assert set(batch.versions["version"]) == {1}
    v = _row(batch.versions, report_id="4265584")
    assert v["case_key"] == "4057482" and v["weight_kg"] == pytest.approx(152 * 0.45359237, abs=1e-3)
    assert v["sex"] == "F" and v["age_years"] == 44.0 and v["received_date"] == D(2004, 1, 7)
    # AERS drug_seq is a global id: drugs are numbered within the report, THER joined on the original id
    drugs = batch.drugs[batch.drugs["report_id"] == "4263742"].sort_values("seq")
    assert list(drugs["seq"][:3]) == [1, 2, 3]
    assert list(drugs["drugname"][:3]) == ["TAVOR", "ALCOHOL", "CITALOPRAM"]
    assert drugs.iloc[0]["start_date"] == D(2003, 11, 15)
    assert set(batch.reactions[batch.reactions["report_id"] == "4263742"]["pt_verbatim"]) >= {
        "DIARRHOEA", "INTENTIONAL OVERDOSE", "MYDRIASIS"}


@pytest.mark.parametrize(("age", "cod", "years"), [
    ("4", "DEC", 40.0), ("35", "YR", 35.0), ("18", "MON", 1.5), ("26", "WK", 0.4983),
    ("365", "DY", 0.9993), ("48", "HR", 0.0055), ("40", "", None), ("40", "XX", None), ("abc", "YR", None),
    ("200", "YR", None),
])
def test_age_conversion(tmp_path: Path, age: str, cod: str, years: float | None) -> None:
    path = write_quarter(tmp_path, "23Q1", [case(11, 1, 1, "20230105", age=age, age_cod=cod)])
    got = parse_quarter(path).versions.iloc[0]["age_years"]
    assert got == (pytest.approx(years, abs=1e-4) if years is not None else None)


@pytest.mark.parametrize(("wt", "cod", "kg"), [
    ("80", "KG", 80.0), ("176", "LBS", 79.832), ("3200", "GMS", 3.2), ("80", "", None)])
def test_weight_conversion(tmp_path: Path, wt: str, cod: str, kg: float | None) -> None:
    path = write_quarter(tmp_path, "23Q1", [case(11, 1, 1, "20230105", wt=wt, wt_cod=cod)])
    got = parse_quarter(path).versions.iloc[0]["weight_kg"]
    assert got == (pytest.approx(kg, abs=1e-3) if kg is not None else None)


def test_partial_dates() -> None:
    dates, bad = parse_partial_dates(pd.Series(["20230215", "202302", "2023", "", None, "20230230", "2023021",
                                                "1850", "abcd", "20231301"]))
    assert list(dates) == [D(2023, 2, 15), D(2023, 2, 1), D(2023, 1, 1), *[None] * 7]
    assert list(bad) == [False, False, False, False, False, True, True, True, True, True]


def test_demographics_and_codes(tmp_path: Path) -> None:
    path = write_quarter(tmp_path, "23Q1", [
        case(11, 1, 1, "20230105", age_grp="E", sex="M", reporter_country="us", occr_country="FR",
             rept_cod="EXP", outcomes=["DE", "HO", "DE"]),
        case(21, 2, 1, "20230106", sex="NS", age_grp="Z"),
    ])
    v = parse_quarter(path).versions.set_index("report_id")
    assert v.loc["11", "age_group"] == "elderly" and v.loc["11", "sex"] == "M"
    assert v.loc["11", "reporter_country"] == "US" and v.loc["11", "occurrence_country"] == "FR"
    assert v.loc["11", "outcomes"] == ["DE", "HO"] and v.loc["21", "outcomes"] == []
    assert v.loc["21", "sex"] == "UNK" and v.loc["21", "age_group"] is None


def test_legacy_variants_upper_case_nested_new_names_crlf_latin1(tmp_path: Path) -> None:
    """gndr_cod instead of sex, .TXT and _new names, deep nesting, CRLF, no trailing $, Latin-1 text."""
    header = FAERS_HEADERS["DEMO"].replace("$sex$", "$gndr_cod$")
    demo = {"primaryid": 11, "caseid": 1, "caseversion": 2, "fda_dt": "20121005", "gndr_cod": "F"}
    members = {
        "FAERS_2012Q4/Data/ASCII/DEMO12Q4_new.TXT":
            (header + "\r\n" + line(header, demo, trailing=False) + "\r\n").encode(),
        "FAERS_2012Q4/Data/ASCII/DRUG12Q4.TXT": (FAERS_HEADERS["DRUG"] + "\r\n" + line(
            FAERS_HEADERS["DRUG"], {"primaryid": 11, "caseid": 1, "drug_seq": 1, "role_cod": "ps",
                                    "drugname": "CAFÉ NOIR"}) + "\r\n").encode("latin-1"),
        "FAERS_2012Q4/Data/ASCII/REAC12Q4.TXT": (FAERS_HEADERS["REAC"] + "\n11$1$Pyrexia$").encode(),
    }
    path = tmp_path / "weird.ZIP"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    batch = parse_quarter(path)
    assert batch.quarantine.empty
    assert batch.quarter == "2012Q4"
    v = batch.versions.iloc[0]
    assert (v["case_key"], v["report_id"], v["version"], v["sex"]) == ("1", "11", 2, "F")
    d = batch.drugs.iloc[0]
    assert d["drugname"] == "CAFÉ NOIR" and d["role"] == "PS"
    assert list(batch.reactions["pt_verbatim"]) == ["Pyrexia"]


def test_folder_and_zip_give_the_same_batch(tmp_path: Path) -> None:
    cases = [case(11, 1, 1, "20230105", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"])]
    a = parse_quarter(write_quarter(tmp_path, "23Q1", cases, as_zip=True))
    b = parse_quarter(write_quarter(tmp_path, "23Q1", cases, as_zip=False))
    assert a.quarter == b.quarter == "2023Q1"
    pd.testing.assert_frame_equal(a.versions, b.versions)
    pd.testing.assert_frame_equal(a.drugs, b.drugs)


def test_aers_layout_fixture(tmp_path: Path) -> None:
    tables = {
        "DEMO": [{"isr": 500, "case": 50, "fda_dt": "20040105", "gndr_cod": "M", "age": "30",
                  "age_cod": "YR"}],
        "DRUG": [{"isr": 500, "drug_seq": 1009999999, "role_cod": "PS", "drugname": "DRUG A"},
                 {"isr": 500, "drug_seq": 1009999998, "role_cod": "C", "drugname": "DRUG B"}],
        "THER": [{"isr": 500, "drug_seq": 1009999998, "start_dt": "200312", "end_dt": "2004"}],
        "INDI": [{"isr": 500, "drug_seq": 1009999998, "indi_pt": "PAIN"}],
        "REAC": [{"isr": 500, "pt": "NAUSEA"}],
        "OUTC": [{"isr": 500, "outc_cod": "HO"}],
    }
    batch = parse_quarter(write_quarter(tmp_path, "04Q1", tables=tables, layout="aers"))
    assert batch.kind == "aers" and batch.quarantine.empty
    drugs = batch.drugs.set_index("seq")
    assert drugs.loc[2, "drugname"] == "DRUG B" and drugs.loc[2, "start_date"] == D(2003, 12, 1)
    assert drugs.loc[2, "end_date"] == D(2004, 1, 1) and drugs.loc[1, "start_date"] is None
    assert batch.indications.iloc[0]["drug_seq"] == 2
    assert batch.versions.iloc[0]["outcomes"] == ["HO"]


def test_ther_several_periods_earliest_start_latest_end(tmp_path: Path) -> None:
    tables = {
        "DEMO": [{"primaryid": 11, "caseid": 1, "caseversion": 1, "fda_dt": "20230105"}],
        "DRUG": [{"primaryid": 11, "caseid": 1, "drug_seq": 1, "role_cod": "PS", "drugname": "X"}],
        "THER": [
            {"primaryid": 11, "caseid": 1, "dsg_drug_seq": 1, "start_dt": "20220301", "end_dt": "20220401"},
            {"primaryid": 11, "caseid": 1, "dsg_drug_seq": 1, "start_dt": "20220101", "end_dt": ""}],
    }
    drug = parse_quarter(write_quarter(tmp_path, "23Q1", tables=tables)).drugs.iloc[0]
    assert (drug["start_date"], drug["end_date"]) == (D(2022, 1, 1), D(2022, 4, 1))


def test_quarantine_each_bad_row_kind_with_line_numbers(tmp_path: Path) -> None:
    h = FAERS_HEADERS
    demo = "\n".join([
        h["DEMO"],
        line(h["DEMO"], {"primaryid": 11, "caseid": 1, "caseversion": 1, "fda_dt": "20230105"}),   # 2 good
        line(h["DEMO"], {"primaryid": "1X", "caseid": 2, "caseversion": 1, "fda_dt": "20230105"}),  # 3 id
        line(h["DEMO"], {"primaryid": 31, "caseid": 3, "caseversion": 1, "fda_dt": "20231345"}),    # 4 date
        "41$4$1$I",                                                                                 # 5 count
        "",                                                                                         # 6 blank
        line(h["DEMO"], {"primaryid": 11, "caseid": 1, "caseversion": 1, "fda_dt": "20230105"}),   # 7 dup
        line(h["DEMO"], {"primaryid": 51, "caseid": 5, "caseversion": 1, "fda_dt": "20230105"}) + "x$",  # 8
    ]) + "\n"
    drug = "\n".join([
        h["DRUG"],
        line(h["DRUG"], {"primaryid": 11, "caseid": 1, "drug_seq": 1, "role_cod": "PS", "drugname": "A"}),
        line(h["DRUG"], {"primaryid": 11, "caseid": 1, "drug_seq": 2, "role_cod": "XX", "drugname": "B"}),
        line(h["DRUG"], {"primaryid": 31, "caseid": 3, "drug_seq": 1, "role_cod": "PS", "drugname": "C"}),
        line(h["DRUG"], {"primaryid": 11, "caseid": 1, "drug_seq": "one", "role_cod": "PS", "drugname": "D"}),
    ]) + "\n"
    reac = f"{h['REAC']}\n11$1$Nausea$\n99$9$Headache$\n11$1$$\n"
    outc = f"{h['OUTC']}\n11$1$ZZ\n11$1$DE\n"
    ther = f"{h['THER']}\n11$1$7$2023$$$\n11$1$1$2023xx$$$\n"
    path = write_quarter(tmp_path, "23Q1", raw={
        "DEMO": demo.encode(), "DRUG": drug.encode(), "REAC": reac.encode(), "OUTC": outc.encode(),
        "THER": ther.encode(), "DELETE": b"123\nabc\n"}, deleted=["123"])
    batch = parse_quarter(path)
    assert list(batch.versions["report_id"]) == ["11"]
    assert list(batch.drugs["drugname"]) == ["A"] and list(batch.reactions["pt_verbatim"]) == ["Nausea"]
    assert batch.versions.iloc[0]["outcomes"] == ["DE"]
    assert batch.deleted_case_keys == ["123"]
    q = {(r.file.split("/")[-1][:4], r.line): (r.field, r.reason) for r in batch.quarantine.itertuples()}
    assert q[("DEMO", 3)] == ("primaryid", "non-numeric id")
    assert q[("DEMO", 4)] == ("fda_dt", "impossible date: 20231345")
    assert q[("DEMO", 5)] == (None, "wrong field count: expected 25, found 4")
    assert q[("DEMO", 7)] == ("primaryid", "duplicate report id in DEMO")
    assert q[("DEMO", 8)] == (None, "wrong field count: expected 25, found 27")
    assert q[("DRUG", 3)] == ("role_cod", "unknown role code: XX")
    assert q[("DRUG", 4)][0] == "primaryid" and "not in DEMO" in q[("DRUG", 4)][1]
    assert q[("DRUG", 5)] == ("drug_seq", "non-numeric id")
    assert "not in DEMO" in q[("REAC", 3)][1] and q[("REAC", 4)] == ("pt", "empty reaction term")
    assert q[("OUTC", 2)] == ("outc_cod", "unknown outcome code: ZZ")
    assert q[("THER", 2)] == ("dsg_drug_seq", "therapy for a drug not in DRUG")
    assert q[("THER", 3)] == ("start_dt", "impossible date: 2023xx")
    assert q[("DELE", 2)] == ("caseid", "non-numeric id")
    assert len(batch.quarantine) == 14
    raw = batch.quarantine[batch.quarantine["line"] == 5]["raw"].iloc[0]
    assert raw == "41$4$1$I"


def test_read_table_trailing_dollar_header_and_data() -> None:
    t = read_table(b"a$b$c$\n1$2$3$\n4$5$6\n7$8\n9$10$11$12\n", "X.txt")
    assert t.header == ["a", "b", "c"]
    assert t.frame[["a", "b", "c"]].values.tolist() == [["1", "2", "3"], ["4", "5", "6"]]
    assert [q["line"] for q in t.quarantine] == [4, 5]
    assert list(t.frame["_line"]) == [2, 3]


def test_unreadable_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(UnreadableFileError, match="not a zip"):
        parse_quarter(junk)
    with pytest.raises(UnreadableFileError, match="no such file"):
        parse_quarter(tmp_path / "missing.zip")
    nodemo = tmp_path / "nodemo.zip"
    with zipfile.ZipFile(nodemo, "w") as zf:
        zf.writestr("ascii/DRUG23Q1.txt", FAERS_HEADERS["DRUG"] + "\n")
    with pytest.raises(UnreadableFileError, match="no DEMO file"):
        parse_quarter(nodemo)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(UnreadableFileError, match="no DEMO file"):
        parse_quarter(tmp_path / "emptydir")
    bad_header = write_quarter(tmp_path, "23Q2", raw={"DEMO": b"foo$bar\n1$2\n"})
    with pytest.raises(UnreadableFileError, match="neither primaryid"):
        parse_quarter(bad_header)
    bad_drug = write_quarter(tmp_path, "23Q3", [case(11, 1, 1, "20230105")],
                             raw={"DRUG": b"primaryid$caseid$drugname\n11$1$X\n"})
    with pytest.raises(UnreadableFileError, match="drug_seq") as err:
        parse_quarter(bad_drug)
    assert err.value.line == 1 and err.value.field == "drug_seq"


def test_aers_headers_match_the_real_file() -> None:
    with zipfile.ZipFile(REAL_DATA / "aers_ascii_2004q1.zip") as zf:
        real = zf.read("ascii/DEMO04Q1.TXT").decode().split("\n", 1)[0].split("$")
    assert AERS_HEADERS["DEMO"].split("$")[:22] == real[:22]
