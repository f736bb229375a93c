"""The true reporting ratio of every product-event pair of a simulated data set (``truth_ratios.csv``).

For a product P and an event E (a PT, or an event group of config/event_groups.yaml: a report has the group when
it has any of its PTs) the *true reporting ratio* over the simulated quarters is

    ratio = P(E | the report names P as suspect, PS or SS) / P(E | any report)

the quantity that disproportionality estimates (docs/simulation.md). It follows from the generator's profiles,
multipliers and injections, but the mixture over a report's drugs (0-3 co-reported drugs drawn from hundreds of
products) has no closed form, so it is computed by *conditional expectation over sampled reports*: for a large
sample of initial reports per quarter (``sample_per_quarter``, default 100,000, drawn by the generator itself
with :meth:`~pv.simulate.faers.QuarterGenerator.draw_core` on a random stream of its own) the drugs, roles,
tracked events and number of profile draws are sampled as in the data, and the probability that each PT (and
each group) is on the report *given those draws* is computed exactly:

* a tracked event's PT: ``p_k * w`` (its controlled rate on that report times the PT's weight in the event);
* a profile PT j, drawn ``m`` times (with replacement, duplicates dropped) from the mixture ``q`` of the drugs'
  profiles (75 % the primary suspect's when there are other drugs, the rest shared equally among them):
  ``1 - (1 - q_j) ** m``;
* a group G: ``1 - (1 - Q_G) ** m * prod_k (1 - p_k * w_k(G))``, with ``Q_G`` the mixture's mass on G and
  ``w_k(G)`` the weight of tracked event k's PTs in G. This treats ``m`` (one less per tracked event drawn) as
  independent of the tracked draws, an error of the order of ``p_k * Q_G`` (below 0.1 % of the rate).

Averaging these probabilities instead of counting sampled PTs removes the sampling noise of the reactions; what
is left is the noise of the drug mixture, a relative standard error well under 1 % for the CAR-T products.
Follow-up versions (which add one PT from the primary suspect's profile to about 12 % of cases) and deletions are
not modelled: the ratio is that of the initial reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products, normalise_pt
from pv.periods import Quarter, parse_quarters
from pv.simulate.faers import QuarterGenerator, SimulationConfig, Universe, write_quarters

RATIOS_FILE = "truth_ratios.csv"
RATIO_COLUMNS = ["product", "event", "level", "true_ratio", "product_rate", "pooled_rate", "expected_cases"]
_CHUNK = 20_000
_STREAM = 7919  # the sample's random stream: [seed, quarter index, _STREAM], apart from the data's


def write_quarters_with_ratios(
    out_dir: str | Path,
    quarters: str | Sequence[Quarter],
    reports_per_quarter: int,
    seed: int,
    *,
    config: SimulationConfig | None = None,
    products: ProductDictionary | None = None,
    groups: EventGroups | None = None,
    progress: Callable[[str], None] | None = print,
    ratio_sample: int = 100_000,
) -> list[Path]:
    """:func:`pv.simulate.faers.write_quarters`, then ``truth_ratios.csv``: the true reporting ratio of every
    product-event pair (:func:`true_ratios`, from ``ratio_sample`` sampled reports per quarter), noted in
    truth.json (``ratios``). Returns the zips."""
    paths = write_quarters(out_dir, quarters, reports_per_quarter, seed, config=config, products=products,
                           groups=groups, progress=progress)
    out = Path(out_dir)
    ratios = true_ratios(quarters, seed, reports_per_quarter=reports_per_quarter, config=config, products=products,
                         groups=groups, sample_per_quarter=ratio_sample)
    ratios.to_csv(out / RATIOS_FILE, index=False, float_format="%.6g", lineterminator="\n")
    meta = out / "truth.json"
    data = json.loads(meta.read_text(encoding="utf-8"))
    data["ratios"] = {"file": RATIOS_FILE, "sample_per_quarter": ratio_sample, "pairs": len(ratios)}
    meta.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def true_ratios(
    quarters: str | Sequence[Quarter],
    seed: int,
    *,
    reports_per_quarter: int | None = None,
    config: SimulationConfig | None = None,
    products: ProductDictionary | None = None,
    groups: EventGroups | None = None,
    sample_per_quarter: int = 100_000,
) -> pd.DataFrame:
    """One row per product x event (PT and group) that can occur: ``RATIO_COLUMNS``.

    ``product_rate``: P(event | product named as suspect); ``pooled_rate``: P(event | any report);
    ``expected_cases``: the expected number of initial reports naming the product with the event over the
    quarters at ``reports_per_quarter`` (NaN without it). PTs are spelled as the simulator writes them.
    """
    qs = parse_quarters(quarters) if isinstance(quarters, str) else sorted(set(quarters))
    cfg = config or SimulationConfig()
    groups = groups or default_event_groups()
    u = Universe(seed, cfg, products or default_products(), groups)
    gen = QuarterGenerator(u)
    profiles = np.diff(u.cum_profiles, axis=1, prepend=0.0)
    profiles[:, -1] = np.clip(profiles[:, -1] - 1e-9, 0.0, None)
    n_pt = u.n_pts
    group_names = sorted(groups.groups)
    member = np.zeros((n_pt, len(group_names)))  # PT x group membership
    for g, name in enumerate(group_names):
        for key in groups.groups[name]:
            if key in u.pt_index:
                member[u.pt_index[key], g] = 1.0
    tracked_pts = [ids for ids in u.tracked_pt_ids]
    tracked_w = [np.asarray(t.weights) for t in u.tracked]

    n_events = n_pt + len(group_names)
    num = np.zeros((u.n_products, n_events))
    named = np.zeros(u.n_products)
    pooled = np.zeros(n_events)
    total = 0
    for q in qs:
        rng = np.random.default_rng([seed, q.index, _STREAM])
        left = sample_per_quarter
        while left > 0:
            m = min(_CHUNK, left)
            left -= m
            core = gen.draw_core(q, m, rng)
            probs = _event_probabilities(core, profiles, member, tracked_pts, tracked_w)
            suspect = (core.drugmat >= 0) & (core.rolemat >= 0) & (core.rolemat <= 1)
            rows, cols = np.nonzero(suspect)
            s = sparse.csr_matrix((np.ones(len(rows)), (rows, core.drugmat[rows, cols])),
                                  shape=(m, u.n_products))
            num += np.asarray(s.T @ probs)
            named += np.asarray(s.sum(axis=0)).ravel()
            pooled += probs.sum(axis=0)
            total += m
    events = [str(pt) for pt in u.pts] + group_names
    levels = ["pt"] * n_pt + ["group"] * len(group_names)
    pooled_rate = pooled / total
    with np.errstate(divide="ignore", invalid="ignore"):
        product_rate = num / named[:, None]
        ratio = product_rate / pooled_rate[None, :]
    scale = (reports_per_quarter / sample_per_quarter) if reports_per_quarter else np.nan
    pi, ei = np.nonzero((num > 0) & (named[:, None] > 0))
    return pd.DataFrame({
        "product": u.names[pi].astype(str),
        "event": np.asarray(events, dtype=object)[ei],
        "level": np.asarray(levels, dtype=object)[ei],
        "true_ratio": ratio[pi, ei],
        "product_rate": product_rate[pi, ei],
        "pooled_rate": pooled_rate[ei],
        "expected_cases": num[pi, ei] * scale,
    }, columns=RATIO_COLUMNS)


def _event_probabilities(core, profiles: np.ndarray, member: np.ndarray,  # type: ignore[no-untyped-def]
                         tracked_pts: list[np.ndarray], tracked_w: list[np.ndarray]) -> np.ndarray:
    """Reports x (PTs, groups): the probability that each report has the event, given its sampled draws."""
    m = len(core.ps)
    nd = core.n_drugs.astype(float)
    mix = np.zeros((m, profiles.shape[1]))
    for c in range(core.drugmat.shape[1]):
        present = core.drugmat[:, c] >= 0
        if c == 0:
            w = np.where(nd > 1, 0.75, 1.0)
        else:
            w = np.where(present & (nd > 1), 0.25 / np.maximum(nd - 1, 1), 0.0)
        idx = np.where(present, core.drugmat[:, c], 0)
        mix += w[:, None] * profiles[idx]
    draws = core.n_prof.astype(float)[:, None]
    p_pt = 1.0 - (1.0 - np.clip(mix, 0.0, 1.0)) ** draws
    for k, ids in enumerate(tracked_pts):  # tracked PTs are not in any profile
        p_pt[:, ids] = np.clip(core.p[:, k], 0.0, 1.0)[:, None] * tracked_w[k][None, :]
    mass = np.clip(mix @ member, 0.0, 1.0)  # the profile mixture's mass on each group
    none = (1.0 - mass) ** draws
    for k, ids in enumerate(tracked_pts):  # no PT of the group drawn for tracked event k
        share = tracked_w[k] @ member[ids]  # the weight of event k's PTs in each group
        none *= 1.0 - np.clip(core.p[:, k], 0.0, 1.0)[:, None] * share[None, :]
    return np.hstack([p_pt, 1.0 - none])


def ratio_lookup(ratios: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """(product key, event key, level) -> true ratio, with the keys the registry uses: products case-folded,
    PTs normalised (``normalise_pt``), groups by name."""
    out: dict[tuple[str, str, str], float] = {}
    for product, event, level, ratio in ratios[["product", "event", "level", "true_ratio"]].itertuples(index=False):
        key = normalise_pt(event) if level == "pt" else str(event)
        out[(str(product).casefold(), key, str(level))] = float(ratio)
    return out


__all__ = ["RATIO_COLUMNS", "ratio_lookup", "true_ratios"]
