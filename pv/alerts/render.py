"""Alert email content: subject, plain text and HTML (Jinja2 templates in ``pv/templates``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pv.normalise import EventGroups
from pv.signals.changes import SignalChange

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

KIND_HEADLINES = {
    "created": "New finding tracked",
    "opened": "New signal",
    "escalated": "Signal escalated",
    "label_update_recommended": "Label update recommended",
    "reopened": "Signal reopened",
    "label_update_cleared": "Label update no longer recommended",
    "label_update_withdrawn": "Label update recommendation withdrawn",
}
KIND_SUMMARIES = {
    "created": "A new disproportionality finding was detected; it is tracked until the opening rule opens it",
    "opened": "A disproportionality finding met the opening rule (persistent or strong, with new cases, "
    "unlabelled somewhere or markedly stronger) and is now a signal to validate",
    "escalated": "An open signal was escalated (stronger evidence or higher priority)",
    "label_update_recommended": "The event is disproportionately reported and not on the label in force "
    "in at least one jurisdiction: a label update is recommended",
    "reopened": "A closed signal was reopened by new evidence",
    "label_update_cleared": "The label-update recommendation was cleared: the label in force now covers the event",
    "label_update_withdrawn": "The label-update recommendation was withdrawn: the signal stopped meeting the "
    "detection rules, or was refuted or closed",
}
KIND_COLOURS = {
    "created": "#6b6b6b",
    "opened": "#b35900",
    "escalated": "#b30000",
    "label_update_recommended": "#8a0069",
    "reopened": "#b35900",
    "label_update_cleared": "#2e6b30",
    "label_update_withdrawn": "#2e6b30",
}


@dataclass(frozen=True)
class RenderedAlert:
    subject: str
    text: str
    html: str


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


_ENV = _env()


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A figure for people: '-' when missing or not finite, integers as such, else ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "-")
    if float(value).is_integer() and abs(value) >= 1000:
        return str(int(value))
    return f"{value:.{digits}f}"


def event_display(change: SignalChange, groups: EventGroups | None) -> str:
    """The event as a person reads it: the group's label, or the PT as spelled in the configuration."""
    if change.level == "group":
        label = groups.labels.get(change.event) if groups else None
        return f"{label} (group {change.event})" if label else f"group {change.event}"
    spelled = groups.display.get(change.event) if groups else None
    if spelled:
        return spelled
    return change.event[:1].upper() + change.event[1:]


def figures(change: SignalChange, groups: EventGroups | None = None) -> list[tuple[str, str]]:
    """The key figures of the alert, in display order."""
    m = change.measures
    rows = [
        ("Product", change.product),
        ("Event", f"{event_display(change, groups)} [{'PT' if change.level == 'pt' else 'event group'}]"),
        ("Change", KIND_HEADLINES.get(change.kind, change.kind)),
        ("Signal status", change.status),
        ("Priority", fmt(change.priority, 3)),
        ("Reports (n)", fmt(m.get("n"), 0)
         + (f" (expected {fmt(m['expected'])})" if "expected" in m else "")),
        ("PRR (chi-square)", f"{fmt(m.get('prr'))} ({fmt(m.get('prr_chi2'))})"),
        ("ROR (95% CI)", f"{fmt(m.get('ror'))} ({fmt(m.get('ror_lower'))} - {fmt(m.get('ror_upper'))})"),
        ("ROR lower 95% bound", fmt(m.get("ror_lower"))),
        ("IC025 (IC)", f"{fmt(m.get('ic025'))} ({fmt(m.get('ic'))})"),
        ("EB05 (EBGM)", f"{fmt(m.get('eb05'))} ({fmt(m.get('ebgm'))})"),
        ("Serious cases", fmt(change.serious_cases)),
        ("Deaths", fmt(change.deaths)),
    ]
    if change.labelled:
        on_label = "; ".join(
            f"{j}: {'labelled' if v else 'not labelled'}" for j, v in sorted(change.labelled.items())
        )
    else:
        on_label = "unknown (no label loaded)"
    rows.append(("On the label", on_label))
    rows.append(("Data as of", change.as_of.isoformat()))
    return rows


def report_href(report: str | None) -> str | None:
    """A link for the HTML part: URLs as they are, local paths as file:// URIs."""
    if not report:
        return None
    if "://" in report:
        return report
    return Path(report).absolute().as_uri()


def subject_of(change: SignalChange, prefix: str, groups: EventGroups | None = None) -> str:
    head = KIND_HEADLINES.get(change.kind, change.kind)
    subject = f"{head}: {change.product} / {event_display(change, groups)}"
    return f"{prefix} {subject}".strip() if prefix else subject


def render_alert(
    change: SignalChange,
    *,
    report: str | None = None,
    subject_prefix: str = "[pv]",
    groups: EventGroups | None = None,
) -> RenderedAlert:
    """Subject, text and HTML of the alert for one change (the same for every recipient)."""
    subject = subject_of(change, subject_prefix, groups)
    ctx = {
        "subject": subject,
        "headline": f"{KIND_HEADLINES.get(change.kind, change.kind)}: {change.product} / "
        f"{event_display(change, groups)}",
        "summary": f"{KIND_SUMMARIES.get(change.kind, change.kind)} for {change.product} and "
        f"{event_display(change, groups)}.",
        "colour": KIND_COLOURS.get(change.kind, "#1a1a1a"),
        "figures": figures(change, groups),
        "report": report,
        "report_href": report_href(report),
        "signal_id": change.signal_id,
        "run_id": change.run_id,
        "as_of": change.as_of.isoformat(),
        "change_key": change.key,
    }
    text = _ENV.get_template("alert_email.txt.j2").render(ctx)
    html = _ENV.get_template("alert_email.html.j2").render(ctx)
    return RenderedAlert(subject=subject, text=text, html=html)
