"""One rule picks a case's version: the store's current version and an as-of run agree, whatever the load order.

Versions that tie on version and receipt date are loaded so that their row ids run against their report ids;
the current version (``cases.current_version_id``) and the version an as-of extraction takes must still be
the same, on PostgreSQL and SQLite, and so must the stored precedences. The migration that added
``case_versions.precedence`` fills it for stores loaded before by the same rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import itertools
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from pv import db
from pv.analysis.extract import extract
from pv.ingest.batch import VERSION_COLUMNS, Batch
from pv.ingest.store import load_batch, version_precedence

from .conftest import _truncate_all

Row = tuple[str, str, int, dt.date | None]  # case_key, report_id, version, received_date
D1, D2, D3 = dt.date(2023, 1, 10), dt.date(2023, 3, 1), dt.date(2023, 6, 30)
FAR_FUTURE = dt.date(2100, 1, 1)
ROLES = ["PS", "SS", "C", "I"]

# three files; in every load order some ties are loaded with row ids against report ids
FILES: dict[str, list[Row]] = {
    "F1": [
        ("tie-num", "100", 2, D2),   # ties with 99 and 7 on version and date: numerically highest wins
        ("tie-txt", "007", 1, D1),   # ties with "7" numerically: textually higher "7" wins
        ("tie-alpha", "b", 1, D1),   # non-numeric ids rank below numeric ones, then textually
        ("later-date", "20", 1, D1),
        ("missing-date", "31", 1, None),
        ("undated-top", "41", 1, D1),
        ("single", "50", 1, D1),
    ],
    "F2": [
        ("tie-num", "99", 2, D2),
        ("tie-txt", "7", 1, D1),
        ("tie-alpha", "A1", 1, D1),
        ("tie-alpha", "3", 1, D1),
        ("later-date", "19", 1, D3),  # same version, later date wins over a higher report id
        ("missing-date", "30", 1, D1),  # a dated version beats an undated one of the same version
        ("higher-version", "60", 3, D1),  # the higher version wins even with an earlier date
    ],
    "F3": [
        ("tie-num", "7", 2, D2),
        ("tie-num", "98", 1, D3),
        ("undated-top", "42", 2, None),  # current version has no date: an as-of run takes the dated "41"
        ("higher-version", "61", 2, D3),
        ("higher-version", "62", 2, D2),
    ],
}


def rule(row: Row) -> tuple[object, ...]:
    """The precedence rule written out by brute force: version, then date (missing lowest), then report id
    numerically (non-numeric lowest), then textually."""
    _, report, version, received = row
    numeric = float(report) if report.isdigit() else float("-inf")
    return (version, received or dt.date.min, numeric, report)


def make_batch(name: str, rows: Sequence[Row]) -> Batch:
    versions = pd.DataFrame(
        [{"case_key": k, "report_id": r, "version": v, "received_date": d, "outcomes": []} for k, r, v, d in rows],
        columns=VERSION_COLUMNS,
    )
    return Batch(kind="faers", name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), versions=versions)


def check_store(session: Session, rows: Sequence[Row]) -> set[str]:
    """Current version, precedences and the as-of pick all follow the rule; returns the report ids of the
    current versions an as-of run does not take (those without a receipt date)."""
    by_case: dict[str, list[Row]] = {}
    for row in rows:
        by_case.setdefault(row[0], []).append(row)
    stored = session.execute(text("SELECT id, case_key, report_id, precedence FROM case_versions")).all()
    report_of = {int(r.id): r.report_id for r in stored}
    for key, versions in by_case.items():
        ranked = [r[1] for r in sorted(versions, key=rule)]
        got = sorted((int(r.precedence), r.report_id) for r in stored if r.case_key == key)
        assert got == list(enumerate(ranked)), key
    current = {k: report_of[int(v)] for k, v in session.execute(
        text("SELECT case_key, current_version_id FROM cases"))}
    assert current == {k: max(v, key=rule)[1] for k, v in by_case.items()}
    as_of = {report_of[int(v)] for v in extract(session, FAR_FUTURE, roles=ROLES).cases["vid"]}
    expected = {max((r for r in v if r[3] is not None), key=rule)[1] for v in by_case.values()}
    assert as_of == expected
    # every case whose current version has a receipt date is taken at that version by an as-of run
    dated = {r[1] for r in rows if r[3] is not None}
    assert {v for v in current.values() if v in dated} <= as_of
    return set(current.values()) - as_of


ORDERS = list(itertools.permutations(FILES))
ALL_ROWS = [row for rows in FILES.values() for row in rows]


def test_current_version_and_as_of_pick_agree_on_postgresql(pg_engine: Engine) -> None:
    batches = {name: make_batch(name, rows) for name, rows in FILES.items()}
    factory = sessionmaker(bind=pg_engine)
    for order in ORDERS:
        _truncate_all(pg_engine)
        with factory() as session:
            for name in order:
                load_batch(session, batches[name])
                session.commit()
            assert check_store(session, ALL_ROWS) == {"42"}
            session.rollback()


def test_current_version_and_as_of_pick_agree_on_sqlite(tmp_path: Path) -> None:
    batches = {name: make_batch(name, rows) for name, rows in FILES.items()}
    for i, order in enumerate(ORDERS):
        engine = db.get_engine(f"sqlite:///{tmp_path / f'order{i}.sqlite3'}")
        with sessionmaker(bind=engine)() as session:
            for name in order:
                load_batch(session, batches[name])
                session.commit()
            assert check_store(session, ALL_ROWS) == {"42"}


def test_one_version_per_batch_in_report_id_order_against_row_ids(session: Session) -> None:
    """Each version in its own file, the report ids falling as the row ids rise."""
    rows: list[Row] = [("k", str(r), 1, D1) for r in (300, 200, 100, 30, 20, 10)]
    for i, row in enumerate(rows):
        load_batch(session, make_batch(f"single{i}", [row]))
        session.commit()
    assert check_store(session, rows) == set()


# ---------------------------------------------------------------------------------------------- migration
def _migration_module():  # type: ignore[no-untyped-def]
    path = db.MIGRATIONS / "versions" / "0006_version_precedence.py"
    spec = importlib.util.spec_from_file_location("pv_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _insert_old_rows(url: str, rows: Sequence[Row]) -> None:
    """Versions as an ingest before the precedence column stored them (ids in the given order)."""
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO source_files (id, kind, name, sha256, loaded_at, rows_read, versions_loaded, "
                "cases_added, cases_updated, cases_deleted, rows_quarantined) "
                "VALUES (1, 'faers', 'old', 'x', '2023-01-01', 0, 0, 0, 0, 0, 0)"))
            conn.execute(text(
                "INSERT INTO case_versions (id, case_key, report_id, version, received_date, source_file_id, "
                "source, died, life_threatening, hospitalised, disabled, congenital_anomaly, "
                "required_intervention, other_serious, serious) VALUES (:id, :k, :r, :v, :d, 1, 'faers', "
                "false, false, false, false, false, false, false, false)"),
                [{"id": i, "k": k, "r": r, "v": v, "d": d} for i, (k, r, v, d) in enumerate(rows, start=1)])
    finally:
        engine.dispose()


def _precedences(url: str) -> dict[tuple[str, str], int]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return {(k, r): int(p) for k, r, p in conn.execute(
                text("SELECT case_key, report_id, precedence FROM case_versions"))}
    finally:
        engine.dispose()


def _expected(rows: Sequence[Row]) -> dict[tuple[str, str], int]:
    out = {}
    for key in {r[0] for r in rows}:
        for rank, row in enumerate(sorted((r for r in rows if r[0] == key), key=rule)):
            out[(key, row[1])] = rank
    return out


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_migration_fills_precedence_of_stored_versions(backend: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    url = (request.getfixturevalue("scratch_pg_url") if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'old.sqlite3'}")
    db.upgrade(url, "0005_alerts")
    rows = list(reversed(ALL_ROWS))
    _insert_old_rows(url, rows)
    db.upgrade(url)
    assert _precedences(url) == _expected(rows)


def test_backfill_in_small_chunks(tmp_path: Path) -> None:
    """Chunk boundaries inside a case, and a case larger than a chunk, are handled."""
    url = f"sqlite:///{tmp_path / 'chunks.sqlite3'}"
    db.upgrade(url)
    rows = [*ALL_ROWS, *(("big", str(r), 1, D1) for r in range(5))]
    _insert_old_rows(url, rows)
    backfill = _migration_module().backfill
    engine = db.make_engine(url)
    try:
        for chunk in (1, 2, 3, 4, 1000):
            with engine.begin() as conn:
                conn.execute(text("UPDATE case_versions SET precedence = 0"))
                backfill(conn, chunk)
            assert _precedences(url) == _expected(rows), chunk
    finally:
        engine.dispose()


def test_version_precedence_is_indexed_like_its_input() -> None:
    frame = pd.DataFrame([("a", "2", 1, D1), ("b", "1", 1, None), ("a", "1", 1, D1)],
                         columns=["case_key", "report_id", "version", "received_date"], index=[10, 20, 30])
    assert version_precedence(frame).to_dict() == {10: 1, 20: 0, 30: 0}
    assert version_precedence(frame.iloc[:0]).empty


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2", "10", "x", "10.0", ""]),
                          st.integers(1, 3), st.sampled_from([None, D1, dt.date(2023, 5, 1)])),
                min_size=1, max_size=12, unique_by=lambda r: (r[0], r[1])))
def test_migration_copy_of_the_rule_agrees_with_the_ingest(rows: list[Row]) -> None:
    """The migration keeps its own copy of the rule as it stood; today it ranks exactly as the ingest does."""
    frame = pd.DataFrame(rows, columns=["case_key", "report_id", "version", "received_date"])
    assert _migration_module()._precedence(frame).tolist() == version_precedence(frame).tolist()
