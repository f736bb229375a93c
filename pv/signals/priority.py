"""The priority score of a signal (pure computation; docs/signals.md gives the formula).

priority = 100 * (w_s S + w_z Z + w_n N + w_t T) / (w_s + w_z + w_n + w_t), every component in [0, 1]:

- S strength: max(log2 EB05, IC025) / log2(strength_cap), clipped (EB05 and 2^IC025 share the ratio scale);
- Z seriousness: (share of the pair's cases that are serious + share that died) / 2;
- N novelty: 0.5 if the event is unlabelled in some judged jurisdiction, plus
  0.5 * max(0, 1 - d / novelty_days) where d is the number of days since first detection;
- T trend: least-squares slope of log2 EB05 per run over the last ``trend_runs`` runs / trend_cap, clipped
  (a rising signal scores, a flat or falling one does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pv.signals.rules import PriorityConfig
from pv.stats.numbers import optional_float


@dataclass(frozen=True)
class Priority:
    score: float
    strength: float
    seriousness: float
    novelty: float
    trend: float


def strength_component(eb05: float | None, ic025: float | None, cap: float) -> float:
    vals = []
    e = optional_float(eb05)
    if e is not None and e > 0:
        vals.append(math.log2(e))
    i = optional_float(ic025)
    if i is not None:
        vals.append(i)
    if not vals:
        return 0.0
    return float(min(1.0, max(0.0, max(vals) / math.log2(cap))))


def seriousness_component(n: float | None, n_serious: float | None, n_deaths: float | None) -> float:
    total = optional_float(n)
    if not total or total <= 0:
        return 0.0
    serious = min(1.0, max(0.0, (optional_float(n_serious) or 0.0) / total))
    deaths = min(1.0, max(0.0, (optional_float(n_deaths) or 0.0) / total))
    return (serious + deaths) / 2.0


def novelty_component(unlabelled: bool, days_since_first: int, novelty_days: int) -> float:
    recency = max(0.0, 1.0 - max(0, days_since_first) / novelty_days)
    return 0.5 * float(bool(unlabelled)) + 0.5 * recency


def trend_component(eb05_history: Sequence[float | None], runs: int, cap: float) -> float:
    """Slope of log2(EB05) per run over the last ``runs`` values (oldest first); missing values skipped."""
    recent = list(eb05_history)[-runs:]
    pts = []
    for i, raw in enumerate(recent):
        v = optional_float(raw)
        if v is not None and v > 0:
            pts.append((i, math.log2(v)))
    if len(pts) < 2:
        return 0.0
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    slope = float(np.polyfit(x, y, 1)[0])
    return float(min(1.0, max(0.0, slope / cap)))


def priority_score(
    *,
    eb05: float | None,
    ic025: float | None,
    n: float | None,
    n_serious: float | None,
    n_deaths: float | None,
    unlabelled: bool,
    days_since_first: int,
    eb05_history: Sequence[float | None],
    config: PriorityConfig,
) -> Priority:
    s = strength_component(eb05, ic025, config.strength_cap)
    z = seriousness_component(n, n_serious, n_deaths)
    nov = novelty_component(unlabelled, days_since_first, config.novelty_days)
    t = trend_component(eb05_history, config.trend_runs, config.trend_cap)
    w = config.weights
    total = sum(w.values())
    weighted = (
        w.get("strength", 0) * s + w.get("seriousness", 0) * z + w.get("novelty", 0) * nov
        + w.get("trend", 0) * t
    )
    score = 100.0 * weighted / total
    return Priority(score=round(score, 4), strength=s, seriousness=z, novelty=nov, trend=t)
