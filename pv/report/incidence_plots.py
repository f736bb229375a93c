"""Cumulative incidence curves with pointwise interval bands, by group (matplotlib, Agg backend): PNG or
SVG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pv.errors import InputError  # noqa: E402
from pv.stats.cuminc import CumulativeIncidence  # noqa: E402

FORMATS = {".png": "png", ".svg": "svg"}


def plot_cumulative_incidence(
    ci: CumulativeIncidence,
    path: str | Path,
    events: Sequence[Any] | None = None,
    title: str | None = None,
    time_label: str = "Time",
    bands: bool = True,
) -> Path:
    """Draw the step curves of ``ci`` (every group x the given events) with their interval bands to ``path``.

    The format follows the suffix (.png or .svg). Returns the path written.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"plot file must end in .png or .svg, not {path.suffix or '(none)'!r}", file=str(path)
        )
    summary = ci.summary
    chosen = list(ci.events_ if events is None else events)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    k = 0
    for g in ci.groups_:
        for e in chosen:
            part = summary[(summary.group == g) & (summary.event == e)].sort_values("time")
            if part.empty:
                continue
            end = ci.max_time_[g]
            x = np.append(part.time.to_numpy(float), end)
            y = np.append(part.estimate.to_numpy(float), part.estimate.iloc[-1])
            lo = np.append(part.lower.to_numpy(float), part.lower.iloc[-1])
            hi = np.append(part.upper.to_numpy(float), part.upper.iloc[-1])
            colour = colours[k % len(colours)]
            label = str(e) if len(ci.groups_) == 1 else f"{g}: {e}" if len(chosen) > 1 else str(g)
            ax.step(x, y, where="post", color=colour, label=f"{label} (n={ci.n_[g]})", linewidth=1.6)
            if bands:
                ax.fill_between(x, lo, hi, step="post", color=colour, alpha=0.18, linewidth=0)
            k += 1
    ax.set_xlabel(time_label)
    ax.set_ylabel("Cumulative incidence")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    if k:
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    level = int(round((1 - ci.alpha) * 100))
    ax.set_title(title or f"Cumulative incidence ({level}% {ci.conf_type} bands)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt)
    plt.close(fig)
    return path
