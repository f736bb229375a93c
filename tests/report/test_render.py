"""The weekly report rendered from hand-made data: every section and figure present, PDF text readable."""

from __future__ import annotations

import base64
import datetime as dt
import io

import lxml.html
import pandas as pd
import pytest
from pypdf import PdfReader

from pv.normalise import default_event_groups
from pv.report.build import findings_of
from pv.report.data import (
    EventSection,
    OnsetRow,
    Recommendation,
    ReportData,
    SignalRow,
    SinceLast,
    SourceInfo,
    TrendPoint,
)
from pv.report.render import render_html, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _signal(i: int, product: str, event: str, change: str | None = None, **kw) -> SignalRow:  # type: ignore[no-untyped-def]
    return SignalRow(
        id=i, product=product, event=event, level=kw.get("level", "pt"), status=kw.get("status", "new"),
        priority=kw.get("priority", 1.0), first_detected=dt.date(2024, 3, 31),
        measures={"n": 25, "eb05": 3.21, "ebgm": 4.5, "prr": 6.0, "prr_chi2": 88.0, "ror": 6.5,
                  "ror_lower": 4.1, "ror_upper": 9.9, "ic025": 1.7},
        labelled={"FDA": kw.get("fda", False), "NMPA": True, "EMA": False},
        label_update_recommended=kw.get("flag", False), change=change, event_key=kw.get("key", event.casefold()),
        new_cases=kw.get("new_cases"), flag_jurisdictions=("FDA", "EMA") if kw.get("flag") else (),
    )


def make_data(with_cif: bool = True) -> ReportData:
    tcell = _signal(7, "ciltacabtagene autoleucel", "T-cell lymphoma", "label_update_recommended", flag=True,
                    priority=9.5)
    new = _signal(8, "axicabtagene ciloleucel", "Hepatitis B reactivation", "created", priority=4.2)
    forest = pd.DataFrame({"product": ["ciltacabtagene autoleucel", "axicabtagene ciloleucel"],
                           "estimate": [4.5, 1.3], "lower": [3.2, 0.8], "upper": [6.1, 2.0], "n": [25, 4]})
    trend = pd.DataFrame({"quarter": [dt.date(2023, 12, 31), dt.date(2024, 3, 31)] * 2,
                          "product": ["ciltacabtagene autoleucel"] * 2 + ["axicabtagene ciloleucel"] * 2,
                          "value": [1.5, 3.2, 0.7, 0.9]})
    counts = pd.DataFrame({"product": ["ciltacabtagene autoleucel"], "cases": [25], "serious": [20],
                           "non_serious": [5], "deaths": [6]})
    cif = pd.DataFrame({"group": ["all"] * 3, "time": [0.0, 1.0, 2.0], "estimate": [0.0, 0.01, 0.02],
                        "lower": [0.0, 0.005, 0.01], "upper": [0.0, 0.02, 0.03]}) if with_cif else None
    sections = [
        EventSection("malignancy_t_cell", "Secondary T-cell malignancy", "EBGM", forest, "EB05", trend, counts,
                     cif=cif),
        EventSection("crs", "Cytokine release syndrome", "EBGM", forest.iloc[:0], "EB05", trend.iloc[:0],
                     counts.iloc[:0]),
    ]
    groups = default_event_groups()
    crs = _signal(10, "axicabtagene ciloleucel", "Cytokine release syndrome", level="group", key="crs", fda=True)
    crs = SignalRow(**{**crs.__dict__, "labelled": {"FDA": True, "NMPA": True}})
    finding = findings_of([tcell], groups)[0]
    recommendation = Recommendation(
        finding=finding, flagged=(tcell,), reason="unlabelled in FDA, EMA for 3 consecutive runs",
        since=dt.date(2024, 3, 31),
        jurisdictions=("FDA", "EMA"), trend=(TrendPoint(dt.date(2023, 12, 31), 20, 2.5, 5.0, True),
                                             TrendPoint(dt.date(2024, 3, 31), 25, 3.21, 6.0, True)),
        incidence=None, new=True)
    return ReportData(
        as_of=dt.date(2024, 3, 31), run_id=42, generated_at=dt.datetime(2024, 4, 2, 8, 0),
        config_hash="ab" * 32, previous_report_as_of=dt.date(2023, 12, 31),
        recommendations=[recommendation], since=SinceLast(new=findings_of([new], groups)),
        open_unlabelled=findings_of([new], groups), labelled=findings_of([crs], groups),
        onset=[OnsetRow("ciltacabtagene autoleucel", "T-cell lymphoma", "pt", 20, 2, 180.0, 120.0, 300.0, 1.6, 1.2,
                        2.1)],
        open_signals=[tcell, new, crs], sections=sections, products=("axicabtagene ciloleucel",
                                                                     "ciltacabtagene autoleucel"),
        sources=[SourceInfo("faers_ascii_2024q1.zip", "faers", "2024Q1", "cd" * 32,
                            dt.datetime(2024, 4, 1, 6, 0), 401234, 17)],
        parameters={"roles": "PS, SS", "strata": "sex, age band"}, rules={"pt": "EB05 >= 2 or PRR >= 2"},
        totals={"cases": 123456, "reactions": 400000},
    )


def _figures(doc, group: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    out = {}
    for fig in doc.xpath(f'//section[@data-group="{group}"]//figure'):
        src = fig.xpath(".//img/@src")[0]
        assert src.startswith("data:image/png;base64,")
        out[fig.get("data-figure")] = base64.b64decode(src.split(",", 1)[1])
    return out


def test_html_has_every_section_with_embedded_figures() -> None:
    doc = lxml.html.fromstring(render_html(make_data()))
    for section in ("recommendations", "since", "recommendation-details", "open-unlabelled", "labelled", "onset",
                    "methods", "provenance", "event-malignancy_t_cell", "event-crs"):
        assert doc.xpath(f'//section[@id="{section}"]'), section
    cards = {c.get("data-kind"): c.text_content().strip() for c in doc.xpath('//div[contains(@class, "card")]')}
    assert cards["new"].startswith("1") and cards["recommendations"].startswith("1")
    assert cards["escalated"].startswith("0") and cards["open"].startswith("3") and cards["labelled"].startswith("1")
    # page one: the recommendation with its jurisdictions, evidence and reason
    row = doc.xpath('//table[@data-table="recommendations"]//tr[@data-finding="7"]')[0].text_content()
    for text in ("ciltacabtagene autoleucel", "T-cell lymphoma", "FDA, EMA", "25", "2.50 → 3.21", "6.00 (88.0)",
                 "unlabelled in FDA, EMA for 3 consecutive runs"):
        assert text in row, text
    onset = doc.xpath('//section[@id="onset"]//tr')[1].text_content()
    assert "180 (120–300)" in onset and "1.60 (1.20–2.10)" in onset and "late (rising)" in onset
    figs = _figures(doc, "malignancy_t_cell")
    assert set(figs) == {"forest", "trend", "cif"}
    assert all(png.startswith(PNG_MAGIC) and len(png) > 2000 for png in figs.values())
    # no cohort for CRS: forest and trend only, and the report says so
    assert set(_figures(doc, "crs")) == {"forest", "trend"}
    assert doc.xpath('//section[@data-group="crs"]//*[@data-figure="cif-absent"]')
    # the evidence rows carry the figures a safety officer decides on
    row = doc.xpath('//section[@id="recommendation-details"]//tr[@data-signal="7"]')[0].text_content()
    for text in ("ciltacabtagene autoleucel", "T-cell lymphoma", "3.21", "6.00 (88.0)", "FDA\xa0no", "NMPA\xa0yes"):
        assert text in row, text
    prov = doc.xpath('//section[@id="provenance"]')[0].text_content()
    assert "faers_ascii_2024q1.zip" in prov and "2024Q1" in prov and "ab" * 32 in prov and "123,456" in prov
    counts = doc.xpath('//section[@data-group="malignancy_t_cell"]//table[@data-table="counts"]')[0]
    assert [td.text_content() for td in counts.xpath(".//tr[2]/td")] == [
        "ciltacabtagene autoleucel", "25", "20", "5", "6", "24.0"]


def test_html_escapes_untrusted_text() -> None:
    data = make_data()
    evil = _signal(9, "<script>alert(1)</script>", "x")
    html = render_html(ReportData(**{**data.__dict__, "open_unlabelled": findings_of([evil], default_event_groups())}))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.timeout(120)
def test_pdf_is_rendered_and_its_text_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = write_report(make_data(), tmp_path)
    assert files.html.exists() and files.pdf.read_bytes().startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(files.pdf.read_bytes()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for needle in ("Weekly CAR-T safety signal report", "Label updates recommended", "Since the last report",
                   "Known risks", "Time to onset", "Secondary T-cell malignancy",
                   "Cytokine release syndrome", "Methods", "Provenance", "ciltacabtagene autoleucel",
                   "faers_ascii_2024q1.zip"):
        assert needle in text, needle
    images = {img.data for page in reader.pages for img in page.images}
    assert len(images) == 5  # forest + trend + cif for T-cell, forest + trend for CRS
