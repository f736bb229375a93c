"""How long the signal registry takes to evaluate a run of realistic size (prints figures).

A run with every dictionary product x 2,000 PTs + 10 groups (about 22,000 pairs x 2 result sets), 5% of pairs
meeting the rules, evaluated 4 times (quarters) on a scratch SQLite database, or on PostgreSQL when
PV_BENCH_DATABASE_URL is set (a database you can write to; the tables are created by migration).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pv import db  # noqa: E402
from pv.normalise import default_event_groups, default_products  # noqa: E402
from pv.signals.evaluation import evaluate_run  # noqa: E402
from pv.signals.rules import MEASURES  # noqa: E402


def make_results(rng: np.random.Generator, products: list[str], n_pt: int, groups: list[str],
                 hit_rate: float) -> pd.DataFrame:
    events = [(f"pt {i}", "pt") for i in range(n_pt)] + [(g, "group") for g in groups]
    rows = [(p, e, lvl) for p in products for e, lvl in events]
    frame = pd.DataFrame(rows, columns=["product", "event", "level"])
    k = len(frame)
    hit = rng.random(k) < hit_rate
    n = rng.poisson(3, k) + 1
    eb05 = np.where(hit, rng.uniform(2, 6, k), rng.uniform(0.1, 1.5, k))
    frame["n"] = np.where(hit, n + 3, n)
    frame["expected"] = frame["n"] / (eb05 * 1.3)
    frame["prr"] = eb05 * 1.2
    frame["prr_chi2"] = np.where(hit, 10.0, 0.5)
    frame["ror"] = eb05 * 1.3
    frame["ror_lower"] = np.where(hit, eb05 * 0.8, 0.5)
    frame["ror_upper"] = eb05 * 3
    frame["ic"] = np.log2(eb05 * 1.3)
    frame["ic025"] = np.where(hit, np.log2(eb05) - 0.2, -1.0)
    frame["ic975"] = frame["ic"] + 1
    frame["ebgm"] = eb05 * 1.3
    frame["eb05"] = eb05
    frame["eb95"] = eb05 * 2
    frame["n_serious"] = (frame["n"] * 0.6).round()
    frame["n_deaths"] = (frame["n"] * 0.1).round()
    strat = frame.copy()
    frame["stratified"] = False
    strat["stratified"] = True
    assert set(MEASURES) <= set(frame.columns)
    return pd.concat([frame, strat], ignore_index=True)


def main() -> None:
    rng = np.random.default_rng(7)
    products = sorted(default_products().products)
    groups = sorted(default_event_groups().groups)
    results = make_results(rng, products, 2000, groups, 0.05)
    url = os.environ.get("PV_BENCH_DATABASE_URL")
    tmp = None
    if not url:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{tmp.name}/bench.sqlite3"
    session = sessionmaker(bind=db.get_engine(url), expire_on_commit=False)()
    print(f"backend {session.get_bind().dialect.name}; {len(results):,} result rows "
          f"({len(results) // 2:,} pairs x 2 result sets)")
    quarters = [dt.date(2023, 3, 31), dt.date(2023, 6, 30), dt.date(2023, 9, 30), dt.date(2023, 12, 31)]
    for i, as_of in enumerate(quarters, start=1):
        t0 = time.perf_counter()
        changes = evaluate_run(session, run_id=i, as_of=as_of, results=results)
        session.commit()
        dt_s = time.perf_counter() - t0
        kinds = pd.Series([c.kind for c in changes]).value_counts().to_dict()
        print(f"run {i} as of {as_of}: {dt_s:.2f} s, changes {kinds}")
    session.close()
    db.dispose_engines()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
