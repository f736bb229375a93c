"""E2B(R3) ICSR parsing: hand-made fixtures to exact values, hostile and malformed XML, property tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pv.errors import HostileInputError, InputError, PvError, UnreadableFileError
from pv.ingest.batch import DRUG_COLUMNS, REACTION_COLUMNS, VERSION_COLUMNS
from pv.ingest.e2b import e2b_files, parse_e2b, parse_e2b_bytes

DATA = Path(__file__).parent / "data" / "e2b"
KYMRIAH = "US-NOVARTIS-NVSC2023US198765"
D = dt.date


def rows(frame):  # type: ignore[no-untyped-def]
    return frame.to_dict("records")


def test_kymriah_initial_every_field() -> None:
    batch = parse_e2b(DATA / "kymriah_initial.xml")
    assert (batch.kind, batch.rows_read, batch.deleted_case_keys) == ("e2b", 1, [])
    assert batch.name.endswith("kymriah_initial.xml") and len(batch.sha256) == 64
    assert batch.quarantine.empty
    assert list(batch.versions.columns) == VERSION_COLUMNS
    report = f"{KYMRIAH}#20231110093000"
    assert rows(batch.versions) == [{
        "case_key": KYMRIAH, "report_id": report, "version": 20231102, "initial_or_followup": "I",
        "received_date": D(2023, 11, 2), "initial_received_date": D(2023, 11, 2),
        "event_date": D(2023, 10, 18), "age_years": 62.0, "age_group": "adult", "sex": "M", "weight_kg": 78.5,
        "reporter_country": "US", "occurrence_country": "US", "report_type": "spontaneous",
        "outcomes": ["HO"],
    }]
    assert list(batch.drugs.columns) == DRUG_COLUMNS
    drugs = batch.drugs.drop(columns=["case_key", "report_id"])
    assert rows(drugs) == [
        {"seq": 1, "role": "PS", "drugname": "KYMRIAH", "active_ingredient": "TISAGENLECLEUCEL",
         "route": "Intravenous", "dose_text": "single infusion, 3.0 x 10^8 CAR-positive viable T cells",
         "start_date": D(2023, 10, 16), "end_date": D(2023, 10, 16)},
        {"seq": 2, "role": "C", "drugname": "Fludarabine phosphate",
         "active_ingredient": "FLUDARABINE PHOSPHATE",
         "route": "042", "dose_text": "25 mg/m2", "start_date": D(2023, 10, 10), "end_date": D(2023, 10, 12)},
        {"seq": 3, "role": "C", "drugname": "Cyclophosphamide", "active_ingredient": None, "route": None,
         "dose_text": None, "start_date": None, "end_date": None},
        {"seq": 4, "role": "C", "drugname": "ACTEMRA", "active_ingredient": "TOCILIZUMAB", "route": None,
         "dose_text": "8 mg/kg once", "start_date": D(2023, 10, 19), "end_date": None},
    ]
    assert (batch.drugs["report_id"] == report).all()
    assert list(batch.reactions.columns) == REACTION_COLUMNS
    assert rows(batch.reactions) == [{"case_key": KYMRIAH, "report_id": report,
                                      "pt_verbatim": "Cytokine release syndrome", "meddra_code": "10052015",
                                      "outcome": "recovering"}]
    assert rows(batch.indications) == [
        {"case_key": KYMRIAH, "report_id": report, "drug_seq": 1, "term": "Diffuse large B-cell lymphoma"},
        {"case_key": KYMRIAH, "report_id": report, "drug_seq": 4, "term": "Cytokine release syndrome"},
    ]


def test_kymriah_followup_is_a_later_version_of_the_same_case() -> None:
    initial = parse_e2b(DATA / "kymriah_initial.xml").versions.iloc[0]
    batch = parse_e2b(DATA / "kymriah_followup.xml")
    v = batch.versions.iloc[0]
    assert v["case_key"] == initial["case_key"] == KYMRIAH
    assert v["report_id"] == f"{KYMRIAH}#20240322141500" != initial["report_id"]
    assert v["version"] == 20240320 > initial["version"]
    assert (v["initial_or_followup"], v["received_date"], v["initial_received_date"]) == (
        "F", D(2024, 3, 20), D(2023, 11, 2))
    assert v["weight_kg"] == 76.0
    # E.i.3.2: LT and OT true on the lymphoma, HO on the CRS; FDA required intervention false
    assert v["outcomes"] == ["LT", "HO", "OT"]
    assert v["event_date"] == D(2023, 10, 18)  # earliest E.i.4
    assert rows(batch.reactions[["pt_verbatim", "meddra_code", "outcome"]]) == [
        {"pt_verbatim": "Cytokine release syndrome", "meddra_code": "10052015", "outcome": "recovered"},
        {"pt_verbatim": "T-cell lymphoma", "meddra_code": "10042971", "outcome": "not recovered"},
    ]
    assert list(batch.drugs["role"]) == ["PS", "C", "C", "C"]


def test_batch_file_loads_good_icsrs_and_quarantines_bad_ones() -> None:
    batch = parse_e2b(DATA / "batch_mixed.xml")
    assert batch.rows_read == 5
    assert list(batch.versions["case_key"]) == ["CN-FOSUNKITE-2024CN000311", "JP-JNJFOC-20240354321"]
    assert batch.deleted_case_keys == ["EU-EC-10005550123"]  # C.1.11.1 nullification
    cn, jp = rows(batch.versions)
    assert (cn["sex"], cn["age_years"], cn["weight_kg"], cn["outcomes"], cn["reporter_country"]) == (
        "F", 54.0, None, ["HO"], "CN")
    assert cn["report_id"] == "CN-FOSUNKITE-2024CN000311#20240411100000"  # time zone offset ignored
    # age 6 decades, 154 lb, fatal outcome -> DE, disability -> DS, study report, primary source of priority 1
    assert (jp["age_years"], jp["weight_kg"], jp["outcomes"], jp["report_type"], jp["reporter_country"],
            jp["occurrence_country"], jp["initial_or_followup"]) == (
        60.0, 69.8532, ["DE", "DS"], "study", "JP", "JP", "F")
    jp_drugs = batch.drugs[batch.drugs["case_key"] == "JP-JNJFOC-20240354321"]
    # G.k.1 = 4 (drug not administered, PLACEBO, seq 1) is left out; 1 -> PS then SS; 3 -> I
    assert rows(jp_drugs[["seq", "role", "drugname", "active_ingredient", "route", "start_date"]]) == [
        {"seq": 2, "role": "PS", "drugname": "CARVYKTI", "active_ingredient": "CILTACABTAGENE AUTOLEUCEL",
         "route": None, "start_date": D(2023, 11, 6)},
        {"seq": 3, "role": "SS", "drugname": "LENALIDOMIDE\\DEXAMETHASONE",
         "active_ingredient": "LENALIDOMIDE\\DEXAMETHASONE", "route": "Oral", "start_date": D(2023, 12, 1)},
        {"seq": 4, "role": "I", "drugname": "FLUCONAZOLE", "active_ingredient": None, "route": None,
         "start_date": None},
    ]
    cn_drug = batch.drugs.iloc[0]
    assert (cn_drug["drugname"], cn_drug["route"], cn_drug["dose_text"]) == (
        "奕凯达 (阿基仑赛注射液)", "静脉输注", "2 10*6/kg")
    # no displayName: E.i.1.2 (translation) wins over the Japanese E.i.1.1a
    assert list(batch.reactions["pt_verbatim"]) == ["Immune effector cell-associated neurotoxicity syndrome",
                                                    "Parkinsonism"]
    assert list(batch.indications["term"]) == ["Diffuse large B-cell lymphoma",
                                               "Plasma cell myeloma refractory"]
    assert rows(batch.quarantine) == [
        {"file": str(DATA / "batch_mixed.xml"), "line": 285, "field": "C.1.8.1",
         "raw": "C.1.1=US-BMS-2024-112233", "reason": "missing worldwide unique case identifier (C.1.8.1)"},
        {"file": str(DATA / "batch_mixed.xml"), "line": 314, "field": "E.i.4",
         "raw": "C.1.1=US-CELGENE-2024-070707; C.1.8.1=US-CELGENE-2024-070707",
         "reason": "impossible date '20240231'"},
    ]
    lines = (DATA / "batch_mixed.xml").read_text(encoding="utf-8").splitlines()
    assert "<investigationEvent" in lines[285 - 1]
    assert '<low value="20240231"/>' in lines[314 - 1]


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml", "external_dtd.xml"])
def test_hostile_xml_is_refused_naming_the_file(name: str) -> None:
    with pytest.raises(HostileInputError) as info:
        parse_e2b(DATA / name)
    err = info.value
    assert err.file == str(DATA / name) and err.line == 2
    assert "document type declaration" in str(err) and name in str(err)


def test_entity_reference_without_declaration_is_malformed_not_expanded() -> None:
    data = b'<PORR_IN049016UV xmlns="urn:hl7-org:v3"><x>&lol9;</x></PORR_IN049016UV>'
    with pytest.raises(UnreadableFileError, match="undefined entity"):
        parse_e2b_bytes(data, "x.xml")


def test_malformed_xml_names_file_and_line() -> None:
    with pytest.raises(UnreadableFileError) as info:
        parse_e2b(DATA / "truncated.xml")
    assert info.value.file == str(DATA / "truncated.xml")
    assert info.value.line == 47
    assert "not well-formed XML" in str(info.value)


def test_not_an_icsr_file() -> None:
    with pytest.raises(UnreadableFileError, match="no PORR_IN049016UV"):
        parse_e2b_bytes(b"<?xml version='1.0'?>\n<note>hello</note>", "note.xml")


@pytest.mark.parametrize("mutation, field, reason", [
    (('<availabilityTime value="20231102"/>', ""), "C.1.5", "missing date of most recent information"),
    (('extension="US-NOVARTIS-NVSC2023US198765"/>\n        <code', 'extension=""/>\n        <code'),
     "C.1.8.1", "missing worldwide unique case identifier"),
    (('<low value="20231016"/>', '<low value="2023-10-16"/>'), "G.k.4.r.4", "impossible date '2023-10-16'"),
    (('<effectiveTime value="20231110093000"/>', '<effectiveTime value="18991231"/>'), "C.1.2",
     "year outside 1900-2099"),
    (('<value xsi:type="CE" code="2" codeSystem="2.16.840.1.113883.3.989.2.1.1.13"',
      '<value xsi:type="CE" code="7" codeSystem="2.16.840.1.113883.3.989.2.1.1.13"'), "G.k.1",
     "unknown characterisation of drug role (G.k.1) '7'"),
    (('<id root="b3a1d2c4-0001-4000-8000-00000000a001"/>\n                        <consumable',
      '<consumable'), "G.k.1", "drug 1 has no characterisation"),
])
def test_a_bad_icsr_goes_to_quarantine_whole(mutation: tuple[str, str], field: str, reason: str) -> None:
    text = (DATA / "kymriah_initial.xml").read_text(encoding="utf-8")
    old, new = mutation
    assert old in text
    batch = parse_e2b_bytes(text.replace(old, new, 1).encode(), "mutated.xml")
    assert batch.versions.empty and batch.drugs.empty and batch.reactions.empty
    (row,) = rows(batch.quarantine)
    assert row["file"] == "mutated.xml" and row["field"] == field and reason in row["reason"]
    assert isinstance(row["line"], int) and row["line"] > 1


def test_folder_expands_to_its_xml_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.xml", "sub/a.XML", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in e2b_files([tmp_path])] == ["b.xml", "sub/a.XML"]
    with pytest.raises(UnreadableFileError, match="no such file"):
        e2b_files([tmp_path / "missing.xml"])


# ------------------------------------------------------------------------------------------- properties
VALID = (DATA / "kymriah_followup.xml").read_bytes()


def _outcome(data: bytes) -> None:
    try:
        batch = parse_e2b_bytes(data, "fuzz.xml")
    except PvError as exc:
        assert isinstance(exc, InputError) and exc.file == "fuzz.xml"
        return
    loaded = len(batch.versions) + len(batch.quarantine)
    assert batch.rows_read - len(batch.deleted_case_keys) <= loaded <= batch.rows_read
    assert batch.versions["case_key"].map(lambda k: isinstance(k, str) and k != "").all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _outcome(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 40), st.binary(max_size=12)),
                min_size=1, max_size=6))
def test_mutations_of_a_valid_file_never_crash(edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(VALID)
    for at, cut, insert in edits:
        at = min(at, len(data))
        data[at:at + cut] = insert
    _outcome(bytes(data))


ATTRIBUTE_VALUES = st.one_of(st.text(max_size=20), st.from_regex(r"[0-9]{0,16}", fullmatch=True),
                             st.sampled_from(["", "true", "false", "-1", "1e309", "nan", "20240230",
                                              "{decade}"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_attribute_values_end_in_a_batch_or_quarantine(data: st.DataObject) -> None:
    import re

    text = VALID.decode("utf-8")
    spots = [m.span(1) for m in re.finditer(r'(?:value|code|unit|extension|root)="([^"]*)"', text)]
    for _ in range(data.draw(st.integers(1, 5))):
        start, end = data.draw(st.sampled_from(spots))
        value = data.draw(ATTRIBUTE_VALUES)
        escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        text = text[:start] + escaped + text[end:]
        spots = [m.span(1) for m in re.finditer(r'(?:value|code|unit|extension|root)="([^"]*)"', text)]
    try:
        batch = parse_e2b_bytes(text.encode("utf-8"), "attrs.xml")
    except UnreadableFileError:  # e.g. a control character drawn into an attribute
        return
    assert len(batch.versions) + len(batch.quarantine) == 1
