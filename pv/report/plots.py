"""Figures of the weekly report (matplotlib, Agg backend), returned as PNG bytes for embedding.

Every figure that shows products draws each in the same colour (:func:`product_colours`: by the product's place
in the product dictionary, so the colours hold across figures and reports), with its legend outside the axes.
The ``*_figure`` functions return the matplotlib figure (for tests); the others its PNG.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 110
#: Distinct colours, one per product (Tableau 10, then a second set for more than ten products).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
OTHER = "#444444"  # a product outside the dictionary's list


def product_colours(products: tuple[str, ...] | list[str]) -> dict[str, str]:
    """One colour per product, by its place in ``products`` (the CAR-T products in dictionary order)."""
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(products)}


def _colour(colours: dict[str, str], product: str) -> str:
    return colours.get(product, OTHER)


def _legend_outside(ax: Axes, title: str | None = None) -> None:
    """The legend to the right of the axes, clear of the lines."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, title=title,
                  title_fontsize=7, borderaxespad=0.0)


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


def trend_figure(trend: pd.DataFrame, *, measure: str, title: str, threshold: float | None = None,
                 colours: dict[str, str] | None = None) -> Figure:
    """Cumulative measure by quarter end, one line per product in its colour."""
    colours = colours or {}
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
            ax.plot(grp["_x"], grp["value"], marker="o", ms=3, label=str(product),
                    color=_colour(colours, str(product)))
        ax.set_xticks(range(len(labels)), [label for _, label in labels])
        if threshold is not None:
            ax.axhline(threshold, color="#c0392b", lw=0.8, ls="--")
        ax.set_ylabel(measure)
        _legend_outside(ax)
    ax.set_title(title, fontsize=10)
    return fig


def trend_plot(trend: pd.DataFrame, *, measure: str, title: str, threshold: float | None = None,
               colours: dict[str, str] | None = None) -> bytes:
    return to_png(trend_figure(trend, measure=measure, title=title, threshold=threshold, colours=colours))


def _ticks(end: float) -> np.ndarray:
    """About six round tick positions from 0 to ``end``."""
    locator = ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=end >= 6)
    ticks = np.asarray(locator.tick_values(0.0, end), dtype=float)
    keep = (ticks >= 0) & (ticks <= end + 1e-9)
    return ticks[keep]


def at_risk(followup: pd.DataFrame, times: np.ndarray) -> dict[str, list[int]]:
    """Patients still followed (time to event, death or last follow-up at or after t) at each time, by group."""
    return {str(g): [int((grp["time"] >= t).sum()) for t in times]
            for g, grp in followup.groupby("group", sort=True)}


def cif_figure(cif: pd.DataFrame, *, title: str, time_unit: str = "years", followup: pd.DataFrame | None = None,
               window: float | None = None, colours: dict[str, str] | None = None) -> Figure:
    """Cumulative incidence step curves (steps after each event time) with 95% bands, one per group in its
    colour, each drawn to its group's end of follow-up (the last time in ``followup``), and the numbers at risk
    beneath. ``window``: the time shown (default: the longest follow-up)."""
    colours = colours or {}
    ends = ({str(g): float(t.max()) for g, t in followup.groupby("group")["time"]}
            if followup is not None and not followup.empty else {})
    fig = plt.figure(figsize=(8.0, 4.4))
    ax = fig.add_axes((0.16, 0.40, 0.56, 0.52))
    shown = []
    for group, grp in cif.sort_values("time").groupby("group", sort=True):
        g = str(group)
        x = grp["time"].to_numpy(float)
        y, lo, hi = (grp[c].to_numpy(float) for c in ("estimate", "lower", "upper"))
        end = ends.get(g, float(x[-1]))
        if end > x[-1]:  # flat from the last event to the end of follow-up
            x, y, lo, hi = (np.append(a, v) for a, v in ((x, end), (y, y[-1]), (lo, lo[-1]), (hi, hi[-1])))
        colour = _colour(colours, g)
        ax.step(x, y, where="post", color=colour, lw=1.5, label=g)
        ax.fill_between(x, np.nan_to_num(lo), np.nan_to_num(hi), step="post", alpha=0.10, color=colour, lw=0)
        shown.append(g)
    horizon = window or max(ends.values(), default=float(cif["time"].max()) if not cif.empty else 1.0)
    ax.set_xlim(0, horizon)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("cumulative incidence")
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=10)
    _legend_outside(ax)
    ticks = _ticks(horizon)
    ax.set_xticks(ticks)
    ax.set_xlabel(f"time since infusion ({time_unit})", fontsize=8)
    risk = at_risk(followup, ticks) if followup is not None else {}
    rows = [g for g in shown if g in risk]
    table = fig.add_axes((0.16, 0.02, 0.56, 0.25), sharex=ax)
    table.set_axis_off()
    table.text(-0.07, 1.02, "number at risk", transform=table.transAxes, ha="right", va="bottom", fontsize=6.5,
               style="italic")
    for i, g in enumerate(rows):
        yy = 1.0 - (i + 0.5) / max(len(rows), 1)
        table.text(-0.07, yy, g.split()[0], transform=table.transAxes, ha="right", va="center", fontsize=6,
                   color=_colour(colours, g))  # the INN's first word names the product uniquely
        for t, n in zip(ticks, risk[g], strict=True):
            table.text(t, yy, str(n), ha="center", va="center", fontsize=6, color=_colour(colours, g))
    table.set_ylim(0, 1)
    return fig


def cif_plot(cif: pd.DataFrame, *, title: str, time_unit: str = "years", followup: pd.DataFrame | None = None,
             window: float | None = None, colours: dict[str, str] | None = None) -> bytes:
    return to_png(cif_figure(cif, title=title, time_unit=time_unit, followup=followup, window=window,
                             colours=colours))
