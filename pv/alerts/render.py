"""Digest email content: subject, plain text and HTML (Jinja2 templates ``pv/templates/digest_email.*.j2``).

Links go to the review pages of the service (``PV_BASE_URL``): ``{base}/signals/{id}`` for a signal and
``{base}/runs/{run_id}/report`` for the run's report. Without a base URL the email gives no link but says how to
look a signal up (``pv signal show ID``) and names the report file; it never shows a path on the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pv.alerts.digest import (
    KIND_COUNTS,
    KIND_TEXT,
    Digest,
    DigestItem,
    product_display,
    rank,
    short_product,
)
from pv.normalise import EventGroups, ProductDictionary
from pv.signals.findings import event_title

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KIND_COLOURS = {
    "label_update_recommended": "#8a0069",
    "escalated": "#b30000",
    "reopened": "#b35900",
    "opened": "#b35900",
    "created": "#b35900",
    "label_update_withdrawn": "#2e6b30",
    "label_update_cleared": "#2e6b30",
}
MAX_SUBJECT_PRODUCTS = 3


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


def _title(event: str, level: str, groups: EventGroups | None) -> str:
    title = event_title(event, level, groups) if groups is not None else event
    return title[:1].upper() + title[1:]


def event_display(event: str, level: str, groups: EventGroups | None) -> str:
    """The event as a person reads it, with its level: 'T-cell lymphoma [PT]', 'Secondary T-cell malignancy
    [event group malignancy_t_cell]'."""
    title = _title(event, level, groups)
    return f"{title} [event group {event}]" if level == "group" else f"{title} [PT]"


def figures_text(item: DigestItem) -> str:
    """The key figures on one line: n (expected), EB05 (EBGM), PRR (chi-square), ROR lower bound, IC025,
    serious cases and deaths; missing ones left out."""
    m = item.measures
    parts = []
    if "n" in m:
        parts.append(f"n {fmt(m['n'], 0)}" + (f" (expected {fmt(m['expected'])})" if "expected" in m else ""))
    if "eb05" in m:
        parts.append(f"EB05 {fmt(m['eb05'])}" + (f" (EBGM {fmt(m['ebgm'])})" if "ebgm" in m else ""))
    if "prr" in m:
        parts.append(f"PRR {fmt(m['prr'])}" + (f" (chi-square {fmt(m['prr_chi2'])})" if "prr_chi2" in m else ""))
    if "ror_lower" in m:
        parts.append(f"ROR lower 95% {fmt(m['ror_lower'])}")
    if "ic025" in m:
        parts.append(f"IC025 {fmt(m['ic025'])}")
    if item.serious_cases is not None:
        parts.append(f"serious {item.serious_cases}")
    if item.deaths is not None:
        parts.append(f"deaths {item.deaths}")
    return "; ".join(parts) or "no figures in this run"


def label_text(labelled: dict[str, bool]) -> str:
    if not labelled:
        return "no label known (the product is judged in no jurisdiction)"
    return "; ".join(f"{j} {'labelled' if v else 'NOT labelled'}" for j, v in sorted(labelled.items()))


def _reasons(item: DigestItem) -> list[str]:
    """The item's reasons, each once: a reason another one repeats in full (an escalation's, inside the label
    update recommendation it led to) is left out, and so is the detection of a finding that opened in the same
    run (the opening's reason names the criteria met)."""
    kinds = {kind for kind, _ in item.reasons}
    texts = [r for kind, r in item.reasons if not (kind == "created" and "opened" in kinds)]
    out: list[str] = []
    for i, text in enumerate(texts):
        if text in out or any(j != i and text != other and text in other for j, other in enumerate(texts)):
            continue
        out.append(text)
    return out or ["no reason recorded in the audit trail"]


def signal_url(base_url: str | None, signal_id: int) -> str | None:
    return f"{base_url}/signals/{signal_id}" if base_url else None


def report_url(base_url: str | None, run_id: int) -> str | None:
    return f"{base_url}/runs/{run_id}/report" if base_url else None


def subject_of(digest: Digest, prefix: str, products: ProductDictionary | None) -> str:
    """'[pv] 2024-06-30: 3 label updates recommended, 2 new signals (Yescarta, Kymriah)'."""
    counts = ", ".join(f"{n} {KIND_COUNTS[k][0 if n == 1 else 1]}" for k, n in digest.counts().items())
    names: list[str] = []
    for f in digest.findings:
        name = short_product(f.product, products)
        if name not in names:
            names.append(name)
    shown = ", ".join(names[:MAX_SUBJECT_PRODUCTS])
    if len(names) > MAX_SUBJECT_PRODUCTS:
        shown += f" and {len(names) - MAX_SUBJECT_PRODUCTS} more"
    subject = f"{digest.as_of.isoformat()}: {counts} ({shown})"
    return f"{prefix} {subject}".strip() if prefix else subject


def _member(item: DigestItem, depth: int, groups: EventGroups | None, base_url: str | None) -> dict[str, Any]:
    return {
        "depth": depth,
        "signal_id": item.signal_id,
        "event": event_display(item.event, item.level, groups),
        "what": "; ".join(dict.fromkeys(KIND_TEXT.get(k, k) for k in item.kinds)),  # opened and created: once
        "kind": item.kind,
        "colour": KIND_COLOURS.get(item.kind, "#1a1a1a"),
        "reasons": _reasons(item),
        "figures": figures_text(item),
        "label": label_text(item.labelled),
        "state": f"status {item.status}, priority {item.priority:.1f}",
        "url": signal_url(base_url, item.signal_id),
        "lookup": f"pv signal show {item.signal_id}",
    }


def digest_context(digest: Digest, *, groups: EventGroups | None, products: ProductDictionary | None,
                   base_url: str | None, report: str | None, max_findings: int) -> dict[str, Any]:
    findings = []
    for number, f in enumerate(digest.findings[:max_findings], start=1):
        lead_kind = min((m.item.kind for m in f.members), key=rank)
        lead = f.lead
        findings.append({
            "number": number,
            "headline": KIND_TEXT.get(lead_kind, lead_kind).upper(),
            "lead": _title(lead.event, lead.level, groups) if lead is not f.head else None,
            "colour": KIND_COLOURS.get(lead_kind, "#1a1a1a"),
            "product": product_display(f.product, products),
            "title": f.title[:1].upper() + f.title[1:],  # a PT not spelled in the config is stored lower case
            "members": [_member(m.item, m.depth, groups, base_url) for m in f.members],
        })
    more = len(digest.findings) - len(findings)
    counts = [f"{n} {KIND_COUNTS[k][0 if n == 1 else 1]}" for k, n in digest.counts().items()]
    name = PurePath(report).name if report and "://" not in report else report
    heading = f"pv signal digest: data as of {digest.as_of.isoformat()} (run {digest.run_id})"
    return {
        "heading": heading,
        "as_of": digest.as_of.isoformat(),
        "run_id": digest.run_id,
        "recipient": digest.recipient,
        "n_findings": len(digest.findings),
        "n_signals": len(digest.items),
        "counts": ", ".join(counts),
        "findings": findings,
        "more": more,
        "routes": ", ".join(digest.routes),
        "report_url": report_url(base_url, digest.run_id),
        "report_name": name,
        "base_url": base_url,
    }


def render_digest(
    digest: Digest,
    *,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
    base_url: str | None = None,
    report: str | None = None,
    subject_prefix: str = "[pv]",
    max_findings: int = 30,
) -> RenderedAlert:
    """Subject, text and HTML of one recipient's digest. ``report``: the report's file name (a path is cut to its
    name: the email never shows where the server keeps its files)."""
    subject = subject_of(digest, subject_prefix, products)
    ctx = digest_context(digest, groups=groups, products=products, base_url=base_url, report=report,
                         max_findings=max_findings)
    ctx["subject"] = subject
    text = _ENV.get_template("digest_email.txt.j2").render(ctx)
    html = _ENV.get_template("digest_email.html.j2").render(ctx)
    return RenderedAlert(subject=subject, text=text, html=html)
