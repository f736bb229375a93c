"""The case-store writer on real PostgreSQL (and a SQLite smoke run): dedup, deletions, follow-ups, order."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Select, select, text
from sqlalchemy.orm import Session, sessionmaker

from pv.ingest.faers import parse_quarter
from pv.ingest.store import LoadSummary, load_batch
from pv.ingest.summary import store_summary
from pv.models.casestore import Case, CaseVersion, DeletedCase, Drug, Reaction

from .conftest import REAL_DATA, _truncate_all
from .faers_fixtures import case, write_quarter

AXI, CILTA = "axicabtagene ciloleucel", "ciltacabtagene autoleucel"


def quarters(root: Path) -> dict[str, Path]:
    """Three hand-made quarters pinning every rule (see test_in_order_summaries for the expected effects)."""
    root.mkdir(parents=True, exist_ok=True)
    q1 = write_quarter(root, "23Q1", [
        case(11, 1, 1, "20230110", drugs=[("PS", "YESCARTA")], reactions=["Cytokine release syndrome"],
             outcomes=["HO"], init_fda_dt="20230110", sex="F", age="60", age_cod="YR"),
        case(21, 2, 1, "20230111", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"]),
        case(31, 3, 1, "20230112", drugs=[("PS", "ASPIRIN.")], reactions=["Nausea"]),
    ])
    q2 = write_quarter(root, "23Q2", [
        # follow-up of case 1: replaces drugs, reactions, outcomes and demographics
        case(12, 1, 2, "20230405",
             drugs=[("PS", "Yescarta (axicabtagene ciloleucel)"), ("C", "DEXAMETHASONE")],
             reactions=["NEUROTOXICITY"], outcomes=["DE"], init_fda_dt="20230110", sex="F", age="61",
             age_cod="YR"),
        case(41, 4, 1, "20230406", drugs=[("PS", "CARVYKTI")], reactions=["Parkinsonism"]),
        case(31, 3, 1, "20230112", drugs=[("PS", "ASPIRIN.")], reactions=["Nausea"]),  # repeated version
    ], deleted=[2])
    q3 = write_quarter(root, "23Q3", [
        case(42, 4, 1, "20230710", drugs=[("PS", "cilta-cel")],  # same version, later fda_dt: wins
             reactions=["Parkinsonism", "Cytokine release syndrome"]),
        case(99, 5, 1, "20230711", drugs=[("PS", "DRUG X")], reactions=["Rash"]),
        case(100, 5, 1, "20230711", drugs=[("PS", "DRUG Y")], reactions=["Rash"]),  # numerically higher id
        case(22, 2, 2, "20230712", drugs=[("PS", "KYMRIAH")], reactions=["Pyrexia"]),  # deleted case
        case(33, 3, 3, "20230301", drugs=[("PS", "ASPIRIN")], reactions=["Vomiting"]),  # higher version wins
    ])
    return {"Q1": q1, "Q2": q2, "Q3": q3}


def load(session: Session, path: Path) -> LoadSummary:
    summary = load_batch(session, parse_quarter(path))
    session.commit()
    return summary


def snapshot(session: Session) -> dict[str, list[tuple[object, ...]]]:
    """The store's content without surrogate ids: what order of loading (or the backend) must not change."""
    def rows(stmt: Select[Any]) -> list[tuple[object, ...]]:
        return sorted((tuple(r) for r in session.execute(stmt).all()), key=repr)

    cv = CaseVersion
    return {
        "cases": rows(select(Case.case_key, cv.report_id, Case.version, Case.source,
                             Case.initial_received_date, Case.latest_received_date, Case.event_date,
                             Case.age_years, Case.sex, Case.serious, Case.died)
                      .join(cv, cv.id == Case.current_version_id)),
        "versions": rows(select(cv.case_key, cv.report_id, cv.version, cv.received_date, cv.died, cv.serious,
                                cv.hospitalised, cv.source)),
        "drugs": rows(select(cv.case_key, cv.report_id, Drug.seq, Drug.role, Drug.drugname, Drug.product,
                             Drug.drug_key).join(cv, cv.id == Drug.case_version_id)),
        "reactions": rows(select(cv.case_key, cv.report_id, Reaction.pt_verbatim, Reaction.pt)
                          .join(cv, cv.id == Reaction.case_version_id)),
        "deleted": rows(select(DeletedCase.case_key)),
    }


def current(session: Session, sql_table: str, column: str) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for key, value in session.execute(text(
            f"SELECT c.case_key, t.{column} FROM cases c JOIN {sql_table} t "
            f"ON t.case_version_id = c.current_version_id ORDER BY 1, 2")):
        out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("name", ["faers_ascii_2017q2.zip", "aers_ascii_2004q1.zip"])
def test_real_quarters_ingest_to_100_cases(session: Session, name: str) -> None:
    summary = load(session, REAL_DATA / name)
    assert summary == LoadSummary(cases_added=100, versions_loaded=100, source_file_id=summary.source_file_id)
    assert session.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 100
    assert session.execute(text("SELECT COUNT(*) FROM case_versions")).scalar() == 100
    again = load(session, REAL_DATA / name)
    assert again.skipped_duplicate_file and again.versions_loaded == 0
    assert session.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 100


def test_in_order_summaries_and_final_state(session: Session, tmp_path: Path) -> None:
    q = quarters(tmp_path)
    s1 = load(session, q["Q1"])
    assert (s1.cases_added, s1.cases_updated, s1.cases_deleted, s1.versions_loaded) == (3, 0, 0, 3)
    s2 = load(session, q["Q2"])
    assert (s2.cases_added, s2.cases_updated, s2.cases_deleted, s2.versions_loaded) == (1, 1, 1, 2)
    s3 = load(session, q["Q3"])
    assert (s3.cases_added, s3.cases_updated, s3.cases_deleted, s3.versions_loaded) == (1, 2, 0, 4)

    cur = dict(session.execute(text(
        "SELECT c.case_key, cv.report_id FROM cases c "
        "JOIN case_versions cv ON cv.id = c.current_version_id")).all())
    assert cur == {"1": "12", "3": "33", "4": "42", "5": "100"}
    versions = session.execute(text("SELECT case_key, report_id FROM case_versions ORDER BY 1, 2")).all()
    assert sorted(map(tuple, versions)) == sorted([("1", "11"), ("1", "12"), ("3", "31"), ("3", "33"),
                                                   ("4", "41"), ("4", "42"), ("5", "100"), ("5", "99")])
    # the follow-up replaced case 1 whole for current-state queries...
    assert current(session, "drugs", "drugname")["1"] == [
        "DEXAMETHASONE", "Yescarta (axicabtagene ciloleucel)"]
    assert current(session, "drugs", "product")["1"] == [AXI, None]
    assert current(session, "reactions", "pt")["1"] == ["neurotoxicity"]
    assert current(session, "drugs", "drug_key")["3"] == ["ASPIRIN"]
    # ...and the earlier version stays for as-of replay, with its own drugs and reactions
    old = session.execute(text(
        "SELECT d.drugname, r.pt, cv.hospitalised, cv.died FROM case_versions cv "
        "JOIN drugs d ON d.case_version_id = cv.id JOIN reactions r ON r.case_version_id = cv.id "
        "WHERE cv.report_id = '11'")).all()
    assert [tuple(r) for r in old] == [("YESCARTA", "cytokine release syndrome", True, False)]
    case1 = session.execute(text(
        "SELECT version, initial_received_date, latest_received_date, serious, died, age_years "
        "FROM cases WHERE case_key = '1'")).one()
    assert tuple(map(str, case1)) == ("2", "2023-01-10", "2023-04-05", "True", "True", "61.0")
    deleted = session.execute(text("SELECT case_key FROM deleted_cases")).scalars().all()
    assert deleted == ["2"]

    summary = store_summary(session)
    assert summary["cases"] == 4 and summary["case_versions"] == 8
    assert summary["cases_by_product"] == {AXI: 1, CILTA: 1}
    groups = summary["cases_by_event_group"]
    assert groups["crs"] == 1 and groups["icans"] == 2 and groups["movement_nerve_toxicity"] == 1
    assert groups["hbv_reactivation"] == 0
    assert summary["drugs"] == 5 and summary["reactions"] == 5 and summary["quarantined"] == 0


def test_every_load_order_gives_the_same_store(pg_engine: Engine, tmp_path: Path) -> None:
    batches = {name: parse_quarter(path) for name, path in quarters(tmp_path).items()}
    Session_ = sessionmaker(bind=pg_engine)
    snapshots = []
    for order in itertools.permutations(["Q1", "Q2", "Q3"]):
        _truncate_all(pg_engine)
        with Session_() as session:
            for name in (*order, order[0]):  # the repeat at the end changes nothing
                load_batch(session, batches[name])
                session.commit()
            snapshots.append((order, snapshot(session)))
    reference = snapshots[0][1]
    assert len(reference["cases"]) == 4
    for order, snap in snapshots[1:]:
        assert snap == reference, order


def test_deleted_case_stays_out_when_an_earlier_quarter_loads_later(session: Session, tmp_path: Path) -> None:
    q = quarters(tmp_path)
    s2 = load(session, q["Q2"])
    assert s2.cases_deleted == 0  # nothing stored yet for case 2
    load(session, q["Q1"])
    keys = set(session.execute(text("SELECT case_key FROM case_versions")).scalars())
    assert "2" not in keys and {"1", "3", "4"} <= keys
    assert session.execute(text("SELECT COUNT(*) FROM cases WHERE case_key = '2'")).scalar() == 0


def test_deletion_removes_every_version_and_its_rows(session: Session, tmp_path: Path) -> None:
    root = tmp_path / "a"
    root.mkdir()
    load(session, write_quarter(root, "23Q1", [case(11, 7, 1, "20230101", drugs=[("PS", "X")],
                                                    reactions=["A"])]))
    load(session, write_quarter(root, "23Q2", [case(12, 7, 2, "20230401", drugs=[("PS", "Y")],
                                                    reactions=["B"])]))
    s = load(session, write_quarter(root, "23Q3", [], deleted=[7]))
    assert s.cases_deleted == 1
    for table in ("cases", "case_versions", "drugs", "reactions", "indications"):
        assert session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0, table


def test_same_content_in_a_new_file_adds_no_version(session: Session, tmp_path: Path) -> None:
    cases = [case(11, 1, 1, "20230110", drugs=[("PS", "X")], reactions=["A"])]
    load(session, write_quarter(tmp_path, "23Q1", cases, as_zip=True))
    s = load(session, write_quarter(tmp_path, "23Q1", cases, as_zip=False))  # other sha256, same versions
    assert not s.skipped_duplicate_file
    assert (s.versions_loaded, s.cases_added, s.cases_updated) == (0, 0, 0)
    assert session.execute(text("SELECT COUNT(*) FROM drugs")).scalar() == 1
    # the same quarter packed again: its unchanged versions stay as they are and pass to the new file
    (replaced,) = s.replaced
    assert (replaced["unchanged"], replaced["changed"], replaced["only_before"]) == (1, 0, 0)
    assert session.execute(text("SELECT source_file_id FROM case_versions")).scalar() == s.source_file_id


def test_older_version_loaded_later_does_not_replace_current(session: Session, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    load(session, write_quarter(tmp_path / "a", "23Q2", [case(12, 1, 2, "20230405", reactions=["New"])]))
    s = load(session, write_quarter(tmp_path / "a", "23Q1", [case(11, 1, 1, "20230110", reactions=["Old"])]))
    assert (s.versions_loaded, s.cases_added, s.cases_updated) == (1, 0, 0)
    assert current(session, "reactions", "pt") == {"1": ["new"]}
    row = session.execute(text("SELECT initial_received_date, latest_received_date FROM cases")).one()
    assert tuple(map(str, row)) == ("2023-01-10", "2023-04-05")


def test_quarantine_rows_are_stored_with_their_source(session: Session, tmp_path: Path) -> None:
    path = write_quarter(tmp_path, "23Q1", [case(11, 1, 1, "20230110", reactions=["A"])],
                         raw={"REAC": b"primaryid$caseid$pt$drug_rec_act\n11$1$A$\n77$7$B$\n11$1\n"})
    s = load(session, path)
    assert s.rows_quarantined == 2 and s.versions_loaded == 1
    rows = session.execute(text(
        "SELECT q.file, q.line, q.field, q.raw, q.reason, f.name FROM quarantine q "
        "JOIN source_files f ON f.id = q.source_file_id ORDER BY q.line")).all()
    assert [(r.line, r.field) for r in rows] == [(3, "primaryid"), (4, None)]
    assert rows[0].file == "ascii/REAC23Q1.txt" and rows[0].raw.startswith("77$7$B")
    assert rows[1].reason == "wrong field count: expected 4, found 2" and rows[1].name == str(path)
    sf = session.execute(text(
        "SELECT rows_quarantined, versions_loaded, cases_added, quarter FROM source_files")).one()
    assert tuple(sf) == (2, 1, 1, "2023Q1")


def test_sqlite_smoke_matches_postgresql(session: Session, sqlite_session: Session, tmp_path: Path) -> None:
    q = quarters(tmp_path)
    for name in ("Q3", "Q1", "Q2"):
        load(session, q[name])
        load(sqlite_session, q[name])
    pg, lite = snapshot(session), snapshot(sqlite_session)
    assert len(pg["cases"]) == 4 and len(pg["drugs"]) == 9
    assert pg == lite
    assert store_summary(session) == store_summary(sqlite_session)
    for name in ("faers_ascii_2017q2.zip", "aers_ascii_2004q1.zip"):
        load(sqlite_session, REAL_DATA / name)
    assert sqlite_session.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 4 + 200


def test_bulk_mode_gives_the_same_store_and_restores_indexes(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The large-load path (indexes and foreign keys dropped and rebuilt) changes nothing but speed."""
    from pv.ingest import store

    batches = {name: parse_quarter(path) for name, path in quarters(tmp_path).items()}
    Session_ = sessionmaker(bind=pg_engine)
    snaps = []
    taken: list[bool] = []
    is_bulk = store._is_bulk

    def spy(session: Session, n_new: int) -> bool:
        taken.append(is_bulk(session, n_new))
        return taken[-1]

    monkeypatch.setattr(store, "_is_bulk", spy)
    for bulk_min in (10**9, 1):
        monkeypatch.setattr(store, "_BULK_MIN", bulk_min)
        _truncate_all(pg_engine)
        with Session_() as session:
            for name in ("Q1", "Q2", "Q3"):
                load_batch(session, batches[name])
                session.commit()
            snaps.append(snapshot(session))
            indexes = set(session.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename IN "
                "('case_versions', 'drugs', 'reactions', 'indications', 'cases')")).scalars())
            fks = set(session.execute(text(
                "SELECT conname FROM pg_constraint WHERE contype IN ('f', 'u') "
                "AND conrelid::regclass::text IN "
                "('case_versions', 'drugs', 'reactions', 'indications', 'cases')")).scalars())
    assert snaps[0] == snaps[1]
    assert {"ix_drugs_product_version", "ix_reactions_pt_version", "ix_cases_latest_received_date"} <= indexes
    assert {"fk_drugs_case_version_id_case_versions", "fk_cases_current_version_id_case_versions",
            "uq_case_versions_case_key"} <= fks
    assert taken == [False, False, False, True, True, True]
