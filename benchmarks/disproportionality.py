"""Disproportionality at FAERS scale: about 20 million case-level rows, 5 million product x event pairs.

Synthetic, generated here with a fixed seed: heavy-tailed (Zipf-like) product and event popularity, 1-8
products and 1-12 events per case (every product x event of a case is a row, as in the CAERS layout), a sex
stratum per case, and a log-normal reporting ratio per product x event pair (events depend on the case's
products), so the table holds real signals next to noise and the MGPS prior has an interior optimum.

Stages timed: count table (distinct cases per pair, marginals, expected), PRR/ROR/IC, the exact MGPS fit on
all pairs (the starts explored on a squashed table first), EBGM/EB05/EB95 scoring. Target: all stages <= 60 s
and peak memory <= 8 GB on the 2-core machine.
Each stage prints its wall seconds and, in brackets, the CPU seconds of the process (all threads), which say
more than the wall time on a machine other jobs share. Run:
``.venv/bin/python benchmarks/disproportionality.py [--strata] [--cases N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as pv and the workers it starts run (set before NumPy loads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import special  # noqa: E402

from pv.stats import MGPS, count_table, measures  # noqa: E402


def _pair_z(p: np.ndarray, e: np.ndarray) -> np.ndarray:
    """A fixed standard-normal score per product x event pair (hash-based, so no table of all pairs)."""
    h = (p.astype(np.uint64) * np.uint64(2654435761) + e.astype(np.uint64) * np.uint64(40503)
         + np.uint64(12345)) % np.uint64(2**32)
    h = (h * np.uint64(2246822519)) % np.uint64(2**32)
    return special.ndtri((h.astype(np.float64) + 0.5) / 2**32)


def generate(n_cases: int, seed: int = 20240, sigma: float = 1.5) -> pd.DataFrame:
    """Case-level rows: Zipf-like products and events; log-normal (sd sigma) reporting ratio per pair."""
    rng = np.random.default_rng(seed)
    n_products, n_events = 40_000, 10_000
    p_w = 1.0 / (np.arange(n_products) + 20.0) ** 1.3
    e_w = 1.0 / (np.arange(n_events) + 8.0) ** 1.25
    p_cdf = np.cumsum(p_w) / p_w.sum()
    e_cdf = np.cumsum(e_w) / e_w.sum()
    k = np.minimum(1 + rng.poisson(0.9, n_cases), 8)
    m = np.minimum(1 + rng.poisson(1.4, n_cases), 12)
    prod_start = np.r_[0, np.cumsum(k)[:-1]]
    ev_start = np.r_[0, np.cumsum(m)[:-1]]
    prods = np.searchsorted(p_cdf, rng.random(int(k.sum())))
    evs = np.searchsorted(e_cdf, rng.random(int(m.sum())))
    # events depend on the case's first product: accept a drawn event with probability proportional to the
    # pair's log-normal reporting ratio (rejection sampling, a few rounds)
    first = np.repeat(prods[prod_start], m)
    todo = np.arange(len(evs))
    for _ in range(6):
        accept = rng.random(len(todo)) < np.minimum(1.0, np.exp(sigma * _pair_z(first[todo], evs[todo])
                                                                 - 2.0 * sigma))
        todo = todo[~accept]
        evs[todo] = np.searchsorted(e_cdf, rng.random(len(todo)))
    r = k * m
    row_start = np.r_[0, np.cumsum(r)[:-1]]
    case = np.repeat(np.arange(n_cases, dtype=np.int64), r)
    j = np.arange(int(r.sum()), dtype=np.int64) - np.repeat(row_start, r)
    mc = m[case]
    prod_codes = prods[prod_start[case] + j // mc]
    ev_codes = evs[ev_start[case] + j % mc]
    sex = rng.choice(3, n_cases, p=[0.55, 0.40, 0.05])[case]
    return pd.DataFrame({
        "id": case + 10_000_000,
        "product": pd.Categorical.from_codes(prod_codes, categories=[f"P{i:06d}" for i in range(n_products)]),
        "event": pd.Categorical.from_codes(ev_codes, categories=[f"E{i:05d}" for i in range(n_events)]),
        "sex": pd.Categorical.from_codes(sex, categories=["F", "M", "U"]),
    })


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=4_700_000)
    ap.add_argument("--strata", action="store_true", help="stratify the expected counts by sex")
    ap.add_argument("--seed", type=int, default=20240)
    args = ap.parse_args(argv)

    t = time.perf_counter()
    rows = generate(args.cases, args.seed)
    print(f"generate        {time.perf_counter() - t:7.2f} s  rows={len(rows):,} cases={args.cases:,} "
          f"(not counted in the total)", flush=True)
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}

    t, c = time.perf_counter(), time.process_time()
    counts = count_table(rows, strata=["sex"] if args.strata else None)
    stages["count table"], cpu["count table"] = time.perf_counter() - t, time.process_time() - c
    del rows
    print(f"count table     {stages['count table']:7.2f} s ({cpu['count table']:.2f} CPU)  pairs={len(counts):,}",
          flush=True)

    t, c = time.perf_counter(), time.process_time()
    table = measures(counts)
    stages["prr/ror/ic"], cpu["prr/ror/ic"] = time.perf_counter() - t, time.process_time() - c
    print(f"prr/ror/ic      {stages['prr/ror/ic']:7.2f} s ({cpu['prr/ror/ic']:.2f} CPU)", flush=True)

    t, c = time.perf_counter(), time.process_time()
    model = MGPS().fit(counts)
    stages["mgps fit"], cpu["mgps fit"] = time.perf_counter() - t, time.process_time() - c
    h = model.hyperparameters_
    print(f"mgps fit        {stages['mgps fit']:7.2f} s ({cpu['mgps fit']:.2f} CPU)  loglik={model.loglik_:.4f} "
          f"iter={model.n_iter_} "
          f"alpha1={h.alpha1:.5g} beta1={h.beta1:.5g} alpha2={h.alpha2:.5g} beta2={h.beta2:.5g} p={h.p:.5g} "
          f"converged={model.converged_} at_bound={model.at_bound_}", flush=True)
    print(model.summary[["start", "stage", "points", "alpha1", "beta1", "alpha2", "beta2", "p", "loglik",
                         "converged", "n_iter"]].to_string(index=False), flush=True)

    t, c = time.perf_counter(), time.process_time()
    table = model.score(table)
    stages["ebgm/eb05/eb95"], cpu["ebgm/eb05/eb95"] = time.perf_counter() - t, time.process_time() - c
    print(f"ebgm/eb05/eb95  {stages['ebgm/eb05/eb95']:7.2f} s ({cpu['ebgm/eb05/eb95']:.2f} CPU)", flush=True)

    total = sum(stages.values())
    signals = int((table["eb05"] >= 2).sum())
    print(f"total           {total:7.2f} s ({sum(cpu.values()):.2f} CPU)  (target <= 60 s)  pairs={len(table):,} "
          f"eb05>=2: {signals:,}")
    print(f"peak memory     {peak_gb():7.2f} GB (ru_maxrss, includes generation; target <= 8 GB)")
    print(f"load average    {os.getloadavg()[0]:7.1f} on {os.cpu_count()} CPUs")
    return 0 if total <= 60 and peak_gb() <= 8 else 1


if __name__ == "__main__":
    sys.exit(main())
