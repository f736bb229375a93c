"""The line listing of a signal's cases (pv.signals.cases) against real analysis runs on a hand-made store."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv import cycle
from pv.analysis import runs as run_service
from pv.analysis import stages
from pv.analysis.config import AnalysisConfig
from pv.errors import NotFoundError
from pv.models import CaseVersion, Drug, Reaction, Signal, SignalMeasure, SourceFile
from pv.signals.cases import CASE_COLUMNS, case_listing
from pv.signals.labels import ensure_seeded
from tests.conftest import REPO
from tests.runs_data import StoreWriter, fast_config, make_store

D = dt.date
TISA = "tisagenlecleucel"


def _writer(session: Session) -> StoreWriter:
    """A writer adding versions to the hand-made store's source file."""
    w = StoreWriter.__new__(StoreWriter)
    w.session, w.source, w.n = session, session.scalars(select(SourceFile)).one(), 0
    return w


def _evaluated_run(session: Session, as_of: dt.date, tmp_path) -> int:  # type: ignore[no-untyped-def]
    cfg = AnalysisConfig.load(fast_config(tmp_path))
    run, _ = run_service.request_run(session, as_of, cfg=cfg, config_dir=REPO / "config")
    stages.execute_run(session, run.id)
    session.commit()
    cycle.evaluate_signals(session, run.id)
    session.commit()
    return run.id


def test_listing_counts_what_the_run_counted_for_every_signal(session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_store(session)
    # a later version of a signal case that drops the product: the case no longer counts once it is received
    w = _writer(session)
    w.case("TC0", D(2024, 2, 1), [("ASPIRIN", "PS")], ["t-cell lymphoma"], version=2)
    # a case with the product only as concomitant: not counted (roles PS, SS)
    w.case("CONC1", D(2023, 11, 1), [("ASPIRIN", "PS"), (TISA, "C")], ["t-cell lymphoma"])
    ensure_seeded(session)
    session.commit()
    run_id = _evaluated_run(session, D(2024, 3, 31), tmp_path)
    signals = session.scalars(select(Signal)).all()
    assert signals
    for s in signals:
        listing = case_listing(session, s.id)
        m = session.scalars(select(SignalMeasure).where(SignalMeasure.signal_id == s.id,
                                                        SignalMeasure.run_id == run_id)).one()
        assert listing.run_id == run_id and listing.as_of == D(2024, 3, 31)
        assert len(listing.rows) == m.n == listing.n_in_run, (s.product, s.event, s.level)
        assert len({r["case_id"] for r in listing.rows}) == len(listing.rows)

    tcl = session.scalars(select(Signal).where(Signal.product == TISA, Signal.event == "t-cell lymphoma",
                                               Signal.level == "pt")).one()
    rows = case_listing(session, tcl.id).rows
    ids = {r["case_id"] for r in rows}
    # TC0's version in force dropped the product; the deleted case and the concomitant one are not counted
    assert "TC0" not in ids and "DEL1" not in ids and "CONC1" not in ids
    assert ids == {f"TC{i}" for i in range(1, 12)}
    first = next(r for r in rows if r["case_id"] == "TC1")
    assert set(first) == set(CASE_COLUMNS)
    assert first["report_id"] == "TC1-1" and first["version"] == 1 and first["received_date"] == "2023-10-15"
    assert first["suspect_products"] == [TISA] and first["concomitant_products"] == ["ASPIRIN"]
    assert first["reactions"] == ["t-cell lymphoma", "fatigue"] and first["sex"] == "M" and first["age"] == 65.0
    assert first["serious"] is True and first["outcomes"] == []
    assert [r["received_date"] for r in rows] == sorted(r["received_date"] for r in rows)
    # the group-level signal lists the same cases (every PT of the group the run used)
    group = session.scalars(select(Signal).where(Signal.product == TISA, Signal.event == "malignancy_t_cell")).one()
    assert {r["case_id"] for r in case_listing(session, group.id).rows} == ids


def test_listing_onset_outcomes_and_csv(session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_store(session)
    ensure_seeded(session)
    session.commit()
    v = session.scalars(select(CaseVersion).where(CaseVersion.case_key == "TC3")).one()
    v.event_date = D(2024, 1, 20)
    v.died = v.hospitalised = True
    v.occurrence_country = "US"
    for d in session.scalars(select(Drug).where(Drug.case_version_id == v.id)):
        d.start_date = D(2024, 1, 2) if d.drug_key == TISA else D(2020, 1, 1)
    session.add(Reaction(case_version_id=v.id, pt_verbatim='Rash "severe", <b>', pt='rash "severe", <b>'))
    session.commit()
    _evaluated_run(session, D(2024, 3, 31), tmp_path)
    tcl = session.scalars(select(Signal).where(Signal.product == TISA, Signal.event == "t-cell lymphoma")).one()
    listing = case_listing(session, tcl.id)
    row = next(r for r in listing.rows if r["case_id"] == "TC3")
    # onset from the start of the signal's product, not of the concomitant drug
    assert row["onset_days"] == 18 and row["outcomes"] == ["DE", "HO"] and row["country"] == "US"
    assert next(r for r in listing.rows if r["case_id"] == "TC4")["onset_days"] is None
    text = listing.to_csv()
    lines = text.splitlines()
    assert lines[0] == ",".join(CASE_COLUMNS) and len(lines) == len(listing.rows) + 1
    import csv
    parsed = {r["case_id"]: r for r in csv.DictReader(text.splitlines())}
    assert parsed["TC3"]["reactions"] == 't-cell lymphoma; fatigue; Rash "severe", <b>'
    assert parsed["TC3"]["outcomes"] == "DE; HO" and parsed["TC3"]["serious"] == "yes"


def test_listing_of_an_unknown_signal(session: Session) -> None:
    with pytest.raises(NotFoundError, match="signal 999"):
        case_listing(session, 999)
