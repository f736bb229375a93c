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

HEADLINE_KINDS = [  # the decisions first: label updates, escalations, reopenings, then what is new
    ("label_update_recommended", "label updates recommended"),
    ("escalated", "escalated signals"),
    ("reopened", "reopened signals"),
    ("opened", "new signals"),
    ("label_update_withdrawn", "label updates withdrawn"),
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


NEW_SIGNALS_SHOWN = 20  # the headline lists the new signals of highest priority; all are in the open-signals table
_env.globals.update(fmt=_fmt, jurisdictions=JURISDICTIONS, headline_kinds=HEADLINE_KINDS, new_limit=NEW_SIGNALS_SHOWN)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def render_html(data: ReportData) -> str:
    sections = []
    for s in data.sections:
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
                    threshold=TREND_THRESHOLD.get(s.trend_measure))),
                "cif_png": _b64(plots.cif_plot(s.cif, title=f"{s.label}: cumulative incidence in cohorts",
                                               time_unit=s.cif_time_unit))
                if s.cif is not None and not s.cif.empty else None,
                "counts": s.counts.to_dict("records"),
            }
        )
    rules_yaml = yaml.safe_dump(data.rules, sort_keys=False, default_flow_style=None, width=140)
    return _env.get_template("weekly_report.html.j2").render(r=data, sections=sections, rules_yaml=rules_yaml)


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
