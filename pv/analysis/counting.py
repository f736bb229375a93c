"""Counting: the count tables and the trend of a run, from the case-level data in force at its as-of date.

Pure computation on the frames of :func:`pv.analysis.extract.extract` and the run's :class:`RunSnapshot`: no
database access. Case-level rows (one per case, product and event, at PT and event-group level) are built by a
vectorised join of each case's drugs and events; :func:`pv.stats.count_table` turns them into the 2x2 tables
(unstratified and stratified as configured); each pair is tagged with its product's shard.
"""

from __future__ import annotations

import dataclasses
import time
import zlib

import numpy as np
import pandas as pd

from pv.analysis.extract import CaseData, add_strata
from pv.analysis.results import TREND_COLUMNS
from pv.analysis.snapshot import RunSnapshot
from pv.normalise import normalise_pt
from pv.periods import period_ends
from pv.stats import count_table, event_group_rows, measures

_NO_EVENT = "\x00none"  # placeholder event of cases without any group event (keeps group-level marginals right)


def shard_of(products: pd.Series, shards: int) -> np.ndarray:
    """Stable shard number of each product (crc32 of its UTF-8 name, modulo the shard count)."""
    uniq = pd.unique(products)
    table = {p: zlib.crc32(str(p).encode("utf-8")) % shards for p in uniq}
    return products.map(table).to_numpy(dtype="int64")


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


def case_rows(data: CaseData, snap: RunSnapshot) -> dict[str, pd.DataFrame]:
    """Case-level rows (vid, product, event, strata..., serious, died) per level, one per case, product and
    event; categorical columns throughout so that FAERS-scale row counts stay small in memory."""
    cfg = snap.analysis
    cases = add_strata(data.cases, cfg.age_bands)
    if cfg.background.kind == "indication":
        wanted = {normalise_pt(t) for t in cfg.background.indications}
        ind = data.indications if data.indications is not None else pd.DataFrame(columns=["vid", "pt"])
        cases = cases[cases["vid"].isin(ind.loc[ind["pt"].isin(wanted), "vid"].unique())]
    elif cfg.background.kind == "product_class":
        wanted = set(snap.background_products)
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
        grp = event_group_rows(reactions, snap.event_groups, event_col="pt", keep_other=False, distinct=True)
        grp = grp.rename(columns={"pt": "event"})
        without = pd.DataFrame({"vid": np.setdiff1d(universe, grp["vid"].unique()), "event": _NO_EVENT})
        events = pd.concat([grp.astype({"event": str}), without], ignore_index=True)
        events["event"] = events["event"].astype("category")
        out["group"] = rows_of(events.sort_values(["vid", "event"], kind="stable").reset_index(drop=True))
    return out


def serious_counts(rows: pd.DataFrame) -> pd.DataFrame:
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


def count_tables(data: CaseData, snap: RunSnapshot) -> CountTables:
    """The count tables and the trend of the data in force at ``data.as_of`` (timings of each step included)."""
    cfg = snap.analysis
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rows_by_level = case_rows(data, snap)
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
        serious = serious_counts(rows) if not stratified else None
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
    trend = compute_trend(data, rows_by_level, snap)
    timings["trend"] = time.perf_counter() - t0
    n_cases = int(len(np.unique(np.concatenate([r["vid"].to_numpy() for r in rows_by_level.values()]))))
    return CountTables(tables=tables, trend=trend, n_cases=n_cases, n_rows=n_rows, timings=timings)


def compute_trend(data: CaseData, rows_by_level: dict[str, pd.DataFrame], snap: RunSnapshot) -> pd.DataFrame:
    """Cumulative counts and measures (no EBGM yet) at each quarter end, for the trend's pairs of interest.

    Each case enters at its first receipt (FAERS init_fda_dt) with the content of its version in force at the
    run's as-of date, so the last point equals the run's own unstratified figures.
    """
    cfg = snap.analysis
    periods = period_ends(cfg.trend.since, data.as_of)
    edges = np.array(periods, dtype="datetime64[D]")
    products = set(snap.trend_products)
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
            events = set(snap.event_groups)
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
        return pd.DataFrame(columns=list(TREND_COLUMNS))
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
        list(TREND_COLUMNS)
    ]
