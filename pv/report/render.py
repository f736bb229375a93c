"""Rendering the weekly report: self-contained HTML (Jinja2, figures embedded) and a PDF of it (WeasyPrint)."""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from pv.report import plots
from pv.report.data import JURISDICTIONS, ReportData

#: The "since the last report" sections: attribute of :class:`~pv.report.data.SinceLast`, heading, and what
#: the section holds.
SINCE_SECTIONS = [
    ("new", "New signals not on the label", "detected (or opened from tracking) in this run, unlabelled in a "
     "jurisdiction where the product is judged; the new known risks are counted below and marked new in their table"),
    ("escalated", "Escalations", "escalated by the feedback loop in this run, with the reason"),
    ("reopened", "Reopened", "monitored signals that strengthened and moved back to validated"),
    ("flags_withdrawn", "Label-update flags withdrawn", "the label now covers the event, or the flag was withdrawn"),
    ("stopped_meeting_rules", "Signals that stopped meeting the rules",
     "open signals that met the detection rules in the previous run and not in this one (criteria met before)"),
]
FOREST_THRESHOLD = {"EBGM": 2.0, "ROR": 1.0}
TREND_THRESHOLD = {"EB05": 2.0, "IC025": 0.0}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("pv", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100.0 * value:.1f}%"


def _duration(time: float, unit: str) -> str:
    """"1 year", "2 years", "0.5 years"."""
    shown = _fmt(time, 0) if float(time).is_integer() else _fmt(time, 1)
    return f"{shown} {unit[:-1] if time == 1 and unit.endswith('s') else unit}"


_env.globals.update(fmt=_fmt, pct=_pct, duration=_duration, jurisdictions=JURISDICTIONS, since_sections=SINCE_SECTIONS)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def render_html(data: ReportData) -> str:
    colours = plots.product_colours(data.products)
    sections = []
    for s in data.sections:
        followup_end = (float(s.followup["time"].max()) if s.followup is not None and not s.followup.empty
                        else None)
        sections.append(
            {
                "group": s.group,
                "label": s.label,
                "forest_measure": s.forest_measure,
                "trend_measure": s.trend_measure,
                "forest_png": _b64(plots.forest_plot(
                    s.forest, measure=s.forest_measure, title=f"{s.label}: {s.forest_measure} by product",
                    threshold=FOREST_THRESHOLD.get(s.forest_measure))),
                "trend_png": _b64(plots.trend_plot(
                    s.trend, measure=s.trend_measure, title=f"{s.label}: cumulative {s.trend_measure} by quarter",
                    threshold=TREND_THRESHOLD.get(s.trend_measure), colours=colours)),
                "cif_png": _b64(plots.cif_plot(s.cif, title=f"{s.label}: cumulative incidence in cohorts",
                                               time_unit=s.cif_time_unit, followup=s.followup,
                                               window=s.cif_window, colours=colours))
                if s.cif is not None and not s.cif.empty else None,
                "time_unit": s.cif_time_unit,
                "window": s.cif_window,
                "followup_end": followup_end,
                "counts": s.counts.to_dict("records"),
                "onset": s.onset,
            }
        )
    rules_yaml = yaml.safe_dump(data.rules, sort_keys=False, default_flow_style=None, width=140)
    new_ids = {x.id for f in data.since.new_labelled for x in f.items}
    return _env.get_template("weekly_report.html.j2").render(r=data, sections=sections, rules_yaml=rules_yaml,
                                                              new_ids=new_ids)


def report_files(out_dir: str | Path, as_of: dt.date, run_id: int) -> ReportFiles:
    """Where the report of run ``run_id`` as of ``as_of`` is written in ``out_dir``:
    ``weekly-report-<as_of>-run<id>.html`` and ``.pdf``. The alert emails link the HTML file by this name."""
    stem = Path(out_dir) / f"weekly-report-{as_of.isoformat()}-run{run_id}"
    return ReportFiles(html=stem.with_suffix(".html"), pdf=stem.with_suffix(".pdf"))


def write_report(data: ReportData, out_dir: str | Path) -> ReportFiles:
    """Write the report's HTML and PDF into ``out_dir`` (named by :func:`report_files`); rewritten if present."""
    from weasyprint import HTML  # imported lazily: heavy, and only needed here

    files = report_files(out_dir, data.as_of, data.run_id)
    files.html.parent.mkdir(parents=True, exist_ok=True)
    html = render_html(data)
    files.html.write_text(html, encoding="utf-8")
    HTML(string=html, base_url=str(files.html.parent)).write_pdf(files.pdf)
    return files
