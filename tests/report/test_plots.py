"""The report's figures, checked on their matplotlib objects: cumulative incidence as step functions to each
product's end of follow-up with the numbers at risk beneath, days for day-scale events, one colour per product in
every figure, legends outside the axes."""

from __future__ import annotations

import datetime as dt

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pv.report import plots
from pv.report.build import time_scales

PRODUCTS = ("axicabtagene ciloleucel", "ciltacabtagene autoleucel", "tisagenlecleucel")
COLOURS = plots.product_colours(PRODUCTS)


def _cif() -> tuple[pd.DataFrame, pd.DataFrame]:
    cif = pd.DataFrame({
        "group": ["axicabtagene ciloleucel"] * 3 + ["tisagenlecleucel"] * 2,
        "time": [0.0, 2.0, 5.0, 0.0, 3.0],
        "estimate": [0.0, 0.2, 0.5, 0.0, 0.1],
        "lower": [0.0, 0.1, 0.3, 0.0, 0.05],
        "upper": [0.0, 0.3, 0.7, 0.0, 0.2],
    })
    followup = pd.DataFrame({
        "group": ["axicabtagene ciloleucel"] * 4 + ["tisagenlecleucel"] * 3,
        "time": [2.0, 5.0, 12.0, 20.0, 3.0, 8.0, 15.0],
    })
    return cif, followup


def _lines(ax) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_cumulative_incidence_steps_to_the_end_of_follow_up_with_numbers_at_risk() -> None:
    cif, followup = _cif()
    fig = plots.cif_figure(cif, title="CRS", time_unit="days", followup=followup, colours=COLOURS)
    ax = fig.axes[0]
    lines = _lines(ax)
    axi, tisa = lines["axicabtagene ciloleucel"], lines["tisagenlecleucel"]
    # a step function (value held after each event time) running on, flat, to the last follow-up time
    assert axi.get_drawstyle() == "steps-post"  # type: ignore[attr-defined]
    assert list(axi.get_xdata()) == [0.0, 2.0, 5.0, 20.0]  # type: ignore[attr-defined]
    assert list(axi.get_ydata()) == [0.0, 0.2, 0.5, 0.5]  # type: ignore[attr-defined]
    assert list(tisa.get_xdata())[-1] == 15.0 and list(tisa.get_ydata())[-2:] == [0.1, 0.1]  # type: ignore[attr-defined]
    assert ax.get_xlim() == (0.0, 20.0)
    assert ax.get_xlabel() == "time since infusion (days)"
    # the numbers at risk beneath: still followed at each tick
    ticks = ax.get_xticks()
    assert list(ticks) == [0.0, 5.0, 10.0, 15.0, 20.0]
    table = fig.axes[1]
    texts = [t.get_text() for t in table.texts]
    assert texts[:2] == ["number at risk", "axicabtagene"]
    assert texts[2:7] == ["4", "3", "2", "1", "1"]  # axi-cel: times 2, 5, 12, 20
    assert texts[7:13] == ["tisagenlecleucel", "3", "2", "1", "1", "0"]  # tisa-cel: times 3, 8, 15
    assert plots.at_risk(followup, np.array([0.0, 10.0])) == {"axicabtagene ciloleucel": [4, 2],
                                                              "tisagenlecleucel": [3, 1]}
    # the legend outside the axes, clear of the lines
    legend = ax.get_legend()
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    plt.close(fig)


def test_a_window_shows_the_first_days_and_the_curves_still_run_on() -> None:
    cif, followup = _cif()
    fig = plots.cif_figure(cif, title="CRS", time_unit="days", followup=followup, window=10, colours=COLOURS)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 10.0)
    assert list(_lines(ax)["axicabtagene ciloleucel"].get_xdata())[-1] == 20.0  # type: ignore[attr-defined]
    plt.close(fig)


def test_one_colour_per_product_in_every_figure() -> None:
    cif, followup = _cif()
    trend = pd.DataFrame({"quarter": [dt.date(2024, 3, 31), dt.date(2024, 6, 30)] * 3,
                          "product": [p for p in PRODUCTS for _ in range(2)], "value": [1, 2, 3, 4, 5, 6]})
    trend_fig = plots.trend_figure(trend, measure="EB05", title="t", colours=COLOURS)
    cif_fig = plots.cif_figure(cif, title="c", followup=followup, colours=COLOURS)
    in_trend = {k: v.get_color() for k, v in _lines(trend_fig.axes[0]).items()}  # type: ignore[attr-defined]
    in_cif = {k: v.get_color() for k, v in _lines(cif_fig.axes[0]).items()}  # type: ignore[attr-defined]
    assert in_trend == {p: COLOURS[p] for p in PRODUCTS}
    assert in_cif == {p: COLOURS[p] for p in ("axicabtagene ciloleucel", "tisagenlecleucel")}
    assert len(set(COLOURS.values())) == len(PRODUCTS)
    # by place in the product list: the same product keeps its colour whatever the others in a figure
    assert plots.product_colours(PRODUCTS)["tisagenlecleucel"] == plots.PALETTE[2]
    legend = trend_fig.axes[0].get_legend()
    trend_fig.canvas.draw()
    assert legend.get_window_extent().x0 >= trend_fig.axes[0].get_window_extent().x1
    plt.close(trend_fig)
    plt.close(cif_fig)


def test_day_scale_events_are_configured_in_days(tmp_path) -> None:  # type: ignore[no-untyped-def]
    shipped = time_scales()
    assert shipped["crs"][0] == "days" and shipped["icans"][0] == "days"
    assert "malignancy_t_cell" not in shipped  # years, over the whole follow-up
    bad = tmp_path / "report.yaml"
    bad.write_text("events_of_interest: [crs]\ntime_scale: {crs: fortnights}\n")
    with pytest.raises(Exception, match="time_scale"):
        time_scales(bad)
