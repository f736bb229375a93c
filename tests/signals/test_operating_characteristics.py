"""Issue 12, point 3: eight quarterly cycles on simulated data leave a registry in which the targets of the
default rules hold (docs/signals.md, "Threshold profiles and operating characteristics"):

* >= 90 % of the injected signals judged by the rules with >= 5 cases are opened;
* the emerging T-cell lymphoma signal is opened within one quarter of its start (its first injected pair; the
  four pairs, one per CAR-T product sharing it, are printed);
* <= 5 % of the judged pairs whose true reporting ratio is <= 1 (null controls included) with >= 3 cases are
  ever opened.

Each cycle takes the steps of ``pv cycle --as-of`` (pv.cycle): the quarter's zip is ingested, as the cycle would
find it in its drop folder, the run as of the quarter end is computed and the signal registry evaluates it
(the report and the sending of alerts, which do not change the registry, are left out to keep the test short).
The data: eight simulated quarters (2023Q1-2024Q4) with the true ratio of every pair (truth_ratios.csv).
Embedded (no broker), SQLite, the shipped configuration unchanged. benchmarks/operating_characteristics.py
measures the same on a larger simulation, for every profile.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv import cycle, db
from pv.analysis.results import results_frame
from pv.analysis.runs import request_run
from pv.analysis.stages import execute_run
from pv.ingest.faers import parse_quarter
from pv.ingest.store import load_batch
from pv.models import Run
from pv.periods import parse_quarters
from pv.settings import get_settings
from pv.signals.backtest import openings, operating_characteristics
from pv.signals.rules import RuleSet
from pv.simulate.faers import RATIOS_FILE, write_quarters, zip_name
from pv.simulate.ratios import ratio_lookup
from pv.simulate.truth import Truth
from tests.conftest import REPO
from workers.app import app, configure

QUARTERS = "2023Q1:2024Q4"
REPORTS = 3000
SEED = 23
WITHIN_DAYS = 92  # one quarter


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    var = tmp_path / "var"
    var.mkdir()
    url = f"sqlite:///{var / 'pv.sqlite3'}"
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    monkeypatch.setenv("PV_DATABASE_URL", url)
    monkeypatch.setenv("PV_VAR_DIR", str(var))
    monkeypatch.setenv("PV_CONFIG_DIR", str(config))
    monkeypatch.delenv("PV_BROKER_URL", raising=False)
    get_settings.cache_clear()
    configure(app)
    yield url
    get_settings.cache_clear()
    db.dispose_engines()


def test_eight_quarterly_cycles_meet_the_targets_of_the_default_rules(embedded: str, tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    write_quarters(sim, QUARTERS, REPORTS, SEED, progress=None, truth_ratios=True, ratio_sample=30_000)
    quarters = parse_quarters(QUARTERS)
    with Session(db.get_engine(embedded), expire_on_commit=False) as session:
        for q in quarters:  # the weekly cycle's steps, as of each quarter end, the quarter's zip just arrived
            cycle.check_as_of(session, q.end)
            load_batch(session, parse_quarter(sim / zip_name(q)))
            run, compute = request_run(session, q.end)
            if compute:
                execute_run(session, run.id)
            session.commit()
            evaluation = cycle.evaluate_signals(session, run.id)
            session.commit()
            assert evaluation.skipped is None
        runs = list(session.scalars(select(Run).order_by(Run.as_of)))
        assert [r.as_of for r in runs] == [q.end for q in quarters]
        assert all(r.status == "succeeded" for r in runs)
        last = results_frame(session, runs[-1].id)
        registry = openings(session)
    rules = RuleSet.load(tmp_path / "config" / "signals.yaml")
    oc = operating_characteristics(registry, truth=Truth.read(sim / "truth.csv"),
                                   ratios=ratio_lookup(pd.read_csv(sim / RATIOS_FILE)), last_results=last,
                                   rules=rules)
    figures = (f"profile {rules.detection.profile}: injected opened {oc.injected_opened}/{len(oc.injected)} "
               f"({oc.injected}), T-cell lymphoma {oc.emerging}, true ratio <= 1 opened "
               f"{len(oc.quiet_opened)}/{oc.quiet} ({oc.quiet_share:.1%}): {oc.quiet_opened}")
    print(figures)
    assert len(oc.injected) >= 4 and len(oc.emerging) >= 3, figures
    assert oc.quiet >= 100, figures
    assert oc.injected_share >= 0.9, figures
    assert oc.emerging_within(WITHIN_DAYS), figures
    assert oc.quiet_share <= 0.05, figures
