"""The stages of a run: count, fit the MGPS prior, score each shard, finalise.

A run's stages are separate service calls so that Celery can spread them over workers. Each is idempotent: it
replaces what an interrupted attempt of the same stage may have left (delete-then-insert in the caller's
transaction), and does nothing once the run succeeded (or, for a shard, failed).

1. :func:`build_counts` reads the store as of the run's date (:mod:`pv.analysis.extract`), builds the count
   tables and the trend (:mod:`pv.analysis.counting`) and writes them to the scratch table ``run_counts`` and to
   ``run_trend``.
2. :func:`fit_prior` fits the MGPS prior (once per run, or per table) and stores the hyperparameters and
   log-likelihood on the run.
3. :func:`compute_shard` computes every measure for the pairs of one shard of products into ``run_results``.
4. :func:`finalise_run` checks every shard is complete, adds EBGM to the trend, empties the scratch table and
   marks the run succeeded. From then on its results never change.

Services receive the caller's Session and do not commit; the caller (a Celery task, the CLI, a test) does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from pv.analysis.config import AnalysisConfig
from pv.analysis.counting import count_tables
from pv.analysis.extract import extract
from pv.analysis.results import COUNT_COLUMNS, RESULT_COLUMNS, TREND_COLUMNS, read_counts, read_trend
from pv.analysis.runs import RunFailedError, claim, get_run, record_timing, run_snapshot
from pv.db.bulk import write_frame
from pv.errors import ConvergenceError, InputError
from pv.models.runs import Run, RunCount, RunResult, RunTrend, utcnow
from pv.stats import MEASURES, MGPS, QUANTILE_FAILURES, Hyperparameters, measures
from pv.stats.numbers import json_float

log = logging.getLogger(__name__)
_EBGM = ("ebgm", "eb05", "eb95")


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    """What a stage did: rows written, or why it did nothing (``skipped``: the run succeeded or failed before)."""

    run_id: int
    stage: str
    skipped: str | None = None
    rows: int | None = None
    cases: int | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The small dict a Celery task returns (fields that are set)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def analysis_key(level: str, stratified: bool) -> str:
    return f"{level}:{'stratified' if stratified else 'crude'}"


def prior_table(cfg: AnalysisConfig) -> tuple[str, bool]:
    """The table the once-per-run prior is fitted on: PT level (stratified when configured), else the first."""
    analyses = cfg.analyses()
    for candidate in (("pt", True), ("pt", False)):
        if candidate in analyses:
            return candidate
    return analyses[0]


def build_counts(session: Session, run_id: int) -> StageOutcome:
    """Stage 1: count tables into ``run_counts`` and the trend into ``run_trend`` (replacing earlier attempts)."""
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return StageOutcome(run_id, "counting", skipped="succeeded")
    run.status = "running"
    claim(run)
    run.started_at = run.started_at or utcnow()
    run.error = None
    session.flush()
    snap = run_snapshot(run)
    cfg = snap.analysis
    t0 = time.perf_counter()
    data = extract(session, run.as_of, cfg.roles, with_indications=cfg.background.kind == "indication",
                   scope=run.scope)
    extracted = time.perf_counter() - t0
    tables = count_tables(data, snap)
    if tables.n_cases == 0:
        raise EmptyRunError(_why_empty(session, run.as_of, run.scope))
    t0 = time.perf_counter()
    for table in (RunCount, RunTrend, RunResult):
        session.execute(delete(table).where(table.run_id == run_id))
    n = 0
    for counts in tables.tables.values():
        n += write_frame(session, "run_counts", counts.assign(run_id=run_id), ["run_id", *COUNT_COLUMNS])
    write_frame(session, "run_trend", tables.trend.assign(run_id=run_id), ["run_id", *TREND_COLUMNS])
    run.n_cases = tables.n_cases
    run.n_rows = tables.n_rows
    for stage, seconds in {"extract": extracted, **tables.timings,
                           "write_counts": time.perf_counter() - t0}.items():
        record_timing(run, stage, seconds)
    session.flush()
    return StageOutcome(run_id, "counting", rows=n, cases=tables.n_cases)


class EmptyRunError(InputError):
    """A run found no case to count: it fails with the reason instead of succeeding with nothing."""


def _why_empty(session: Session, as_of: dt.date, scope: str) -> str:
    """Why a run as of ``as_of`` found no case: what the store holds, and what kept it out."""
    where = "" if scope == "all" else " AND source = :scope"
    params = {"as_of": as_of, "scope": scope}
    stored = session.execute(text(f"SELECT COUNT(*) FROM case_versions WHERE 1 = 1{where}"), params).scalar_one()
    undated = session.execute(text(
        f"SELECT COUNT(*) FROM case_versions WHERE received_date IS NULL{where}"), params).scalar_one()
    later = session.execute(text(
        f"SELECT COUNT(*) FROM case_versions WHERE received_date > :as_of{where}"), params).scalar_one()
    what = "the store holds no case version" + ("" if scope == "all" else f" of scope {scope!r}")
    if stored:
        what = (f"of the {stored:,} stored case versions{'' if scope == 'all' else f' of scope {scope!r}'}, "
                f"{later:,} were received after {as_of} and {undated:,} have no receipt date")
    return (f"no case to count as of {as_of}: {what}; a run with no case would report no signal as if "
            "nothing had been reported")


def _hyperparameters(model: MGPS) -> dict[str, float | None]:
    return {k: json_float(v) for k, v in model.hyperparameters_.to_dict().items()}


def fit_prior(session: Session, run_id: int) -> StageOutcome:
    """Stage 2: fit the MGPS prior over all the pairs (n >= 1) of a count table.

    ``mgps_fit: per_table`` (the default) fits each table (PT and group level, crude and stratified) on its own
    pairs; ``per_run`` fits once per run, on the PT-level table (stratified when strata are configured), and
    scores every table of the run with that prior. A prior that cannot be used (too few pairs, no convergence,
    or degenerate: its optimum on the edge of the parameter space) is not stored: the tables it was for are
    listed in the run's parameters (``mgps_not_fitted``) with the reason, and their pairs get every measure
    but EBGM, EB05 and EB95 (empty), so no signal rule can hold on those.
    """
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return StageOutcome(run_id, "MGPS fit", skipped="succeeded")
    claim(run)
    cfg = run_snapshot(run).analysis
    t0 = time.perf_counter()
    analyses = cfg.analyses()
    fitted_on = analyses if cfg.mgps_fit == "per_table" else [prior_table(cfg)]
    hyper: dict[str, dict[str, float | None]] = {}
    loglik: dict[str, float | None] = {}
    failed: dict[str, str] = {}
    for level, stratified in fitted_on:
        key = analysis_key(level, stratified)
        table = read_counts(session, run_id, level=level, stratified=stratified)
        if table.empty:
            failed[key] = "no pairs"
            continue
        try:
            model = MGPS(subsample=cfg.mgps_subsample).fit(table.reset_index(drop=True))
        except (ConvergenceError, InputError) as exc:  # too few pairs, or no finite likelihood
            failed[key] = str(exc)
            continue
        h = _hyperparameters(model)
        if model.reason_ is not None or any(v is None for v in h.values()):
            failed[key] = model.reason_ or "the MGPS fit gave non-finite hyperparameters"
            log.warning("run %s: no EBGM for %s: %s", run_id, key, failed[key])
            continue
        hyper[key] = h
        loglik[key] = json_float(model.loglik_)
    if cfg.mgps_fit == "per_run":
        source = analysis_key(*fitted_on[0])
        if source in hyper:
            hyper = {analysis_key(level, stratified): hyper[source] for level, stratified in analyses}
        else:
            failed.update({analysis_key(level, stratified): f"scored with the prior of {source}: {failed[source]}"
                           for level, stratified in analyses if analysis_key(level, stratified) != source})
        run.parameters = {**(run.parameters or {}), "mgps_fitted_on": source}
    run.hyperparameters = hyper
    run.loglik = loglik
    if failed:
        run.parameters = {**(run.parameters or {}), "mgps_not_fitted": failed}
    seconds = time.perf_counter() - t0
    record_timing(run, "fit_prior", seconds)
    session.flush()
    return StageOutcome(run_id, "MGPS fit", seconds=round(seconds, 3))


def _prior(run: Run, key: str) -> MGPS | None:
    """The MGPS model of the run's fitted prior for table ``key``; None when it has none."""
    h = (run.hyperparameters or {}).get(key)
    if h is None:
        return None
    return MGPS.from_hyperparameters(
        Hyperparameters(**{k: float(h[k]) for k in ("alpha1", "beta1", "alpha2", "beta2", "p")}))


def with_ebgm(table: pd.DataFrame, model: MGPS | None) -> pd.DataFrame:
    """``table`` with EBGM/EB05/EB95 under a fitted ``model`` (empty without one). Pairs whose posterior
    quantiles do not converge keep empty EB05/EB95 and are counted in the log; a scorer that raises
    ConvergenceError instead has the failing pairs found by bisecting the table (they keep empty EBGM columns),
    so one pair never fails the whole run."""
    if model is None:
        return table.assign(**{col: np.nan for col in _EBGM})

    def scored(part: pd.DataFrame) -> pd.DataFrame:
        try:
            out = model.score(part)
        except ConvergenceError:
            if len(part) == 1:
                log.warning("EBGM not computed for %s x %s (n=%s, E=%s): posterior quantiles did not converge",
                            part["product"].iloc[0], part["event"].iloc[0], part["n"].iloc[0],
                            part["expected"].iloc[0])
                return part.assign(**{col: np.nan for col in _EBGM})
            half = len(part) // 2
            return pd.concat([scored(part.iloc[:half]), scored(part.iloc[half:])])
        failures = int(out.attrs.get(QUANTILE_FAILURES, 0))
        if failures:
            log.warning("EB05/EB95 not computed for %d of %d pairs: posterior quantiles did not converge",
                        failures, len(out))
        return out

    return scored(table)


def score(counts: pd.DataFrame, model: MGPS | None) -> pd.DataFrame:
    """Every measure for a count table: PRR, ROR and IC and, with a fitted MGPS model, EBGM/EB05/EB95."""
    if counts.empty:
        return counts.assign(**{col: pd.Series(dtype="float64") for col in MEASURES})
    return with_ebgm(measures(counts.reset_index(drop=True)), model)


def compute_shard(session: Session, run_id: int, shard: int) -> StageOutcome:
    """Stage 3: measures of the pairs whose product is in ``shard``, written to ``run_results``."""
    run = get_run(session, run_id)
    if run.status in ("succeeded", "failed"):
        return StageOutcome(run_id, f"shard {shard}", skipped=run.status)
    cfg = run_snapshot(run).analysis
    t0 = time.perf_counter()
    counts = read_counts(session, run_id, shard=shard)
    counts = counts[counts["n"] >= cfg.min_count]
    t_read = time.perf_counter() - t0
    frames = [score(table, _prior(run, analysis_key(str(level), bool(stratified))))
              for (level, stratified), table in counts.groupby(["level", "stratified"], sort=True)]
    t_compute = time.perf_counter() - t0 - t_read
    session.execute(delete(RunResult).where(RunResult.run_id == run_id, RunResult.shard == shard))
    written = 0
    if frames:
        results = pd.concat(frames, ignore_index=True)
        written = write_frame(session, "run_results", results.assign(run_id=run_id), ["run_id", *RESULT_COLUMNS])
    seconds = time.perf_counter() - t0
    run = get_run(session, run_id, for_update=True)  # shards run concurrently: lock the row to record timing
    claim(run)
    record_timing(run, f"shard_{shard}", seconds)
    record_timing(run, f"shard_{shard}_read", t_read)
    record_timing(run, f"shard_{shard}_compute", t_compute)
    session.flush()
    return StageOutcome(run_id, f"shard {shard}", rows=written, seconds=round(seconds, 3))


def finalise_run(session: Session, run_id: int) -> StageOutcome:
    """Stage 4: check completeness, add EBGM to the trend, drop the scratch counts, mark the run succeeded."""
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return StageOutcome(run_id, "finalisation", skipped="succeeded", rows=run.n_pairs)
    if run.status == "failed":
        raise RunFailedError(f"run {run_id} failed: {run.error}")
    cfg = run_snapshot(run).analysis
    t0 = time.perf_counter()
    expected = dict(
        session.execute(
            select(RunCount.shard, func.count())
            .where(RunCount.run_id == run_id, RunCount.n >= cfg.min_count)
            .group_by(RunCount.shard)
        ).all()
    )
    written = dict(
        session.execute(
            select(RunResult.shard, func.count()).where(RunResult.run_id == run_id).group_by(RunResult.shard)
        ).all()
    )
    if expected != written:
        missing = sorted(s for s in set(expected) | set(written) if expected.get(s, 0) != written.get(s, 0))
        raise RunFailedError(f"run {run_id}: shards {missing} are incomplete")
    trend = read_trend(session, run_id)
    if not trend.empty:
        trend = pd.concat(
            [with_ebgm(table.drop(columns=list(_EBGM)).reset_index(drop=True),
                       _prior(run, analysis_key(str(level), False)))
             for level, table in trend.groupby("level", sort=True)],
            ignore_index=True,
        )
        session.execute(delete(RunTrend).where(RunTrend.run_id == run_id))
        write_frame(session, "run_trend", trend.assign(run_id=run_id), ["run_id", *TREND_COLUMNS])
    session.execute(delete(RunCount).where(RunCount.run_id == run_id))
    run.n_pairs = int(
        session.execute(
            select(func.count())
            .select_from(RunResult)
            .where(RunResult.run_id == run_id, RunResult.stratified.is_(False))
        ).scalar_one()
    )
    record_timing(run, "finalise", time.perf_counter() - t0)
    run.status = "succeeded"
    run.finished_at = utcnow()
    session.flush()
    return StageOutcome(run_id, "finalisation", rows=run.n_pairs)


def execute_run(session: Session, run_id: int) -> Run:
    """Every stage of a run in this process, in order (the caller commits). Used by tests and scripts."""
    build_counts(session, run_id)
    fit_prior(session, run_id)
    for shard in range(get_run(session, run_id).shards):
        compute_shard(session, run_id, shard)
    finalise_run(session, run_id)
    return get_run(session, run_id)
