"""E2B(R3) and CSV batches through the case store (real PostgreSQL, SQLite smoke) and the CLI commands."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.cli import main
from pv.ingest.csv import parse_csv
from pv.ingest.e2b import parse_e2b, parse_e2b_bytes
from pv.ingest.store import load_batch
from pv.ingest.summary import store_summary
from pv.models.casestore import Case, CaseVersion, DeletedCase, Drug, Quarantine, Reaction
from tests.conftest import REAL_DATA, REPO

E2B = Path(__file__).parent / "data" / "e2b"
CSV = Path(__file__).parent / "data" / "csv"
MAPPINGS = REPO / "config" / "mappings"
KYMRIAH = "US-NOVARTIS-NVSC2023US198765"


def _current(session: Session, case_key: str) -> tuple[Case, CaseVersion]:
    case = session.get(Case, case_key)
    assert case is not None
    version = session.get(CaseVersion, case.current_version_id)
    assert version is not None
    return case, version


def _load(session: Session, *names: str) -> None:
    for name in names:
        load_batch(session, parse_e2b(E2B / name))
        session.commit()


@pytest.mark.parametrize("order", [("kymriah_initial.xml", "kymriah_followup.xml"),
                                   ("kymriah_followup.xml", "kymriah_initial.xml")])
def test_e2b_follow_up_replaces_the_initial_version_in_any_order(session: Session,
                                                                 order: tuple[str, str]) -> None:
    _load(session, *order)
    case, current = _current(session, KYMRIAH)
    assert current.report_id == f"{KYMRIAH}#20240322141500"
    assert (case.source, case.version, case.initial_received_date, case.latest_received_date) == (
        "e2b", 20240320, dt.date(2023, 11, 2), dt.date(2024, 3, 20))
    assert (case.sex, case.age_years, case.weight_kg, case.serious, case.died) == ("M", 62.0, 76.0, True, False)
    assert (current.life_threatening, current.hospitalised, current.other_serious) == (True, True, True)
    versions = session.scalars(select(CaseVersion.report_id).where(CaseVersion.case_key == KYMRIAH)
                               .order_by(CaseVersion.received_date)).all()
    assert versions == [f"{KYMRIAH}#20231110093000", f"{KYMRIAH}#20240322141500"]
    drugs = session.execute(select(Drug.role, Drug.drugname, Drug.product)
                            .where(Drug.case_version_id == current.id).order_by(Drug.seq)).all()
    assert [tuple(d) for d in drugs] == [("PS", "KYMRIAH", "tisagenlecleucel"),
                                         ("C", "Fludarabine phosphate", None),
                                         ("C", "Cyclophosphamide", None), ("C", "ACTEMRA", None)]
    pts = session.scalars(select(Reaction.pt).where(Reaction.case_version_id == current.id)
                          .order_by(Reaction.pt)).all()
    assert pts == ["cytokine release syndrome", "t-cell lymphoma"]
    summary = store_summary(session)
    assert summary["cases"] == 1 and summary["case_versions"] == 2
    assert summary["cases_by_product"] == {"tisagenlecleucel": 1}
    assert summary["cases_by_event_group"]["crs"] == 1
    assert summary["cases_by_event_group"]["malignancy_t_cell"] == 1


def test_e2b_batch_file_quarantine_and_nullification(session: Session) -> None:
    batch = parse_e2b(E2B / "batch_mixed.xml")
    summary = load_batch(session, batch)
    session.commit()
    assert (summary.cases_added, summary.versions_loaded, summary.rows_quarantined) == (2, 2, 2)
    assert session.get(DeletedCase, "EU-EC-10005550123") is not None
    products = dict(session.execute(select(Drug.drugname, Drug.product)).all())
    assert products["奕凯达 (阿基仑赛注射液)"] == "axicabtagene ciloleucel"
    assert products["CARVYKTI"] == "ciltacabtagene autoleucel"
    assert "PLACEBO" not in products  # G.k.1 = 4, not administered
    _case, jp = _current(session, "JP-JNJFOC-20240354321")
    assert (jp.died, jp.disabled, jp.report_type, jp.reporter_country) == (True, True, "study", "JP")
    rows = session.execute(select(Quarantine.file, Quarantine.line, Quarantine.field, Quarantine.reason)
                           .order_by(Quarantine.line)).all()
    assert [(Path(f).name, line, field) for f, line, field, _ in rows] == [
        ("batch_mixed.xml", 285, "C.1.8.1"), ("batch_mixed.xml", 314, "E.i.4")]
    again = load_batch(session, parse_e2b(E2B / "batch_mixed.xml"))
    assert again.skipped_duplicate_file


def test_caers_csv_into_postgresql(session: Session) -> None:
    summary = load_batch(session, parse_csv(REAL_DATA / "caers_2012.csv", MAPPINGS / "caers.yaml"))
    session.commit()
    assert (summary.cases_added, summary.versions_loaded, summary.rows_quarantined) == (3356, 3356, 0)
    counts = store_summary(session)
    assert counts["cases"] == 3356
    assert counts["reactions"] == 11312 and counts["drugs"] == 5209


def test_per_case_csv_on_sqlite(sqlite_session: Session) -> None:
    batch = parse_csv(CSV / "example_per_case.csv", MAPPINGS / "example_per_case.yaml")
    summary = load_batch(sqlite_session, batch)
    sqlite_session.commit()
    assert (summary.cases_added, summary.versions_loaded, summary.rows_quarantined) == (3, 4, 6)
    case, current = _current(sqlite_session, "HOSP-H-2024-001")
    assert (case.version, current.report_id, case.weight_kg) == (2, "H-2024-001#v2", 63.0)
    products = sqlite_session.scalars(select(Drug.product).where(Drug.case_version_id == current.id)
                                      .order_by(Drug.seq)).all()
    assert products == ["lisocabtagene maraleucel", None, None]


def test_cli_e2b_folder_loads_good_files_and_reports_hostile_ones(pv_env: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("kymriah_initial.xml", "kymriah_followup.xml", "billion_laughs.xml"):
        shutil.copy(E2B / name, folder / name)
    with pytest.raises(SystemExit) as info:
        main(["ingest", "e2b", str(folder)])
    assert info.value.code == 1  # one file refused
    out = capsys.readouterr().out
    assert "billion_laughs.xml" in out and "document type declaration" in out
    main(["store", "summary", "--format", "json"])
    import json

    summary = json.loads(capsys.readouterr().out)
    assert (summary["cases"], summary["case_versions"]) == (1, 2)


def test_cli_csv_with_mapping(pv_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["ingest", "csv", str(CSV / "example_per_case.csv"), "--mapping",
          str(MAPPINGS / "example_per_case.yaml")])
    out = capsys.readouterr().out
    assert "example_per_case.csv" in out
    with pytest.raises(SystemExit) as info:
        main(["ingest", "csv", str(CSV / "example_per_case.csv"), "--mapping", str(MAPPINGS / "caers.yaml")])
    assert info.value.code == 1
    # a mapping that does not fit the file refuses that file (with the reason), not the whole call
    out = capsys.readouterr().out
    assert "refused: " in out and "caers.yaml: columns.case_id: column 'id' is not in the header" in out


MUTABLE = re.compile(r'(?:value|code|unit|extension|root|displayName)="([^"]*)"')
FOLLOW_UP = (E2B / "kymriah_followup.xml").read_text(encoding="utf-8")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_icsrs_load_or_quarantine_in_postgresql(session: Session, data: st.DataObject) -> None:
    text = FOLLOW_UP
    for _ in range(data.draw(st.integers(1, 4))):
        start, end = data.draw(st.sampled_from([m.span(1) for m in MUTABLE.finditer(text)]))
        value = data.draw(st.one_of(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                                            max_size=400),
                                    st.sampled_from(["", "5", "true", "1e309", "20240230", "{decade}", "x" * 200])))
        text = text[:start] + value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;") + text[end:]
    batch = parse_e2b_bytes(text.encode("utf-8"), "mutated.xml")
    try:
        summary = load_batch(session, batch)
        assert summary.versions_loaded + summary.rows_quarantined >= 1
        assert len(batch.deleted_case_keys) or summary.versions_loaded + summary.rows_quarantined == 1
    finally:
        session.rollback()
