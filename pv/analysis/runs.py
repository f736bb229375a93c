"""Analysis runs: request, count, fit, score per shard, finalise.

A run is (as-of date, data scope, configuration snapshot). Its stages are separate service calls so that
Celery can spread them over workers, and each stage is idempotent: it replaces what an interrupted attempt of
the same stage may have left (delete-then-insert in the caller's transaction), and does nothing once the run
succeeded.

1. :func:`build_counts` reads the store as of the date (:mod:`pv.analysis.extract`), builds the count tables
   (PT and event-group levels, unstratified and stratified as configured) with :func:`pv.stats.count_table`,
   and writes them to the scratch table ``run_counts``, each pair tagged with its product's shard; it also
   writes the trend (cumulative counts and measures by quarter end for the pairs of interest).
2. :func:`fit_prior` fits the MGPS prior once per table over all its pairs (n >= 1) and stores the
   hyperparameters and log-likelihood on the run.
3. :func:`compute_shard` computes every measure for the pairs of one shard of products and writes them to
   ``run_results``.
4. :func:`finalise_run` checks every shard is complete, adds EBGM to the trend, empties the scratch table and
   marks the run succeeded. From then on its results never change.

Services receive the caller's Session and do not commit; the caller (a Celery task, the CLI, a test) does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import subprocess
import time
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import pv
from pv.analysis.config import AnalysisConfig, config_hash
from pv.analysis.extract import CaseData, add_strata, extract, group_rows
from pv.db.bulk import read_frame, write_frame
from pv.errors import ConfigError, ConvergenceError, InputError, NotFoundError, PvError
from pv.models.casestore import EventGroupTerm
from pv.models.runs import Run, RunCount, RunResult, RunTrend, utcnow
from pv.normalise import EventGroups, ProductDictionary, normalise_pt
from pv.settings import get_settings
from pv.stats import MGPS, Hyperparameters, count_table, measures

MEASURE_COLUMNS = [
    "prr",
    "prr_chi2",
    "ror",
    "ror_lower",
    "ror_upper",
    "ic",
    "ic025",
    "ic975",
    "ebgm",
    "eb05",
    "eb95",
]
COUNT_COLUMNS = [
    "shard",
    "level",
    "stratified",
    "product",
    "event",
    "n",
    "n_product",
    "n_event",
    "n_total",
    "expected",
    "n_serious",
    "n_deaths",
]
RESULT_COLUMNS = [
    "shard",
    "level",
    "stratified",
    "product",
    "event",
    "n",
    "expected",
    *MEASURE_COLUMNS,
    "n_serious",
    "n_deaths",
]
TREND_COLUMNS = [
    "level",
    "product",
    "event",
    "period_end",
    "n",
    "n_product",
    "n_event",
    "n_total",
    "expected",
    *MEASURE_COLUMNS,
]
_NO_EVENT = (
    "\x00none"  # placeholder event of cases without any group event (keeps group-level marginals right)
)
log = logging.getLogger(__name__)


class RunFailedError(PvError):
    """A run ended in failure (its message says which stage and why)."""


# ------------------------------------------------------------------------------------------------------------
# Configuration snapshot and run requests
# ------------------------------------------------------------------------------------------------------------


@lru_cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    version = pv.__version__
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(pv.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+{sha}" if sha else version


def snapshot(session: Session, cfg: AnalysisConfig, config_dir: Path | None = None) -> dict[str, Any]:
    """Everything a run's results depend on besides the data: the analysis configuration, the event groups
    (from the store's event_group_terms, synced from config/event_groups.yaml when empty) and the resolved
    product lists of the trend and the background."""
    config_dir = config_dir or get_settings().config_dir
    terms: list[tuple[str, str]] = [
        (g, pt) for g, pt in session.execute(select(EventGroupTerm.group_name, EventGroupTerm.pt)).all()
    ]
    if not terms:
        groups_cfg = EventGroups.load(config_dir / "event_groups.yaml")
        session.add_all(EventGroupTerm(group_name=g, pt=pt) for g, pt in groups_cfg.pairs())
        session.flush()
        terms = [(g, pt) for g, pt in groups_cfg.pairs()]
    groups: dict[str, list[str]] = {}
    for g, pt in sorted(terms):
        groups.setdefault(g, []).append(pt)
    products = ProductDictionary.load(config_dir / "products.yaml").products

    def of_classes(classes: Sequence[str]) -> list[str]:
        return sorted(p for p, spec in products.items() if spec.get("class") in set(classes))

    trend_products = sorted(set(of_classes(cfg.trend.product_classes)) | set(cfg.trend.products))
    background_products: list[str] = []
    if cfg.background.kind == "product_class":
        if not cfg.background.product_class:
            raise ConfigError(
                "analysis.yaml: background.product_class must be set when kind is product_class"
            )
        background_products = of_classes([cfg.background.product_class])
        if not background_products:
            raise ConfigError(f"analysis.yaml: no product has class {cfg.background.product_class!r}")
    return {
        "analysis": cfg.model_dump(mode="json"),
        "event_groups": groups,
        "trend_products": trend_products,
        "background_products": background_products,
    }


def request_run(
    session: Session,
    as_of: dt.date,
    cfg: AnalysisConfig | None = None,
    *,
    scope: str = "all",
    config_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[Run, bool]:
    """The run for (as_of, scope, configuration): an existing one, or a new queued one.

    Returns (run, should_compute): should_compute is False when the same run is already queued, running or
    succeeded (it is computed once); a failed run is reset to queued and computed again.
    """
    cfg = cfg or AnalysisConfig.load(config_dir / "analysis.yaml" if config_dir else None)
    snap = snapshot(session, cfg, config_dir)
    digest = config_hash(snap)
    existing = _find(session, as_of, scope, digest)
    if existing is None:
        run = Run(
            status="queued",
            as_of=as_of,
            scope=scope,
            parameters=parameters or {},
            config=snap,
            config_hash=digest,
            code_version=code_version(),
            shards=cfg.shards,
        )
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
            return run, True
        except IntegrityError:
            existing = _find(session, as_of, scope, digest)
            if existing is None:
                raise
    if existing.status == "failed":
        existing.status = "queued"
        existing.error = None
        existing.started_at = None
        existing.finished_at = None
        existing.code_version = code_version()
        session.flush()
        return existing, True
    return existing, False


def _find(session: Session, as_of: dt.date, scope: str, digest: str) -> Run | None:
    return session.execute(
        select(Run).where(Run.as_of == as_of, Run.scope == scope, Run.config_hash == digest)
    ).scalar_one_or_none()


def get_run(session: Session, run_id: int, *, for_update: bool = False) -> Run:
    stmt = select(Run).where(Run.id == run_id)
    if for_update:  # lock the row and reload it: another task may have changed it meanwhile
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    run = session.execute(stmt).scalar_one_or_none()
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return run


def list_runs(session: Session, limit: int | None = None) -> list[Run]:
    stmt = select(Run).order_by(Run.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def fail_run(session: Session, run_id: int, message: str) -> None:
    """Mark a run failed with ``message`` (never a succeeded one)."""
    run = get_run(session, run_id)
    if run.status == "succeeded":
        return
    run.status = "failed"
    run.error = message[:4000]
    run.finished_at = utcnow()
    for table in (RunCount, RunResult, RunTrend):  # a failed run keeps no partial results
        session.execute(delete(table).where(table.run_id == run_id))
    session.flush()


def _config(run: Run) -> AnalysisConfig:
    return AnalysisConfig.parse(run.config["analysis"], source=f"run {run.id} configuration")


def _record_timing(run: Run, stage: str, seconds: float) -> None:
    timings = dict(run.timings or {})
    timings[stage] = round(seconds, 3)
    run.timings = timings


def shard_of(products: pd.Series, shards: int) -> np.ndarray:
    """Stable shard number of each product (crc32 of its UTF-8 name, modulo the shard count)."""
    uniq = pd.unique(products)
    table = {p: zlib.crc32(str(p).encode("utf-8")) % shards for p in uniq}
    return products.map(table).to_numpy(dtype="int64")


def analysis_key(level: str, stratified: bool) -> str:
    return f"{level}:{'stratified' if stratified else 'crude'}"


# ------------------------------------------------------------------------------------------------------------
# Counting
# ------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CountTables:
    """The count tables of one run, before measures: one frame per (level, stratified)."""

    tables: dict[tuple[str, bool], pd.DataFrame]
    trend: pd.DataFrame
    n_cases: int
    n_rows: int
    timings: dict[str, float]


def cross_join(left: pd.DataFrame, right: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the join of two frames on ``vid`` (both sorted by vid): every left row of a case with
    every right row of the same case. Vectorised: no per-case Python loop, no hash table."""
    lv = left["vid"].to_numpy()
    rv = right["vid"].to_numpy()
    lu, lstart, lcount = np.unique(lv, return_index=True, return_counts=True)
    ru, rstart, rcount = np.unique(rv, return_index=True, return_counts=True)
    common, li, ri = np.intersect1d(lu, ru, assume_unique=True, return_indices=True)
    lstart, lcount, rstart, rcount = lstart[li], lcount[li], rstart[ri], rcount[ri]
    # left rows of the common cases, each repeated once per right row of its case
    lrows = np.repeat(lstart, lcount) + (np.arange(int(lcount.sum())) - np.repeat(np.cumsum(lcount) - lcount,
                                                                                    lcount))
    reps = np.repeat(rcount, lcount)
    left_pos = np.repeat(lrows, reps)
    # right rows: for each left row, the block of its case's right rows
    block_start = np.repeat(np.cumsum(reps) - reps, reps)
    local = np.arange(int(reps.sum())) - block_start
    right_pos = np.repeat(np.repeat(rstart, lcount), reps) + local
    return left_pos, right_pos


def _case_rows(data: CaseData, run_snapshot: dict[str, Any], cfg: AnalysisConfig) -> dict[str, pd.DataFrame]:
    """Case-level rows (vid, product, event, strata..., serious, died) per level, one per case, product and
    event; categorical columns throughout so that FAERS-scale row counts stay small in memory."""
    cases = add_strata(data.cases, cfg.age_bands)
    if cfg.background.kind == "indication":
        wanted = {normalise_pt(t) for t in cfg.background.indications}
        ind = data.indications if data.indications is not None else pd.DataFrame(columns=["vid", "pt"])
        cases = cases[cases["vid"].isin(ind.loc[ind["pt"].isin(wanted), "vid"].unique())]
    elif cfg.background.kind == "product_class":
        wanted = set(run_snapshot["background_products"])
        cases = cases[cases["vid"].isin(data.drugs.loc[data.drugs["product"].isin(wanted), "vid"].unique())]
    drugs = data.drugs[data.drugs["vid"].isin(cases["vid"].to_numpy())]
    reactions = data.reactions[data.reactions["vid"].isin(cases["vid"].to_numpy())]
    # cases counted: at least one drug in a counted role and at least one reaction
    universe = np.intersect1d(drugs["vid"].unique(), reactions["vid"].unique())
    drugs = drugs[drugs["vid"].isin(universe)].reset_index(drop=True)
    reactions = reactions[reactions["vid"].isin(universe)].reset_index(drop=True)
    cases = cases[cases["vid"].isin(universe)].sort_values("vid").reset_index(drop=True)
    case_vid = cases["vid"].to_numpy()

    def rows_of(events: pd.DataFrame) -> pd.DataFrame:
        dpos, epos = cross_join(drugs, events)
        vid = drugs["vid"].to_numpy()[dpos]
        at = np.searchsorted(case_vid, vid)
        out = pd.DataFrame({
            "vid": vid,
            "product": drugs["product"].take(dpos).reset_index(drop=True),
            "event": events["event"].take(epos).reset_index(drop=True),
        })
        for col in ("sex", "age_band", "report_year", "serious", "died"):
            out[col] = cases[col].take(at).reset_index(drop=True)
        return out

    out: dict[str, pd.DataFrame] = {}
    if "pt" in cfg.levels:
        out["pt"] = rows_of(reactions.rename(columns={"pt": "event"}))
    if "group" in cfg.levels:
        grp = group_rows(reactions, run_snapshot["event_groups"]).rename(columns={"group": "event"})
        without = pd.DataFrame({"vid": np.setdiff1d(universe, grp["vid"].unique()), "event": _NO_EVENT})
        events = pd.concat([grp.astype({"event": str}), without], ignore_index=True)
        events["event"] = events["event"].astype("category")
        out["group"] = rows_of(events.sort_values(["vid", "event"], kind="stable").reset_index(drop=True))
    return out


def _serious_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Serious cases and deaths per pair (rows are one per case, product and event)."""
    pc = rows["product"].cat.codes.to_numpy().astype(np.int64)
    ec = rows["event"].cat.codes.to_numpy().astype(np.int64)
    n_e = len(rows["event"].cat.categories)
    key = pc * n_e + ec
    out = []
    for flag, name in (("serious", "n_serious"), ("died", "n_deaths")):
        uniq, cnt = np.unique(key[rows[flag].to_numpy(dtype=bool)], return_counts=True)
        out.append(pd.Series(cnt, index=uniq, name=name))
    frame = pd.concat(out, axis=1).fillna(0).astype("int64")
    keys = frame.index.to_numpy()
    frame.insert(0, "product", rows["product"].cat.categories.to_numpy()[keys // n_e].astype(str))
    frame.insert(1, "event", rows["event"].cat.categories.to_numpy()[keys % n_e].astype(str))
    return frame.reset_index(drop=True)


def compute_counts(session: Session, run: Run) -> CountTables:
    """Extract the data in force at the run's as-of date and build its count tables and trend (no writes)."""
    cfg = _config(run)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = extract(
        session, run.as_of, cfg.roles, with_indications=cfg.background.kind == "indication", scope=run.scope
    )
    timings["extract"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows_by_level = _case_rows(data, run.config, cfg)
    timings["rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables: dict[tuple[str, bool], pd.DataFrame] = {}
    n_rows = 0
    for level, stratified in cfg.analyses():
        rows = rows_by_level[level]
        n_rows = max(n_rows, len(rows))
        counts = count_table(
            rows, id_col="vid", product_col="product", event_col="event",
            strata=list(cfg.strata.by) if stratified else None,
        )
        counts["product"] = counts["product"].astype(str)
        counts["event"] = counts["event"].astype(str)
        counts = counts[counts["event"] != _NO_EVENT]
        serious = _serious_counts(rows) if not stratified else None
        if serious is not None:
            counts = counts.merge(serious, on=["product", "event"], how="left")
        tables[(level, stratified)] = counts
    for level, stratified in list(tables):
        if stratified and (level, False) in tables:
            crude = tables[(level, False)][["product", "event", "n_serious", "n_deaths"]]
            tables[(level, stratified)] = tables[(level, stratified)].merge(
                crude, on=["product", "event"], how="left"
            )
    for key, counts in tables.items():
        counts = counts.copy()
        counts["n_serious"] = counts["n_serious"].fillna(0).astype("int64")
        counts["n_deaths"] = counts["n_deaths"].fillna(0).astype("int64")
        counts["level"], counts["stratified"] = key
        counts["shard"] = shard_of(counts["product"], cfg.shards)
        tables[key] = counts.sort_values(["product", "event"], kind="stable").reset_index(drop=True)
    timings["count_tables"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trend = compute_trend(data, rows_by_level, run.config, cfg, run.as_of)
    timings["trend"] = time.perf_counter() - t0
    n_cases = int(len(np.unique(np.concatenate([r["vid"].to_numpy() for r in rows_by_level.values()]))))
    return CountTables(tables=tables, trend=trend, n_cases=n_cases, n_rows=n_rows, timings=timings)


def period_ends(since: dt.date, as_of: dt.date) -> list[dt.date]:
    """Quarter ends from the quarter of ``since`` up to ``as_of``, plus ``as_of`` when it is not one."""
    out: list[dt.date] = []
    year, quarter = since.year, (since.month - 1) // 3 + 1
    while True:
        month = quarter * 3
        end = dt.date(year, month, 31 if month in (3, 12) else 30)
        if end > as_of:
            break
        out.append(end)
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
    if not out or out[-1] != as_of:
        out.append(as_of)
    return out


def compute_trend(
    data: CaseData,
    rows_by_level: dict[str, pd.DataFrame],
    run_snapshot: dict[str, Any],
    cfg: AnalysisConfig,
    as_of: dt.date,
) -> pd.DataFrame:
    """Cumulative counts and measures (no EBGM yet) at each quarter end, for the trend's pairs of interest.

    Each case enters at its first receipt (FAERS init_fda_dt) with the content of its version in force at the
    run's as-of date, so the last point equals the run's own unstratified figures.
    """
    periods = period_ends(cfg.trend.since, as_of)
    edges = np.array(periods, dtype="datetime64[D]")
    products = set(run_snapshot["trend_products"])
    frames = []
    for level in cfg.trend.levels:
        rows = rows_by_level.get(level)
        if rows is None or not products:
            continue
        first = data.cases.set_index("vid")["first_received"]
        universe = pd.Index(rows["vid"].unique())
        case_period = pd.Series(
            np.searchsorted(edges, first.reindex(universe).to_numpy(dtype="datetime64[D]"), side="left"),
            index=universe,
        )
        case_period = case_period.clip(upper=len(periods) - 1)  # received on or before as_of by construction

        def cumulative(pairs: pd.DataFrame, keys: list[str], case_period: pd.Series = case_period
                       ) -> pd.DataFrame:
            pairs = pairs.assign(period=case_period.reindex(pairs["vid"]).to_numpy())
            counted = pairs.groupby([*keys, "period"], observed=True).size().rename("k").reset_index()
            wide = counted.pivot_table(index=keys, columns="period", values="k", fill_value=0, observed=True)
            wide = wide.reindex(columns=range(len(periods)), fill_value=0).cumsum(axis=1)
            long = wide.stack(future_stack=True).rename("count").reset_index()
            return long

        total = np.cumsum(np.bincount(case_period.to_numpy(), minlength=len(periods)))
        if level == "group":
            events = set(run_snapshot["event_groups"])
        else:
            events = {normalise_pt(p) for p in cfg.trend.pts}
        prod_rows = rows.loc[rows["product"].isin(products), ["vid", "product"]].drop_duplicates()
        event_rows = rows.loc[rows["event"].isin(events), ["vid", "event"]].drop_duplicates()
        pair_rows = rows.loc[
            rows["product"].isin(products) & rows["event"].isin(events), ["vid", "product", "event"]
        ].drop_duplicates()
        if pair_rows.empty:
            continue
        n_prod = cumulative(prod_rows, ["product"]).rename(columns={"count": "n_product"})
        n_event = cumulative(event_rows, ["event"]).rename(columns={"count": "n_event"})
        n_pair = cumulative(pair_rows, ["product", "event"]).rename(columns={"count": "n"})
        t = n_pair.merge(n_prod, on=["product", "period"]).merge(n_event, on=["event", "period"])
        t = t[t["n"] >= 1].copy()
        t["n_total"] = total[t["period"].to_numpy()]
        t["level"] = level
        t["period_end"] = [periods[i] for i in t["period"]]
        frames.append(t.drop(columns="period"))
    if not frames:
        return pd.DataFrame(columns=TREND_COLUMNS)
    trend = pd.concat(frames, ignore_index=True)
    for col in ("n", "n_product", "n_event", "n_total"):
        trend[col] = trend[col].astype("int64")
    trend["b"] = trend["n_product"] - trend["n"]
    trend["c"] = trend["n_event"] - trend["n"]
    trend["d"] = trend["n_total"] - trend["n_product"] - trend["n_event"] + trend["n"]
    trend["expected"] = trend["n_product"] * trend["n_event"] / trend["n_total"]
    trend = measures(trend)
    for col in ("ebgm", "eb05", "eb95"):
        trend[col] = np.nan
    return trend.sort_values(["level", "product", "event", "period_end"]).reset_index(drop=True)[
        TREND_COLUMNS
    ]


def build_counts(session: Session, run_id: int) -> dict[str, Any]:
    """Stage 1: count tables into ``run_counts`` and the trend into ``run_trend`` (replacing earlier
    attempts)."""
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return {"run_id": run_id, "skipped": "succeeded"}
    run.status = "running"
    run.started_at = run.started_at or utcnow()
    run.error = None
    session.flush()
    tables = compute_counts(session, run)
    t0 = time.perf_counter()
    session.execute(delete(RunCount).where(RunCount.run_id == run_id))
    session.execute(delete(RunTrend).where(RunTrend.run_id == run_id))
    session.execute(delete(RunResult).where(RunResult.run_id == run_id))
    n = 0
    for counts in tables.tables.values():
        n += write_frame(session, "run_counts", counts.assign(run_id=run_id), ["run_id", *COUNT_COLUMNS])
    write_frame(session, "run_trend", tables.trend.assign(run_id=run_id), ["run_id", *TREND_COLUMNS])
    tables.timings["write_counts"] = time.perf_counter() - t0
    run.n_cases = tables.n_cases
    run.n_rows = tables.n_rows
    for stage, seconds in tables.timings.items():
        _record_timing(run, stage, seconds)
    session.flush()
    return {"run_id": run_id, "cases": tables.n_cases, "count_rows": n}


# ------------------------------------------------------------------------------------------------------------
# MGPS prior, shards, finalisation
# ------------------------------------------------------------------------------------------------------------


def _hyper_dict(h: Any) -> dict[str, float | None]:
    if dataclasses.is_dataclass(h) and not isinstance(h, type):
        h = dataclasses.asdict(h)
    elif hasattr(h, "to_dict"):
        h = h.to_dict()
    return {k: _finite(v) for k, v in dict(h).items()}


def _finite(v: Any) -> float | None:
    """A float for JSON columns (PostgreSQL's JSON has no NaN or Infinity: those become null)."""
    f = float(v)
    return f if math.isfinite(f) else None


def _read_counts(
    session: Session, run_id: int, where: str = "", params: dict[str, Any] | None = None
) -> pd.DataFrame:
    frame = read_frame(
        session,
        f"SELECT {', '.join(COUNT_COLUMNS)} FROM run_counts WHERE run_id = :run_id {where} "
        "ORDER BY level, stratified, product, event",
        {"run_id": run_id, **(params or {})},
        dtypes={"product": "str", "event": "str", "level": "str"},
    )
    frame["stratified"] = frame["stratified"].map(_as_bool).astype(bool)
    for col in ("n", "n_product", "n_event", "n_total", "n_serious", "n_deaths", "shard"):
        frame[col] = frame[col].astype("int64")
    frame["expected"] = frame["expected"].astype("float64")
    frame["b"] = frame["n_product"] - frame["n"]
    frame["c"] = frame["n_event"] - frame["n"]
    frame["d"] = frame["n_total"] - frame["n_product"] - frame["n_event"] + frame["n"]
    return frame


def _as_bool(v: object) -> bool:
    if isinstance(v, str):
        return v.lower() in ("t", "true", "1")
    return bool(v)


def fit_prior(session: Session, run_id: int) -> dict[str, Any]:
    """Stage 2: fit the MGPS prior over all the pairs (n >= 1) of a count table.

    ``mgps_fit: per_run`` (the default) fits once per run, on the PT-level table (stratified when strata are
    configured), and every table of the run is scored with that prior; ``per_table`` fits each table on its own.
    """
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return {"run_id": run_id, "skipped": "succeeded"}
    cfg = _config(run)
    t0 = time.perf_counter()
    analyses = cfg.analyses()
    fitted_on = analyses if cfg.mgps_fit == "per_table" else [prior_table(cfg)]
    hyper: dict[str, dict[str, float | None]] = {}
    loglik: dict[str, float | None] = {}
    failed: dict[str, str] = {}
    for level, stratified in fitted_on:
        key = analysis_key(level, stratified)
        table = _read_counts(session, run_id, "AND level = :level AND stratified = :stratified",
                             {"level": level, "stratified": stratified})
        if table.empty:
            failed[key] = "no pairs"
            continue
        try:
            model = MGPS(subsample=cfg.mgps_subsample).fit(table.reset_index(drop=True))
        except (ConvergenceError, InputError) as exc:
            # a table too small or degenerate for the prior: its pairs get every measure but EBGM
            failed[key] = str(exc)
            continue
        h = _hyper_dict(model.hyperparameters_)
        if not getattr(model, "converged_", True) or any(v is None for v in h.values()):
            failed[key] = "the MGPS fit did not converge"
            continue
        hyper[key] = h
        loglik[key] = _finite(model.loglik_)
    if cfg.mgps_fit == "per_run":
        source = analysis_key(*fitted_on[0])
        if source in hyper:
            hyper = {analysis_key(level, stratified): hyper[source] for level, stratified in analyses}
        run.parameters = {**(run.parameters or {}), "mgps_fitted_on": source}
    run.hyperparameters = hyper
    run.loglik = loglik
    if failed:
        run.parameters = {**(run.parameters or {}), "mgps_not_fitted": failed}
    _record_timing(run, "fit_prior", time.perf_counter() - t0)
    session.flush()
    return {"run_id": run_id, "fitted_on": [analysis_key(*a) for a in fitted_on], "not_fitted": failed}


def prior_table(cfg: AnalysisConfig) -> tuple[str, bool]:
    """The table the once-per-run prior is fitted on: PT level (stratified when configured), else the first."""
    analyses = cfg.analyses()
    for candidate in (("pt", True), ("pt", False)):
        if candidate in analyses:
            return candidate
    return analyses[0]


def _prior(run: Run, key: str) -> Hyperparameters | None:
    h = (run.hyperparameters or {}).get(key)
    if h is None:
        return None
    return Hyperparameters(**{k: float(h[k]) for k in ("alpha1", "beta1", "alpha2", "beta2", "p")})


def score(counts: pd.DataFrame, hyperparameters: Hyperparameters | None) -> pd.DataFrame:
    """Every measure for a count table: PRR, ROR, IC and, with a fitted prior, EBGM/EB05/EB95."""
    if counts.empty:
        out = counts.copy()
        for col in MEASURE_COLUMNS:
            out[col] = pd.Series(dtype="float64")
        return out
    out = measures(counts.reset_index(drop=True))
    if hyperparameters is not None:
        out = _ebgm(out, MGPS.from_hyperparameters(hyperparameters))
    else:
        for col in ("ebgm", "eb05", "eb95"):
            out[col] = np.nan
    return out


def _ebgm(table: pd.DataFrame, model: MGPS) -> pd.DataFrame:
    """EBGM/EB05/EB95 for every pair; when the posterior quantiles of some pairs cannot be computed, those pairs
    (found by bisecting the table) keep empty EBGM columns instead of failing the whole run, and are logged."""
    try:
        return model.score(table)
    except ConvergenceError:
        if len(table) == 1:
            log.warning("EBGM not computed for %s x %s (n=%s, E=%s): posterior quantiles did not converge",
                        table["product"].iloc[0], table["event"].iloc[0], table["n"].iloc[0],
                        table["expected"].iloc[0])
            out = table.copy()
            for col in ("ebgm", "eb05", "eb95"):
                out[col] = np.nan
            return out
        half = len(table) // 2
        return pd.concat([_ebgm(table.iloc[:half], model), _ebgm(table.iloc[half:], model)])


def compute_shard(session: Session, run_id: int, shard: int) -> dict[str, Any]:
    """Stage 3: measures of the pairs whose product is in ``shard``, written to ``run_results``."""
    run = get_run(session, run_id)
    if run.status == "succeeded":
        return {"run_id": run_id, "shard": shard, "skipped": "succeeded"}
    if run.status == "failed":
        return {"run_id": run_id, "shard": shard, "skipped": "failed"}
    cfg = _config(run)
    t0 = time.perf_counter()
    counts = _read_counts(session, run_id, "AND shard = :shard", {"shard": shard})
    counts = counts[counts["n"] >= cfg.min_count]
    t_read = time.perf_counter() - t0
    frames = []
    for (level, stratified), table in counts.groupby(["level", "stratified"], sort=True):
        scored = score(table, _prior(run, analysis_key(str(level), bool(stratified))))
        frames.append(scored)
    t_compute = time.perf_counter() - t0 - t_read
    session.execute(delete(RunResult).where(RunResult.run_id == run_id, RunResult.shard == shard))
    written = 0
    if frames:
        results = pd.concat(frames, ignore_index=True)
        written = write_frame(
            session, "run_results", results.assign(run_id=run_id), ["run_id", *RESULT_COLUMNS]
        )
    seconds = time.perf_counter() - t0
    run = get_run(session, run_id, for_update=True)  # shards run concurrently: lock the row to record timing
    _record_timing(run, f"shard_{shard}", seconds)
    _record_timing(run, f"shard_{shard}_read", t_read)
    _record_timing(run, f"shard_{shard}_compute", t_compute)
    session.flush()
    return {"run_id": run_id, "shard": shard, "rows": written, "seconds": round(seconds, 3)}


def finalise_run(session: Session, run_id: int) -> dict[str, Any]:
    """Stage 4: check completeness, add EBGM to the trend, drop the scratch counts, mark the run succeeded."""
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        return {"run_id": run_id, "status": run.status, "pairs": run.n_pairs}
    if run.status == "failed":
        raise RunFailedError(f"run {run_id} failed: {run.error}")
    cfg = _config(run)
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
    trend = read_frame(
        session,
        f"SELECT {', '.join(TREND_COLUMNS)} FROM run_trend WHERE run_id = :run_id "
        "ORDER BY level, product, event, period_end",
        {"run_id": run_id},
        dtypes={"product": "str", "event": "str", "level": "str"},
    )
    if not trend.empty:
        frames = []
        for level, table in trend.groupby("level", sort=True):
            table = table.drop(columns=["ebgm", "eb05", "eb95"]).reset_index(drop=True)
            prior = _prior(run, analysis_key(str(level), False))
            if prior is not None:
                table = _ebgm(table, MGPS.from_hyperparameters(prior))
            else:
                for col in ("ebgm", "eb05", "eb95"):
                    table[col] = np.nan
            frames.append(table)
        trend = pd.concat(frames, ignore_index=True)
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
    _record_timing(run, "finalise", time.perf_counter() - t0)
    run.status = "succeeded"
    run.finished_at = utcnow()
    session.flush()
    return {"run_id": run_id, "status": run.status, "pairs": run.n_pairs}


def execute_run(session: Session, run_id: int) -> Run:
    """Every stage of a run in this process, in order (the caller commits). Used by tests and scripts."""
    build_counts(session, run_id)
    fit_prior(session, run_id)
    for shard in range(get_run(session, run_id).shards):
        compute_shard(session, run_id, shard)
    finalise_run(session, run_id)
    return get_run(session, run_id)


def results_frame(session: Session, run_id: int) -> pd.DataFrame:
    """A run's results, one row per (level, stratified, product, event), in a stable order."""
    cols = [
        "level",
        "stratified",
        "product",
        "event",
        "n",
        "expected",
        *MEASURE_COLUMNS,
        "n_serious",
        "n_deaths",
    ]
    frame = read_frame(
        session,
        f"SELECT {', '.join(cols)} FROM run_results WHERE run_id = :run_id "
        "ORDER BY level, stratified, product, event",
        {"run_id": run_id},
        dtypes={"product": "str", "event": "str", "level": "str"},
    )
    frame["stratified"] = frame["stratified"].map(_as_bool).astype(bool)
    return frame


def run_summary(run: Run) -> dict[str, Any]:
    """The JSON form of a run (``pv runs list|show``)."""

    def iso(v: dt.date | dt.datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": run.id,
        "status": run.status,
        "as_of": iso(run.as_of),
        "scope": run.scope,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "cases": run.n_cases,
        "pairs": run.n_pairs,
        "config_hash": run.config_hash,
        "code_version": run.code_version,
        "shards": run.shards,
        "hyperparameters": run.hyperparameters,
        "loglik": run.loglik,
        "timings": run.timings,
        "parameters": run.parameters,
        "error": run.error,
    }
