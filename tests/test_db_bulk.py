"""Bulk DataFrame I/O (pv.db.bulk) on the real PostgreSQL and on SQLite: one write policy on both."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.orm import Session

from pv.db import backend_name, bulk

META = MetaData()
SAMPLE = Table(
    "pv_bulk_sample", META,
    Column("id", Integer, primary_key=True),
    Column("label", String(5)),
    Column("note", Text),
    Column("x", Float),
    Column("kind", String(10)),
    Column("day", Date),
    Column("at", DateTime(timezone=True)),
    Column("n", Integer),
    Column("flag", Boolean),
)
UTC = dt.UTC


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session on either backend with the sample table created inside its transaction (rolled back after)."""
    session: Session = request.getfixturevalue("session" if request.param == "postgresql" else "sqlite_session")
    SAMPLE.create(session.connection())
    try:
        yield session
    finally:
        session.rollback()
        if backend_name(session) == "sqlite":  # SQLite DDL is not rolled back by the driver's transaction
            session.execute(text("DROP TABLE IF EXISTS pv_bulk_sample"))
            session.commit()


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3, 4, 5],
        "label": ["abcdefgh", "", None, "xy", "é" * 7],
        "note": ["", None, 'a,"b"\nc', "plain", np.nan],
        "x": [1.5, np.nan, np.inf, -np.inf, 0.1 + 0.2],
        "kind": pd.Categorical(["a", "b", None, "a", "b"]),
        "day": [dt.date(2023, 1, 31), None, dt.date(2024, 2, 29), pd.NaT, dt.date(1999, 12, 31)],
        "at": pd.to_datetime([dt.datetime(2023, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None,
                              dt.datetime(2024, 6, 1, tzinfo=UTC), dt.datetime(2024, 6, 2, 12, tzinfo=UTC),
                              None], utc=True),
        "n": pd.array([1, None, 3, 4, pd.NA], dtype="Int64"),
        "flag": [True, False, True, False, True],
    })


def stored(session: Session) -> list[tuple[object, ...]]:
    rows = []
    for r in session.execute(select(SAMPLE).order_by(SAMPLE.c.id)):
        at = r.at.replace(tzinfo=UTC) if r.at is not None and r.at.tzinfo is None else r.at  # SQLite: naive UTC
        rows.append((r.id, r.label, r.note, r.x, r.kind, r.day, at, r.n, bool(r.flag)))
    return rows


def test_round_trip_keeps_empty_strings_nulls_infinities_and_cuts_to_lengths(db: Session) -> None:
    assert bulk.write_frame(db, SAMPLE, sample_frame()) == 5
    rows = stored(db)
    assert [r[1] for r in rows] == ["abcde", "", None, "xy", "ééééé"]  # cut to String(5), '' is not NULL
    assert [r[2] for r in rows] == ["", None, 'a,"b"\nc', "plain", None]
    x = [r[3] for r in rows]
    assert x[0] == 1.5 and x[1] is None and x[2] == math.inf and x[3] == -math.inf and x[4] == 0.1 + 0.2
    assert [r[4] for r in rows] == ["a", "b", None, "a", "b"]
    assert [r[5] for r in rows] == [dt.date(2023, 1, 31), None, dt.date(2024, 2, 29), None,
                                    dt.date(1999, 12, 31)]
    assert [r[6] for r in rows] == [dt.datetime(2023, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None,
                                    dt.datetime(2024, 6, 1, tzinfo=UTC), dt.datetime(2024, 6, 2, 12, tzinfo=UTC),
                                    None]
    assert [r[7] for r in rows] == [1, None, 3, 4, None]
    assert [r[8] for r in rows] == [True, False, True, False, True]


def test_both_backends_store_the_same(session: Session, sqlite_session: Session) -> None:
    results = []
    for s in (session, sqlite_session):
        SAMPLE.create(s.connection())
        bulk.write_frame(s, SAMPLE, sample_frame())
        results.append(stored(s))
        s.rollback()
    sqlite_session.execute(text("DROP TABLE IF EXISTS pv_bulk_sample"))
    sqlite_session.commit()
    assert results[0] == results[1]


def test_table_name_with_columns_and_explicit_lengths(db: Session) -> None:
    frame = sample_frame().assign(extra=1)
    assert bulk.write_frame(db, "pv_bulk_sample", frame, ["id", "label", "kind"], lengths={"label": 3}) == 5
    rows = db.execute(text("SELECT id, label, kind, note FROM pv_bulk_sample ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "abc", "a", None), (2, "", "b", None), (3, None, None, None),
                                        (4, "xy", "a", None), (5, "ééé", "b", None)]
    assert bulk.write_frame(db, SAMPLE, frame.iloc[:0]) == 0


def test_large_frames_go_in_chunks(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "COPY_CHUNK", 2)
    frame = pd.DataFrame({"id": np.arange(1, 8), "note": [f"n{i}" for i in range(7)]})
    assert bulk.write_frame(db, SAMPLE, frame) == 7
    notes = db.execute(text("SELECT note FROM pv_bulk_sample ORDER BY id")).scalars().all()
    assert notes == [f"n{i}" for i in range(7)]


def test_read_frame_dtypes_and_params(db: Session) -> None:
    bulk.write_frame(db, SAMPLE, sample_frame())
    frame = bulk.read_frame(
        db, "SELECT id, label, kind, n, x FROM pv_bulk_sample WHERE day <= :day AND id <> :skip ORDER BY id",
        {"day": dt.date(2024, 2, 29), "skip": 3},
        dtypes={"label": "str", "kind": "category", "n": "float64", "id": "int64"},
    )
    assert frame["id"].tolist() == [1, 5]
    assert frame["id"].dtype == np.int64
    assert frame["label"].tolist() == ["abcde", "ééééé"]
    assert isinstance(frame["kind"].dtype, pd.CategoricalDtype)
    assert frame["kind"].astype(str).tolist() == ["a", "b"]
    assert frame["n"].dtype == np.float64
    assert frame["n"].iloc[0] == 1.0 and math.isnan(frame["n"].iloc[1])
    everything = bulk.read_frame(db, "SELECT id, label, note FROM pv_bulk_sample ORDER BY id",
                                 dtypes={"label": "str", "note": "str"})
    labels = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in everything["label"]]
    notes = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in everything["note"]]
    assert labels == ["abcde", "", None, "xy", "ééééé"]
    assert notes == ["", None, 'a,"b"\nc', "plain", None]
    empty = bulk.read_frame(db, "SELECT id, label FROM pv_bulk_sample WHERE id < 0")
    assert list(empty.columns) == ["id", "label"] and empty.empty


def test_temporary_table_joins_and_is_dropped(db: Session) -> None:
    bulk.write_frame(db, SAMPLE, sample_frame())
    keys = pd.DataFrame({"k": [2, 4, 9], "ignored": ["x", "y", "z"]})
    bulk.temp_table(db, "_pv_test_keys", {"k": "INTEGER"}, keys)
    bulk.temp_table(db, "_pv_test_keys", {"k": "INTEGER"}, keys)  # an earlier one of that name is replaced
    ids = db.execute(text(
        "SELECT s.id FROM pv_bulk_sample s JOIN _pv_test_keys t ON t.k = s.id ORDER BY s.id")).scalars().all()
    assert ids == [2, 4]
    bulk.drop_temp(db, "_pv_test_keys", "_pv_never_made")
    bulk.temp_table(db, "_pv_test_keys", {"k": "INTEGER"}, keys.iloc[:0])
    assert db.execute(text("SELECT COUNT(*) FROM _pv_test_keys")).scalar() == 0


def test_read_lines_parses_csv_lines_sent_in_groups(session: Session) -> None:
    SAMPLE.create(session.connection())
    try:
        bulk.write_frame(session, SAMPLE, sample_frame())
        frame = bulk.read_lines(
            session,
            "SELECT id / 2 AS grp, id::text || ',' || " + bulk.csv_text("label") + " || ',' || "
            "CASE WHEN flag THEN 't' ELSE 'f' END AS line FROM pv_bulk_sample",
            ["id", "label", "flag"], dtypes={"label": "str"},
        ).sort_values("id")
        assert frame["id"].tolist() == [1, 2, 3, 4, 5]
        assert frame["label"].tolist() == ["abcde", "", None, "xy", "ééééé"]
        assert frame["flag"].tolist() == [True, False, True, False, True]
    finally:
        session.rollback()


def test_python_values_for_sqlite() -> None:
    value = bulk._python_value
    assert value(np.int64(3)) == 3 and type(value(np.int64(3))) is int
    assert value(np.float32("nan")) is None and value(float("nan")) is None
    assert value(pd.NaT) is None and value(pd.NA) is None and value(np.datetime64("NaT")) is None
    assert value(np.bool_(True)) is True
    assert value(dt.date(2024, 2, 29)) == "2024-02-29"
    aware = dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert value(aware) == "2024-01-01 00:00:00.000000"
    assert value(pd.Timestamp("2024-01-01 12:30", tz="UTC")) == "2024-01-01 12:30:00.000000"
    assert value(np.datetime64("2024-01-01T12:30")) == "2024-01-01 12:30:00.000000"
    assert value("") == "" and value(math.inf) == math.inf
