"""The weekly cycle on the embedded default: drop folder -> ingest -> run -> signal evaluation -> alerts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.analysis.results import results_frame
from pv.models import Case, Run
from pv.models.signals import SignalRuleSnapshot
from pv.settings import get_settings
from tests.conftest import REAL_DATA
from workers.app import app, configure


@pytest.fixture
def embedded(pv_env: str):  # type: ignore[no-untyped-def]
    configure(app)
    assert app.conf.task_always_eager
    yield pv_env


def test_weekly_cycle_ingests_the_drop_folder_runs_and_evaluates_signals(
    embedded: str, session: Session, tmp_path: Path
) -> None:
    from workers.tasks import weekly_cycle

    drop = get_settings().var_dir / "drop"
    drop.mkdir(parents=True)
    shutil.copy(REAL_DATA / "faers_ascii_2017q2.zip", drop / "faers_ascii_2017q2.zip")
    (drop / "notes.txt").write_text("not a report file\n")
    (drop / "broken.zip").write_bytes(b"this is not a zip")

    out = weekly_cycle.apply(kwargs={"as_of": "2017-06-30"}).get()
    assert out["files"] == [str(drop / "broken.zip"), str(drop / "faers_ascii_2017q2.zip")]

    # the real quarter is loaded and archived; the unreadable file is set aside with its error
    assert session.scalar(select(func.count()).select_from(Case)) == 100
    assert (drop / "done" / "faers_ascii_2017q2.zip").exists()
    assert (drop / "failed" / "broken.zip").exists()
    assert (drop / "failed" / "broken.zip.error").read_text().strip()
    assert (drop / "notes.txt").exists()  # not a report file: left alone

    run = session.execute(select(Run)).scalar_one()
    assert run.status == "succeeded", run.error
    assert str(run.as_of) == "2017-06-30" and run.n_cases and run.n_cases <= 100
    # the registry evaluated the run (its rules snapshot is stored with it)
    assert session.scalar(select(func.count()).select_from(SignalRuleSnapshot)
                          .where(SignalRuleSnapshot.run_id == run.id)) == 1

    # the weekly report of the run is written where its alerts point
    report = get_settings().var_dir / "reports" / f"weekly-report-2017-06-30-run{run.id}.html"
    assert report.exists() and report.with_suffix(".pdf").exists()
    assert f"run {run.id}" in report.read_text() or str(run.id) in report.read_text()
    # 100 real cases are far too few for an MGPS prior: every table's fit ends on the edge of the parameter space,
    # so the run stores no prior, its results no EBGM, and the report's parameters say why
    not_fitted = run.parameters["mgps_not_fitted"]
    assert set(not_fitted) == {"pt:crude", "group:crude", "pt:stratified", "group:stratified"}
    assert all("degenerate" in why and "1e+04 at its upper bound" in why for why in not_fitted.values())
    assert run.hyperparameters == {}
    assert results_frame(session, run.id)[["ebgm", "eb05", "eb95"]].isna().all().all()
    html = report.read_text()
    assert "MGPS not fitted (no EBGM)" in html and "the MGPS prior is degenerate" in html

    # the same cycle again: nothing new to load, the same run, not evaluated twice
    again = weekly_cycle.apply(kwargs={"as_of": "2017-06-30"}).get()
    assert again["files"] == []
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Run)) == 1
    assert session.scalar(select(func.count()).select_from(SignalRuleSnapshot)) == 1

    # a date before the last evaluated run is refused before anything is ingested or computed
    shutil.copy(REAL_DATA / "faers_ascii_2017q2.zip", drop / "later.zip")
    refused = weekly_cycle.apply(kwargs={"as_of": "2017-03-31"}).get()
    assert refused["files"] == [] and refused["refused"].startswith(
        "as-of 2017-03-31 is before the last run the signal registry evaluated (2017-06-30)")
    assert (drop / "later.zip").exists()
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Run)) == 1
