"""Figures of the weekly report (matplotlib, Agg backend), returned as PNG bytes for embedding."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 110


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def forest_plot(forest: pd.DataFrame, *, measure: str, title: str, threshold: float | None = None) -> bytes:
    """Point estimate and interval per product on a log axis; products sorted by estimate."""
    df = forest.dropna(subset=["estimate"]).sort_values("estimate")
    height = max(1.8, 0.42 * len(df) + 1.0)
    fig, ax = plt.subplots(figsize=(7.0, height))
    if df.empty:
        ax.text(0.5, 0.5, "no reports for this event", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        y = np.arange(len(df))
        est = df["estimate"].to_numpy(float)
        lo = np.clip(df["lower"].to_numpy(float), 1e-3, None)
        hi = df["upper"].to_numpy(float)
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="#1f4e79", ecolor="#7f9fbf", capsize=3)
        ax.set_yticks(y, [f"{p} (n={int(n)})" for p, n in zip(df["product"], df["n"], strict=True)])
        ax.set_xscale("log")
        lo_x, hi_x = float(np.nanmin(lo)), float(np.nanmax(hi))
        ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
                 if lo_x / 1.5 <= t <= hi_x * 1.5]
        ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axvline(1.0, color="grey", lw=0.8)
        if threshold is not None:
            ax.axvline(threshold, color="#c0392b", lw=0.8, ls="--", label=f"threshold {threshold:g}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(measure)
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def trend_plot(trend: pd.DataFrame, *, measure: str, title: str, threshold: float | None = None) -> bytes:
    """Cumulative measure by quarter end, one line per product."""
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    if trend.empty:
        ax.text(0.5, 0.5, "no trend data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ends = pd.to_datetime(trend["quarter"])
        labels = sorted(set(zip(ends, ends.dt.year.astype(str) + "Q" + ends.dt.quarter.astype(str), strict=True)))
        position = {end: i for i, (end, _) in enumerate(labels)}
        frame = trend.assign(_x=ends.map(position))
        for product, grp in frame.sort_values("_x").groupby("product", sort=True):
            ax.plot(grp["_x"], grp["value"], marker="o", ms=3, label=str(product))
        ax.set_xticks(range(len(labels)), [label for _, label in labels])
        if threshold is not None:
            ax.axhline(threshold, color="#c0392b", lw=0.8, ls="--")
        ax.set_ylabel(measure)
        ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_title(title, fontsize=10)
    return to_png(fig)


def cif_plot(cif: pd.DataFrame, *, title: str, time_unit: str = "years") -> bytes:
    """Cumulative incidence step curves with 95% bands, one per group."""
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    for group, grp in cif.sort_values("time").groupby("group", sort=True):
        line = ax.step(grp["time"], grp["estimate"], where="post", label=str(group))[0]
        ax.fill_between(grp["time"], grp["lower"], grp["upper"], step="post", alpha=0.2,
                        color=line.get_color())
    ax.set_xlabel(f"time since infusion ({time_unit})")
    ax.set_ylabel("cumulative incidence")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return to_png(fig)
