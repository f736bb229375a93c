"""Alert email content: subject, plain text and HTML with the key figures and the report link."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

from pv.alerts.render import fmt, render_alert
from pv.normalise import EventGroups
from tests.alerts.conftest import make_change


class Cells(HTMLParser):
    """Collects the key-figure table (th -> td) and the links of an HTML part."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.links: list[str] = []
        self._th: str | None = None
        self._in: str | None = None
        self._buf = ""

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag in ("th", "td"):
            self._in, self._buf = tag, ""
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "th" and self._in == "th":
            self._th = self._buf.strip()
        elif tag == "td" and self._in == "td" and self._th is not None:
            self.rows[self._th] = self._buf.strip()
        self._in = None

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._in:
            self._buf += data


def test_figures_in_text_and_html(event_groups: EventGroups, tmp_path: Path) -> None:
    report = tmp_path / "weekly" / "report.html"
    out = render_alert(make_change(), report=str(report), subject_prefix="[pv]", groups=event_groups)
    assert out.subject == "[pv] New signal: tisagenlecleucel / Cytokine release syndrome"

    cells = Cells()
    cells.feed(out.html)
    assert cells.rows["Product"] == "tisagenlecleucel"
    assert cells.rows["Event"] == "Cytokine release syndrome [PT]"
    assert cells.rows["Change"] == "New signal"
    assert cells.rows["Signal status"] == "new"
    assert cells.rows["Priority"] == "0.812"
    assert cells.rows["Reports (n)"] == "42 (expected 6.50)"
    assert cells.rows["PRR (chi-square)"] == "3.10 (57.25)"
    assert cells.rows["ROR (95% CI)"] == "3.45 (2.41 - 4.94)"
    assert cells.rows["ROR lower 95% bound"] == "2.41"
    assert cells.rows["IC025 (IC)"] == "1.17 (1.62)"
    assert cells.rows["EB05 (EBGM)"] == "2.19 (2.88)"
    assert cells.rows["Serious cases"] == "39"
    assert cells.rows["Deaths"] == "4"
    assert cells.rows["On the label"] == "EMA: not labelled; FDA: labelled"
    assert cells.rows["Data as of"] == "2024-09-30"
    assert cells.links == [report.absolute().as_uri()]

    text = out.text
    for line in (
        "New signal: tisagenlecleucel / Cytokine release syndrome",
        "Product:                   tisagenlecleucel",
        "PRR (chi-square):          3.10 (57.25)",
        "ROR lower 95% bound:       2.41",
        "IC025 (IC):                1.17 (1.62)",
        "EB05 (EBGM):               2.19 (2.88)",
        "Priority:                  0.812",
        "Serious cases:             39",
        "Deaths:                    4",
        "On the label:              EMA: not labelled; FDA: labelled",
        f"Report: {report}",
        "Signal 11, run 3, data as of 2024-09-30.",
    ):
        assert line in text, line


def test_group_signal_missing_measures_url_report_and_escaping(event_groups: EventGroups) -> None:
    change = make_change(
        kind="label_update_recommended", level="group", event="secondary_malignancy",
        product="ciltacabtagene autoleucel", measures={"n": 7, "ror_lower": math.inf}, labelled={},
        serious_cases=None, deaths=None,
    )
    out = render_alert(change, report="https://pv.example.org/reports/2024-09-30/", groups=event_groups,
                       subject_prefix="")
    assert out.subject == ("Label update recommended: ciltacabtagene autoleucel / Secondary malignancy (all) "
                           "(group secondary_malignancy)")
    cells = Cells()
    cells.feed(out.html)
    assert cells.rows["Event"] == "Secondary malignancy (all) (group secondary_malignancy) [event group]"
    assert cells.rows["PRR (chi-square)"] == "- (-)"
    assert cells.rows["ROR lower 95% bound"] == "inf"
    assert cells.rows["On the label"] == "unknown (no label loaded)"
    assert cells.rows["Deaths"] == "-"
    assert cells.links == ["https://pv.example.org/reports/2024-09-30/"]

    odd = render_alert(make_change(event="rash & <itching>", product="X<b>"), groups=event_groups)
    assert "Rash &amp; &lt;itching&gt;" in odd.html and "<itching>" not in odd.html
    assert "X&lt;b&gt;" in odd.html
    assert "Rash & <itching>" in odd.text  # plain text is not escaped
    assert "Report: not yet written" in odd.text


def test_fmt() -> None:
    assert fmt(None) == "-"
    assert fmt(3) == "3"
    assert fmt(2.0) == "2.00"
    assert fmt(1234.0) == "1234"
    assert fmt(0.12345, 3) == "0.123"
    assert fmt(float("nan")) == "-"
    assert fmt(-math.inf) == "-inf"
