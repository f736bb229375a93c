"""Speed of the time-to-event estimators on simulated CAR-T cohorts (prints figures; no pass/fail).

Run: .venv/bin/python benchmarks/incidence.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pv.simulate.cohort import simulate_cohort
from pv.stats.cuminc import CumulativeIncidence
from pv.stats.finegray import FineGray


def _extract(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    inf = pd.to_datetime(frame.infusion_date)
    ev = pd.to_datetime(frame.other_malignancy_date)
    death = pd.to_datetime(frame.death_date)
    end = ev.fillna(death).fillna(pd.to_datetime(frame.last_followup_date))
    kind = np.where(ev.notna(), "smn", np.where(death.notna(), "death", "censored"))
    x = pd.DataFrame({"age": frame.age.astype(float), "male": (frame.sex == "M").astype(float)})
    return (end - inf).dt.days.to_numpy(float), kind, frame["product"].to_numpy(object), x


def main() -> None:
    for n in (2_000, 20_000, 100_000):
        t, e, g, _ = _extract(simulate_cohort(n, seed=1))
        start = time.perf_counter()
        CumulativeIncidence(censored="censored").fit(t, e)
        one = time.perf_counter() - start
        start = time.perf_counter()
        ci = CumulativeIncidence(censored="censored").fit(t, e, g)
        both = time.perf_counter() - start
        print(f"n={n:>7}: CIF one group {one * 1000:8.1f} ms; 6 groups + Gray's test {both * 1000:8.1f} ms "
              f"({len(ci.curves_)} steps)")
    for n in (1_000, 5_000):
        t, e, _, x = _extract(simulate_cohort(n, seed=2))
        start = time.perf_counter()
        fg = FineGray(event_of_interest="smn", censored="censored").fit(t, e, x)
        print(f"n={n:>7}: Fine-Gray (2 covariates, sandwich SE) {(time.perf_counter() - start) * 1000:8.1f} ms, "
              f"{fg.n_iter_} iterations")


if __name__ == "__main__":
    main()
