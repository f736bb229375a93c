"""Analysis runs computed in process: extraction as of a date, counts, measures, trend, idempotency."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.analysis import runs as service
from pv.analysis import stages
from pv.analysis.config import AnalysisConfig, StrataConfig
from pv.analysis.extract import extract
from pv.analysis.results import results_frame
from pv.errors import ConfigError
from pv.models import CaseVersion, Run, RunCount, RunResult, RunTrend
from pv.stats import MGPS, count_table, measures
from tests.conftest import REPO
from tests.runs_data import SIGNAL_START, make_store

CONFIG_DIR = REPO / "config"
FULL = AnalysisConfig.load(CONFIG_DIR / "analysis.yaml")
FAST = FULL.model_copy(update={"strata": StrataConfig()})  # no stratified tables: half the MGPS fits


def _run(session: Session, as_of: dt.date, cfg: AnalysisConfig = FAST) -> Run:
    run, should = service.request_run(session, as_of, cfg, config_dir=CONFIG_DIR)
    assert should
    stages.execute_run(session, run.id)
    session.commit()
    return run


def _pair(
    frame: pd.DataFrame, level: str, product: str, event: str, stratified: bool = False
) -> pd.DataFrame:
    return frame[
        (frame.level == level)
        & (frame.stratified == stratified)
        & (frame["product"] == product)
        & (frame.event == event)
    ]


def test_extract_takes_latest_version_as_of_and_skips_deleted(session: Session) -> None:
    make_store(session)
    session.commit()
    early = extract(session, dt.date(2023, 3, 31), ["PS", "SS"])
    late = extract(session, dt.date(2023, 12, 31), ["PS", "SS"])
    session.rollback()

    ids = dict(session.execute(select(CaseVersion.report_id, CaseVersion.id)).all())
    fu1_v1, fu1_v2, deleted = ids["FU1-1"], ids["FU1-2"], ids["DEL1-1"]
    # FU1 v1 (METFORMIN, nausea) is in force in March; v2 (LISINOPRIL, headache) from August
    assert fu1_v1 in set(early.cases.vid) and fu1_v2 not in set(early.cases.vid)
    assert fu1_v2 in set(late.cases.vid) and fu1_v1 not in set(late.cases.vid)
    assert set(late.drugs.loc[late.drugs.vid == fu1_v2, "product"]) == {"LISINOPRIL"}
    assert set(late.reactions.loc[late.reactions.vid == fu1_v2, "pt"]) == {"headache"}
    # the deleted case never appears; no version received after the as-of date does
    assert deleted not in set(late.cases.vid) and deleted not in set(late.drugs.vid)
    assert early.cases.received_date.max() <= pd.Timestamp("2023-03-31")
    assert late.cases.vid.is_unique
    # concomitant drugs are not counted with roles PS+SS
    all_roles = extract(session, dt.date(2023, 12, 31), ["PS", "SS", "C"])
    session.rollback()
    assert len(all_roles.drugs) > len(late.drugs)


def test_run_results_match_direct_computation(session: Session) -> None:
    make_store(session)
    session.commit()
    as_of = dt.date(2024, 6, 30)
    run = _run(session, as_of, FULL)
    assert run.status == "succeeded" and run.error is None
    results = results_frame(session, run.id)

    # direct computation from the same data, without the run machinery
    data = extract(session, as_of, ["PS", "SS"])
    session.rollback()
    rows = data.drugs.merge(data.reactions.rename(columns={"pt": "event"}), on="vid")
    counts = count_table(rows, id_col="vid", product_col="product", event_col="event")
    # each table has its own prior (mgps_fit: per_table); on this small hand-made store (84 PT pairs, all with
    # n >= 3 and no extra-Poisson variation) the likelihood is largest on the edge of the parameter space, so
    # the prior is degenerate and the run, like a direct fit, publishes no EBGM
    model = MGPS(subsample=FULL.mgps_subsample).fit(counts)
    assert model.at_bound_ and model.reason_ is not None
    assert run.parameters["mgps_not_fitted"]["pt:crude"] == model.reason_
    assert set(run.hyperparameters) | set(run.parameters["mgps_not_fitted"]) == {
        "pt:crude", "group:crude", "pt:stratified", "group:stratified"}
    direct = model.score(measures(counts))
    got = _pair(results, "pt", "tisagenlecleucel", "t-cell lymphoma").iloc[0]
    want = direct[(direct["product"] == "tisagenlecleucel") & (direct.event == "t-cell lymphoma")].iloc[0]
    assert got.n == want.n == 12
    for col in ("expected", "prr", "prr_chi2", "ror", "ror_lower", "ic", "ic025"):
        assert got[col] == pytest.approx(want[col], rel=1e-12), col
    assert pd.isna(want["ebgm"]) and pd.isna(want["eb05"])
    assert results.loc[results.level == "pt", ["ebgm", "eb05", "eb95"]].isna().all().all()
    crude = results[(results.level == "pt") & ~results.stratified]
    assert len(crude) == len(direct)
    # hand-computed 2x2 table of the signal pair
    assert got.n_serious == 12 and got.n_deaths == 3
    # group level: a case counts once per group; marginals include cases without any group event
    grp = _pair(results, "group", "tisagenlecleucel", "malignancy_t_cell").iloc[0]
    assert grp.n == 12
    assert _pair(results, "group", "tisagenlecleucel", "secondary_malignancy").iloc[0].n == 12
    assert grp.expected == pytest.approx(got.expected)  # same cases, same marginals
    # stratified rows exist with the same n and their own expected counts
    strat = _pair(results, "pt", "tisagenlecleucel", "t-cell lymphoma", stratified=True).iloc[0]
    assert strat.n == 12 and strat.expected != pytest.approx(got.expected)
    assert pd.isna(grp.eb05) == ("group:crude" in run.parameters["mgps_not_fitted"])
    assert run.n_pairs == int((~results.stratified).sum())
    # scratch counts are gone; the trend's last point equals the run's figures
    assert session.scalar(select(func.count()).select_from(RunCount)) == 0
    trend = (
        session.execute(
            select(RunTrend)
            .where(
                RunTrend.run_id == run.id,
                RunTrend.product == "tisagenlecleucel",
                RunTrend.event == "malignancy_t_cell",
            )
            .order_by(RunTrend.period_end)
        )
        .scalars()
        .all()
    )
    assert [t.period_end for t in trend] == [
        dt.date(2023, 12, 31),
        dt.date(2024, 3, 31),
        dt.date(2024, 6, 30),
    ]
    assert [t.n for t in trend] == [7, 12, 12]  # fortnightly from 1 Oct 2023: 7 of 12 by 31 Dec
    assert trend[-1].expected == pytest.approx(grp.expected)
    assert (trend[-1].eb05 is None and pd.isna(grp.eb05)) or trend[-1].eb05 == pytest.approx(grp.eb05)


def test_as_of_replay_before_and_after_the_signal_start(session: Session) -> None:
    make_store(session)
    session.commit()
    before = _run(session, SIGNAL_START - dt.timedelta(days=1))
    after = _run(session, dt.date(2024, 3, 31))
    r_before = results_frame(session, before.id)
    r_after = results_frame(session, after.id)
    assert _pair(r_before, "pt", "tisagenlecleucel", "t-cell lymphoma").empty
    assert _pair(r_before, "group", "tisagenlecleucel", "malignancy_t_cell").empty
    sig = _pair(r_after, "group", "tisagenlecleucel", "malignancy_t_cell").iloc[0]
    assert sig.n == 12 and sig.prr > 2 and sig.ic025 > 0
    # the follow-up: as of 30 Sep 2023 the case is version 2 (LISINOPRIL/headache), not METFORMIN/nausea
    assert before.as_of == dt.date(2023, 9, 30)


def test_same_data_same_config_identical_results_and_run_computed_once(session: Session) -> None:
    make_store(session)
    session.commit()
    as_of = dt.date(2024, 6, 30)
    run = _run(session, as_of)
    again, should = service.request_run(session, as_of, FAST, config_dir=CONFIG_DIR)
    assert again.id == run.id and not should
    first = results_frame(session, run.id)
    # a different configuration is a different run; recomputing a stage replaces, never duplicates
    cfg = FAST.model_copy(update={"shards": 3})
    other = _run(session, as_of, cfg)
    assert other.id != run.id and other.config_hash != run.config_hash
    second = results_frame(session, other.id)
    pd.testing.assert_frame_equal(first, second)
    assert session.scalar(select(func.count()).select_from(Run)) == 2


def test_stage_retry_replaces_rows_and_succeeded_runs_are_immutable(session: Session) -> None:
    make_store(session)
    session.commit()
    run, _ = service.request_run(session, dt.date(2024, 6, 30), FAST, config_dir=CONFIG_DIR)
    stages.build_counts(session, run.id)
    stages.build_counts(session, run.id)  # an interrupted attempt, redelivered
    stages.fit_prior(session, run.id)
    for shard in range(run.shards):
        stages.compute_shard(session, run.id, shard)
    stages.compute_shard(session, run.id, 0)  # shard 0 redelivered
    stages.finalise_run(session, run.id)
    session.commit()
    results = results_frame(session, run.id)
    assert not results.duplicated(["level", "stratified", "product", "event"]).any()
    n = session.scalar(select(func.count()).select_from(RunResult).where(RunResult.run_id == run.id))
    assert stages.build_counts(session, run.id).skipped == "succeeded"
    assert stages.compute_shard(session, run.id, 1).skipped == "succeeded"
    session.commit()
    assert session.scalar(select(func.count()).select_from(RunResult).where(RunResult.run_id == run.id)) == n


def test_incomplete_shard_fails_finalisation(session: Session) -> None:
    make_store(session)
    session.commit()
    run, _ = service.request_run(session, dt.date(2024, 6, 30), FAST, config_dir=CONFIG_DIR)
    stages.build_counts(session, run.id)
    stages.fit_prior(session, run.id)
    stages.compute_shard(session, run.id, 0)
    with pytest.raises(service.RunFailedError, match="incomplete"):
        stages.finalise_run(session, run.id)


def test_sqlite_gives_the_same_results_as_postgresql(session: Session, sqlite_session: Session) -> None:
    for s in (session, sqlite_session):
        make_store(s)
        s.commit()
    as_of = dt.date(2024, 6, 30)
    pg = results_frame(session, _run(session, as_of).id)
    lite = results_frame(sqlite_session, _run(sqlite_session, as_of).id)
    assert len(pg) == len(lite) > 0
    pd.testing.assert_frame_equal(
        pg[["level", "product", "event", "n"]], lite[["level", "product", "event", "n"]]
    )
    np.testing.assert_allclose(
        pg[["expected", "ebgm", "eb05"]].to_numpy(float),
        lite[["expected", "ebgm", "eb05"]].to_numpy(float),
        rtol=1e-9,
    )


def test_invalid_configuration_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "analysis.yaml"
    bad.write_text("roles: [PS, XX]\n")
    with pytest.raises(ConfigError, match=r"analysis.yaml: invalid analysis configuration: roles.1: Input should be"):
        AnalysisConfig.load(bad)


def test_pairs_whose_ebgm_cannot_be_computed_keep_their_other_measures() -> None:
    from pv.errors import ConvergenceError

    class Flaky:
        """Scores like MGPS, but fails (as a whole call) whenever the pair with n = 7 is in the table."""

        def score(self, table: pd.DataFrame) -> pd.DataFrame:
            if (table["n"] == 7).any():
                raise ConvergenceError("posterior quantile 0.05 did not converge for 1 pairs")
            return table.assign(ebgm=table["n"] / table["expected"], eb05=0.5, eb95=9.0)

    table = pd.DataFrame({"product": ["a", "b", "c", "d", "e"], "event": ["x"] * 5, "n": [1, 7, 3, 4, 5],
                          "expected": [1.0, 2.0, 3.0, 2.0, 1.0]})
    out = stages.with_ebgm(table, Flaky())  # type: ignore[arg-type]
    assert list(out["product"]) == ["a", "b", "c", "d", "e"]
    assert out["ebgm"].isna().tolist() == [False, True, False, False, False]
    assert out.loc[out["product"] == "d", "ebgm"].item() == 2.0
