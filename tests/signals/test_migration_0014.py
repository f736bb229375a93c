"""Migration 0014_signal_opening keeps an existing registry valid, on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from pv import db

_SIGNAL = ("INSERT INTO signals (id, product, event, level, status, first_detected, first_run_id, last_run_id, "
           "last_as_of, priority, strength, labelled, consecutive_unlabelled, escalated, label_update_recommended, "
           "label_update_jurisdictions, reopened_count, created_at, updated_at) VALUES (:id, 'tisagenlecleucel', "
           ":event, 'pt', :status, '2023-03-31', 1, 2, '2023-06-30', 10.0, 0.2, '{}', 2, :flagged, :flagged, "
           "'[]', 0, '2023-07-01 00:00:00+00', '2023-07-01 00:00:00+00')")
_MEASURE = ("INSERT INTO signal_measures (signal_id, run_id, as_of, stratified, meets_rules, criteria_met, n, "
            "labelled, priority) VALUES (:signal_id, :run_id, :as_of, false, true, '[]', :n, '{}', 0)")


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_existing_signals_keep_their_status_and_their_last_case_count_becomes_the_baseline(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (request.getfixturevalue("scratch_pg_url") if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'old.sqlite3'}")
    db.upgrade(url, "0006_version_precedence")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(_SIGNAL), [{"id": 1, "event": "t-cell lymphoma", "status": "new", "flagged": True},
                                         {"id": 2, "event": "rash", "status": "monitoring", "flagged": False},
                                         {"id": 3, "event": "nausea", "status": "refuted", "flagged": False}])
            conn.execute(text(_MEASURE), [
                {"signal_id": 1, "run_id": 1, "as_of": "2023-03-31", "n": 5},
                {"signal_id": 1, "run_id": 2, "as_of": "2023-06-30", "n": 7},
                {"signal_id": 2, "run_id": 2, "as_of": "2023-06-30", "n": 4},
                {"signal_id": 2, "run_id": 1, "as_of": "2023-03-31", "n": 9},
            ])
        db.upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT id, status, label_update_recommended, opened_as_of, consecutive_met, consecutive_not_met, "
                "tracked_baseline, cases_checked FROM signals ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        (1, "new", True, None, 0, 0, None, 7.0),  # the count of the last run (as of 2023-06-30)
        (2, "monitoring", False, None, 0, 0, None, 4.0),
        (3, "refuted", False, None, 0, 0, None, None),  # never measured
    ]
