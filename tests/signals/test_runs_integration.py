"""The registry on real analysis runs (hand-made case store) through the weekly cycle, the backtest and the
cohort evidence hook."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv import cycle
from pv.analysis import runs as run_service
from pv.analysis import stages
from pv.analysis.results import results_frame
from pv.ingest.cohort import CohortMapping, load_cohort, parse_cohort_csv
from pv.models.signals import Signal, SignalMeasure
from pv.normalise import EventGroups, ProductDictionary
from pv.signals.backtest import backtest, run_pipeline_producer
from pv.signals.evidence import cohort_incidence
from pv.signals.labels import ensure_seeded
from pv.simulate.cohort import simulate_cohort
from tests.conftest import REPO
from tests.runs_data import SIGNAL_START, make_store

# The feedback-loop scenarios here rely on the T-cell malignancy label gap of the test registry.
pytestmark = pytest.mark.usefixtures("gap_registry")
D = dt.date
TISA = "tisagenlecleucel"


def test_cycle_evaluates_a_run_with_its_results(session: Session) -> None:
    make_store(session)
    ensure_seeded(session)
    session.commit()
    run, compute = run_service.request_run(session, D(2024, 3, 31), config_dir=REPO / "config")
    assert compute
    stages.execute_run(session, run.id)
    session.commit()
    evaluation = cycle.evaluate_signals(session, run.id)
    session.commit()
    changes = session.scalars(select(Signal)).all()
    results = results_frame(session, run.id)
    created = {(c.event, c.level) for c in changes if c.product == TISA}
    assert evaluation.changes >= len(changes) and evaluation.skipped is None
    assert ("t-cell lymphoma", "pt") in created and ("malignancy_t_cell", "group") in created
    sig = session.scalars(select(Signal).where(Signal.product == TISA, Signal.event == "t-cell lymphoma")).one()
    m = session.scalars(select(SignalMeasure).where(SignalMeasure.signal_id == sig.id)).one()
    row = results[(results["product"] == TISA) & (results["event"] == "t-cell lymphoma")
                  & (results["level"] == "pt") & ~results["stratified"]].iloc[0]
    assert (m.run_id, m.n, m.eb05, m.prr, m.n_deaths) == (run.id, row.n, row.eb05, row.prr, row.n_deaths)
    assert sig.first_detected == D(2024, 3, 31) and sig.labelled == {"FDA": False}
    # only dictionary products become signals
    assert not session.scalars(select(Signal).where(Signal.product == "ASPIRIN")).all()

    # a run is evaluated once: the second time is skipped, and nothing changes
    assert cycle.evaluate_signals(session, run.id).skipped == "already evaluated"
    assert len(session.scalars(select(SignalMeasure)).all()) == len(
        session.scalars(select(SignalMeasure).where(SignalMeasure.run_id == run.id)).all())

    queued, _ = run_service.request_run(session, D(2024, 6, 30), config_dir=REPO / "config")
    with pytest.raises(run_service.RunFailedError, match=f"run {queued.id} is queued"):
        cycle.evaluate_signals(session, queued.id)


def test_backtest_through_the_run_pipeline_first_detection_within_a_quarter(session: Session) -> None:
    make_store(session)
    ensure_seeded(session)
    session.commit()
    report = backtest(session, run_pipeline_producer(session), start=D(2023, 8, 1), end=D(2023, 12, 31))
    session.commit()
    assert report.as_of == [D(2023, 9, 30), D(2023, 12, 31)]
    tcl = report.row(TISA, "t-cell lymphoma")
    assert SIGNAL_START == D(2023, 10, 1)
    # injected from 2023-10-01: not raised as of 2023-09-30, raised at the first quarter end after the start
    assert tcl.raised == D(2023, 12, 31)
    assert tcl.label_changed == D(2024, 4, 19) and tcl.label_changed_in == "FDA"
    assert tcl.lead_days_raised == (D(2024, 4, 19) - D(2023, 12, 31)).days
    # the runs were computed once and are reused by a second replay
    assert len(run_service.list_runs(session)) == 2
    again = backtest(session, run_pipeline_producer(session), start=D(2023, 8, 1), end=D(2023, 12, 31))
    assert len(run_service.list_runs(session)) == 2
    assert again.row(TISA, "t-cell lymphoma") == tcl


def test_cohort_incidence_hook(session: Session, tmp_path: Path) -> None:
    groups = EventGroups.load(REPO / "config" / "event_groups.yaml")
    products = ProductDictionary.load(REPO / "config" / "products.yaml")
    assert cohort_incidence(session, TISA, "t-cell lymphoma", "pt", D(2024, 1, 1), groups=groups) is None
    path = tmp_path / "cohort.csv"
    simulate_cohort(3000, seed=3).to_csv(path, index=False)
    mapping = CohortMapping.load(REPO / "config" / "mappings" / "cohort.yaml", groups)
    load_cohort(session, parse_cohort_csv(path, mapping, products))
    session.commit()
    ev = cohort_incidence(session, TISA, "t-cell lymphoma", "pt", D(2024, 1, 1), groups=groups)
    assert ev is not None and ev["event_group"] == "malignancy_t_cell" and ev["n_patients"] > 0
    points = ev["cumulative_incidence"]
    assert [p["time"] for p in points] == [1.0, 2.0]
    assert 0 <= points[0]["estimate"] <= points[1]["estimate"] < 1
    assert cohort_incidence(session, TISA, "vomiting", "pt", D(2024, 1, 1), groups=groups) is None
    assert cohort_incidence(session, "ASPIRIN", "crs", "group", D(2024, 1, 1), groups=groups) is None
