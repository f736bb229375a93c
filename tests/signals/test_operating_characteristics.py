"""Issue 12, point 3: eight quarterly cycles on simulated data leave a registry in which the targets of the
default rules hold (docs/signals.md, "Threshold profiles and operating characteristics"):

* >= 90 % of the injected signals judged by the rules with >= 5 cases are opened;
* the emerging T-cell lymphoma signal is opened within one quarter of its start (its first injected pair; the
  four pairs, one per CAR-T product sharing it, are printed);
* <= 5 % of the judged pairs whose true reporting ratio is <= 1 (null controls included) with >= 3 cases are
  ever opened.

Each cycle is a ``pv cycle --as-of QUARTER_END --drop DIR`` call (the command, in process, embedded): the quarter's
zip has just arrived in the drop folder; it is ingested, the run as of the quarter end computed, the registry
evaluates it, the report is written and the digests are sent (.eml files). Then, besides the targets: each
recipient received at most one email per cycle, and every signal flagged for a label update meets the rules at
the last run, is unlabelled in a flagged jurisdiction and is neither refuted nor closed.
The data: eight simulated quarters (2023Q1-2024Q4) with the true ratio of every pair (truth_ratios.csv).
Embedded (no broker), SQLite, the shipped configuration unchanged. benchmarks/operating_characteristics.py
measures the same on a larger simulation, for every profile.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv import db
from pv.analysis.results import results_frame
from pv.cli import main
from pv.models import AlertOutbox, Run, Signal, SignalMeasure
from pv.periods import parse_quarters
from pv.settings import get_settings
from pv.signals.backtest import openings, operating_characteristics
from pv.signals.rules import RuleSet
from pv.simulate.faers import zip_name
from pv.simulate.ratios import RATIOS_FILE, ratio_lookup, write_quarters_with_ratios
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


def test_eight_quarterly_cycles_meet_the_targets_of_the_default_rules(embedded: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sim = tmp_path / "sim"
    write_quarters_with_ratios(sim, QUARTERS, REPORTS, SEED, progress=None, ratio_sample=30_000)
    quarters = parse_quarters(QUARTERS)
    drop = tmp_path / "drop"
    drop.mkdir()
    for q in quarters:  # eight `pv cycle --as-of` calls at the quarter ends, the quarter's zip just arrived
        shutil.copy(sim / zip_name(q), drop / zip_name(q))
        try:
            main(["cycle", "--as-of", q.end.isoformat(), "--drop", str(drop), "--format", "json"])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        result = json.loads(capsys.readouterr().out)
        assert result["run"]["status"] == "succeeded" and result["cases_added"] > 0, result
    with Session(db.get_engine(embedded), expire_on_commit=False) as session:
        runs = list(session.scalars(select(Run).order_by(Run.as_of)))
        assert [r.as_of for r in runs] == [q.end for q in quarters]
        assert all(r.status == "succeeded" for r in runs)
        last = results_frame(session, runs[-1].id)
        registry = openings(session)
        # each recipient received at most one email per cycle (one digest per run and recipient), all sent
        mail = session.execute(select(AlertOutbox.run_id, AlertOutbox.recipient, AlertOutbox.status)).all()
        per_cycle = Counter((run_id, recipient) for run_id, recipient, _ in mail)
        assert mail and max(per_cycle.values()) == 1 and {status for *_, status in mail} == {"sent"}
        assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == len(mail)
        # every signal flagged for a label update meets the rules at the last run, is unlabelled in a flagged
        # jurisdiction and is neither refuted nor closed
        flagged = list(session.scalars(select(Signal).where(Signal.label_update_recommended)))
        assert flagged
        for s in flagged:
            measure = session.scalars(select(SignalMeasure).where(SignalMeasure.signal_id == s.id)
                                      .order_by(SignalMeasure.as_of.desc())).first()
            assert measure is not None and measure.run_id == runs[-1].id and measure.meets_rules, s.event
            assert any(s.labelled.get(j) is False for j in s.label_update_jurisdictions), (s.event, s.labelled)
            assert s.status not in ("refuted", "closed")
    rules = RuleSet.load(tmp_path / "config" / "signals.yaml")
    oc = operating_characteristics(registry, truth=Truth.read(sim / "truth.csv"),
                                   ratios=ratio_lookup(pd.read_csv(sim / RATIOS_FILE)), last_results=last,
                                   rules=rules)
    figures = (f"profile {rules.detection.profile}: injected opened {oc.injected_opened}/{len(oc.injected)} "
               f"({oc.injected}), T-cell lymphoma {oc.emerging}, true ratio <= 1 opened "
               f"{len(oc.quiet_opened)}/{oc.quiet} ({oc.quiet_share:.1%}): {oc.quiet_opened}; "
               f"{len(flagged)} flagged, {len(mail)} digests")
    print(figures)
    assert len(oc.injected) >= 4 and len(oc.emerging) >= 3, figures
    assert oc.quiet >= 100, figures
    assert oc.injected_share >= 0.9, figures
    assert oc.emerging_within(WITHIN_DAYS), figures
    assert oc.quiet_share <= 0.05, figures
