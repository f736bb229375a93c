"""CSV ingestion with column mappings: both layouts, the real CAERS extract, mapping errors, properties."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pv.errors import ConfigError, PvError
from pv.ingest.csv import load_mapping, mapping_from_dict, parse_csv, parse_csv_bytes
from tests.conftest import REAL_DATA, REPO

MAPPINGS = REPO / "config" / "mappings"
DATA = Path(__file__).parent / "data" / "csv"
CAERS = REAL_DATA / "caers_2012.csv"
D = dt.date


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def test_per_case_layout_example() -> None:
    batch = parse_csv(DATA / "example_per_case.csv", MAPPINGS / "example_per_case.yaml")
    assert (batch.kind, batch.rows_read) == ("csv", 10)
    v = batch.versions.set_index("report_id")
    assert list(v.index) == ["H-2024-001#v1", "H-2024-001#v2", "H-2024-002#v1", "H-2024-008#v1"]
    assert list(v["case_key"]) == ["HOSP-H-2024-001", "HOSP-H-2024-001", "HOSP-H-2024-002", "HOSP-H-2024-008"]
    first = v.loc["H-2024-001#v1"]
    assert (first["version"], first["received_date"], first["event_date"], first["sex"], first["age_years"],
            first["weight_kg"], first["reporter_country"], first["outcomes"]) == (
        1, D(2024, 3, 12), D(2024, 3, 2), "F", 58.0, 64.5, "FR", ["LT", "HO"])
    assert v.loc["H-2024-001#v2", "version"] == 2 and v.loc["H-2024-001#v2", "weight_kg"] == 63.0
    second = v.loc["H-2024-002#v1"]
    # 7 decades, not serious
    assert (second["sex"], second["age_years"], second["outcomes"]) == ("M", 70.0, [])
    drugs = batch.drugs[batch.drugs["report_id"] == "H-2024-001#v1"]
    assert rows(drugs[["seq", "role", "drugname", "route"]]) == [
        {"seq": 1, "role": "PS", "drugname": "Breyanzi", "route": "IV"},
        {"seq": 2, "role": "C", "drugname": "Fludarabine", "route": "IV"},
        {"seq": 3, "role": "C", "drugname": "Cyclophosphamide", "route": "IV"},
    ]
    # one "suspect" role for two drugs: the first is PS, the second SS
    two = batch.drugs[batch.drugs["report_id"] == "H-2024-002#v1"]
    assert rows(two[["role", "drugname"]]) == [{"role": "PS", "drugname": "ABECMA (idecabtagene vicleucel)"},
                                               {"role": "SS", "drugname": "Carvykti"}]
    # a quoted cell may hold the field delimiter
    assert batch.drugs.iloc[-1]["drugname"] == "CARVYKTI; LOT 24A"
    follow_up = batch.reactions[batch.reactions["report_id"] == "H-2024-001#v2"]
    assert rows(follow_up[["pt_verbatim", "meddra_code"]]) == [
        {"pt_verbatim": "Cytokine release syndrome", "meddra_code": "10052015"},
        {"pt_verbatim": "Neurotoxicity", "meddra_code": "10029350"},
        {"pt_verbatim": "Hepatitis B reactivation", "meddra_code": "10058827"},
    ]
    # "DLBCL||" is aligned with the three drugs: only the first has an indication
    assert rows(batch.indications[["report_id", "drug_seq", "term"]]) == [
        {"report_id": "H-2024-001#v1", "drug_seq": 1, "term": "Diffuse large B-cell lymphoma"},
        {"report_id": "H-2024-001#v2", "drug_seq": 1, "term": "Diffuse large B-cell lymphoma"},
        {"report_id": "H-2024-002#v1", "drug_seq": 1, "term": "Plasma cell myeloma"},
        {"report_id": "H-2024-002#v1", "drug_seq": 2, "term": "Plasma cell myeloma"},
    ]
    assert rows(batch.quarantine[["line", "field", "reason"]]) == [
        {"line": 5, "field": "Received", "reason": "impossible date '31/02/2024' (expected %d/%m/%Y)"},
        {"line": 6, "field": "Case number", "reason": "missing case id"},
        {"line": 7, "field": "Roles", "reason": "3 values for 2 items (give one per item or one for all)"},
        {"line": 8, "field": "Serious", "reason": "unknown seriousness 'maybe' (yes/no)"},
        {"line": 9, "field": "Version", "reason": "version 'one' is not a whole number"},
        {"line": 10, "field": None, "reason": "6 fields, the header has 17"},
    ]
    assert batch.quarantine.iloc[0]["raw"].startswith("H-2024-003;1;31/02/2024;homme")
    assert set(batch.quarantine["file"]) == {str(DATA / "example_per_case.csv")}


ROW_MAPPING = {
    "layout": "row",
    "columns": {"case_id": "case", "report_id": "report", "received_date": "fda_dt", "drug": "product",
                "role": "role", "event": "pt", "event_date": "onset", "age": "age", "age_unit": "age_cod",
                "outcomes": "outc"},
}


def test_row_layout_groups_rows_into_versions_and_quarantines_bad_rows() -> None:
    text = (
        "case,report,fda_dt,product,role,pt,onset,age,age_cod,outc\n"
        "100,100-1,20240105,KYMRIAH,PS,Cytokine release syndrome,20231020,45,YR,HO\n"
        "100,100-1,20240105,KYMRIAH,PS,Neurotoxicity,20231022,45,YR,LT\n"
        "100,100-1,20240105,TOCILIZUMAB,C,Cytokine release syndrome,,45,YR,\n"
        "100,100-2,2024-03-01,KYMRIAH,PS,T-cell lymphoma,202402,45,YR,OT\n"
        ",100-3,20240401,KYMRIAH,PS,Pyrexia,,45,YR,\n"
        "101,101-1,20241301,ABECMA,PS,Pyrexia,,30,MON,\n"
        "102,102-1,20240110,YESCARTA,suspect,Aphasia,,,,\n"
        "102,102-1,20240110,CARVYKTI,suspect,Aphasia,,,,\n"
        "103,103-1,20240111,YESCARTA,XX,Aphasia,,,,\n"
        "104,104-1,20240112,YESCARTA,PS,Aphasia,,,,bleeding\n"
        "\n"
        "105,105-1,20240113,,,,,,,\n"
        "106,106-1,20240113,\"BREYANZI, 1 BAG\",,Seizure,,18,MON,DE;HO\n"
    )
    mapping = mapping_from_dict(ROW_MAPPING, "inline.yaml")
    batch = parse_csv_bytes(text.encode(), "rows.csv", mapping)
    assert batch.rows_read == 12
    assert rows(batch.versions[["case_key", "report_id", "received_date", "event_date", "age_years",
                                "outcomes"]]) == [
        {"case_key": "100", "report_id": "100-1", "received_date": D(2024, 1, 5),
         "event_date": D(2023, 10, 20), "age_years": 45.0, "outcomes": ["LT", "HO"]},
        {"case_key": "100", "report_id": "100-2", "received_date": D(2024, 3, 1),
         "event_date": D(2024, 2, 1), "age_years": 45.0, "outcomes": ["OT"]},
        {"case_key": "102", "report_id": "102-1", "received_date": D(2024, 1, 10), "event_date": None,
         "age_years": None, "outcomes": []},
        {"case_key": "106", "report_id": "106-1", "received_date": D(2024, 1, 13), "event_date": None,
         "age_years": 1.5, "outcomes": ["DE", "HO"]},
    ]
    assert rows(batch.drugs[["report_id", "seq", "role", "drugname"]]) == [
        {"report_id": "100-1", "seq": 1, "role": "PS", "drugname": "KYMRIAH"},
        {"report_id": "100-1", "seq": 2, "role": "C", "drugname": "TOCILIZUMAB"},
        {"report_id": "100-2", "seq": 1, "role": "PS", "drugname": "KYMRIAH"},
        {"report_id": "102-1", "seq": 1, "role": "PS", "drugname": "YESCARTA"},
        {"report_id": "102-1", "seq": 2, "role": "SS", "drugname": "CARVYKTI"},
        {"report_id": "106-1", "seq": 1, "role": "PS", "drugname": "BREYANZI, 1 BAG"},  # default role PS
    ]
    assert rows(batch.reactions[["report_id", "pt_verbatim"]]) == [
        {"report_id": "100-1", "pt_verbatim": "Cytokine release syndrome"},
        {"report_id": "100-1", "pt_verbatim": "Neurotoxicity"},
        {"report_id": "100-2", "pt_verbatim": "T-cell lymphoma"},
        {"report_id": "102-1", "pt_verbatim": "Aphasia"},
        {"report_id": "106-1", "pt_verbatim": "Seizure"},
    ]
    assert rows(batch.quarantine[["line", "field", "reason"]]) == [
        {"line": 6, "field": "case", "reason": "missing case id"},
        {"line": 7, "field": "fda_dt", "reason": "impossible date '20241301'"},
        {"line": 10, "field": "role", "reason": "unknown role 'XX' (PS, SS, C, I or suspect, concomitant, "
                                                "interacting)"},
        {"line": 11, "field": "outc", "reason": "unknown outcome 'bleeding' (DE LT HO DS CA RI OT)"},
        {"line": 13, "field": "product", "reason": "neither a drug nor an event"},
    ]


def test_real_caers_extract() -> None:
    batch = parse_csv(CAERS, MAPPINGS / "caers.yaml")
    raw = pd.read_csv(CAERS, dtype=str, keep_default_na=False)
    assert batch.rows_read == len(raw) == 20156
    assert batch.quarantine.empty
    assert len(batch.versions) == batch.versions["case_key"].nunique() == raw["id"].nunique() == 3356
    assert set(batch.versions["case_key"]) == {f"CAERS-{i}" for i in raw["id"]}
    ids = batch.versions["case_key"].str.removeprefix("CAERS-")
    assert batch.versions["report_id"].tolist() == ids.tolist()
    assert batch.versions["sex"].value_counts().to_dict() == {"F": 2120, "M": 1013, "UNK": 223}
    assert (batch.drugs["role"] == "PS").all()
    assert len(batch.drugs) == len(raw[["id", "var1"]].drop_duplicates())
    assert len(batch.reactions) == len(raw[["id", "var2"]].drop_duplicates())
    # the product-event pairs that openEBGM counts (reference README: 17,189)
    pairs = batch.drugs[["case_key", "drugname"]].merge(batch.reactions[["case_key", "pt_verbatim"]])
    assert len(pairs[["drugname", "pt_verbatim"]].drop_duplicates()) == 17189
    first = batch.versions.iloc[0]
    assert (first["case_key"], first["sex"]) == ("CAERS-147289", "F")
    assert batch.reactions[batch.reactions["case_key"] == "CAERS-147289"]["pt_verbatim"].tolist()[:4] == [
        "BRAIN NEOPLASM", "CEREBROVASCULAR ACCIDENT", "RENAL DISORDER", "GOUT"]


@pytest.mark.parametrize("change, message", [
    ({"colums": {}}, "x.yaml: colums: unknown key"),
    ({"columns": {"case_id": "id", "event": "var2"}}, "x.yaml: columns.drug: required"),
    ({"columns": {"case_id": "id", "drug": "var1", "event": "var2", "gender": "strat1"}},
     "x.yaml: columns.gender: unknown field"),
    ({"columns": {"case_id": "id", "drug": 3, "event": "var2"}},
     "x.yaml: columns.drug: must be a column name"),
    ({"layout": "wide"}, "x.yaml: layout: must be one of row, case"),
    ({"layout": "case"}, "x.yaml: list_delimiter: required with layout 'case'"),
    ({"delimiter": ";;"}, "x.yaml: delimiter: must be a single character"),
    ({"list_delimiter": ","}, "x.yaml: list_delimiter: must differ"),
    ({"defaults": {"role": "boss"}}, "x.yaml: defaults.role: unknown role 'boss'"),
    ({"defaults": {"case_id": "1"}}, "x.yaml: defaults.case_id: not a field"),
    ({"values": {"sex": ["F"]}}, "x.yaml: values.sex: must be a mapping"),
    ({"date_format": "%d/%m"}, "x.yaml: date_format: must be a strptime format with %Y"),
    ({"encoding": "klingon"}, "x.yaml: encoding: unknown encoding"),
])
def test_mapping_errors_name_the_file_and_key(change: dict[str, Any], message: str) -> None:
    raw = {"columns": {"case_id": "id", "drug": "var1", "event": "var2"}} | change
    with pytest.raises(ConfigError) as info:
        mapping_from_dict(raw, "x.yaml")
    assert str(info.value).startswith(message)


def test_mapping_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_mapping(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=f"{bad}: a CSV mapping must be a YAML mapping"):
        load_mapping(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("columns: {case_id: id, drug: product, event: var2}\n")
    with pytest.raises(ConfigError) as info:
        parse_csv(CAERS, wrong)
    expected = f"{wrong}: columns.drug: column 'product' is not in the header of {CAERS}"
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize("name", ["caers.yaml", "example_per_case.yaml"])
def test_shipped_report_mappings_are_valid(name: str) -> None:
    assert load_mapping(MAPPINGS / name).columns["case_id"]


def test_empty_file_is_unreadable() -> None:
    mapping = load_mapping(MAPPINGS / "caers.yaml")
    with pytest.raises(PvError, match="empty file"):
        parse_csv_bytes(b"\n\n", "empty.csv", mapping)


# ------------------------------------------------------------------------------------------- properties
CAERS_MAPPING = load_mapping(MAPPINGS / "caers.yaml")
CASE_MAPPING = load_mapping(MAPPINGS / "example_per_case.yaml")
EXAMPLE = (DATA / "example_per_case.csv").read_bytes()


def _outcome(data: bytes, mapping: Any) -> None:
    try:
        batch = parse_csv_bytes(data, "fuzz.csv", mapping)
    except PvError:
        return
    assert len(batch.quarantine) <= batch.rows_read
    assert batch.versions["case_key"].map(lambda k: isinstance(k, str) and k != "").all()
    assert set(batch.drugs["role"]) <= {"PS", "SS", "C", "I"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=1000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _outcome(b'"id","var1","var2","strat1"\n' + data, CAERS_MAPPING)
    _outcome(data, CASE_MAPPING)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(EXAMPLE) - 1), st.integers(0, 10),
                          st.sampled_from([b"", b";", b"|", b'"', b"\n", b"\r", b"31/13/2024", b"\x00",
                                           b"\xff", b"x", b"yes", b"PS"])), min_size=1, max_size=8))
def test_mutations_of_a_valid_file_never_crash(edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(EXAMPLE)
    for at, cut, insert in edits:
        at = min(at, len(data))
        data[at:at + cut] = insert
    _outcome(bytes(data), CASE_MAPPING)
