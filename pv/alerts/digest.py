"""What each recipient is told about a run: one digest per (run, recipient) of the actionable changes routed to it.

A run's changes (:class:`~pv.signals.changes.SignalChange`) are routed change by change (config/alerts.yaml: a
route's ``kinds`` say which kinds it alerts on); a change is *actionable* (:func:`actionable`) unless it is the
``created`` of a signal that is not new or is a known risk. A recipient's changes are merged per signal (one
signal may be created, escalated and flagged by the same run: one item, its kinds most urgent first, each with
the reason recorded in the audit trail), ordered most urgent first (:data:`URGENCY`, then priority), and grouped
into findings (:func:`pv.signals.findings.group_findings`: a PT, its group and the parent group of one product are
one finding with its members beneath).

Pure but for :func:`audit_reasons`, which reads the reasons of the changes from ``signal_audit``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from pv.alerts.routing import AlertRouting
from pv.models.signals import SignalAudit
from pv.normalise import ProductDictionary
from pv.signals.changes import SignalChange
from pv.signals.findings import Finding, group_findings
from pv.signals.queries import is_known_risk

#: Kinds from the most urgent to the least: a signal's item takes the rank of its most urgent kind.
URGENCY: tuple[str, ...] = ("label_update_recommended", "escalated", "reopened", "opened", "created",
                            "label_update_withdrawn", "label_update_cleared")
#: What happened, for people.
KIND_TEXT: dict[str, str] = {
    "label_update_recommended": "label update recommended",
    "escalated": "escalated",
    "reopened": "reopened",
    "opened": "new signal",
    "created": "new signal",
    "label_update_withdrawn": "label update recommendation withdrawn",
    "label_update_cleared": "label update no longer needed (now on the label)",
}
#: How the subject counts findings by their most urgent kind: (one, several); opened and created are both new.
KIND_COUNTS: dict[str, tuple[str, str]] = {
    "label_update_recommended": ("label update recommended", "label updates recommended"),
    "escalated": ("escalation", "escalations"),
    "reopened": ("reopened signal", "reopened signals"),
    "opened": ("new signal", "new signals"),
    "created": ("new signal", "new signals"),
    "label_update_withdrawn": ("recommendation withdrawn", "recommendations withdrawn"),
    "label_update_cleared": ("label update done", "label updates done"),
}
_RANK = {k: i for i, k in enumerate(URGENCY)}
_BRAND = re.compile(r"^[A-Z][a-z]+$")


def actionable(change: SignalChange) -> bool:
    """Whether a change calls for a decision: every kind but ``created``, which does only for a signal still
    ``new`` that is not a known risk (unlabelled somewhere, or no label known). A ``created`` that is tracked
    (not yet opened for a person) or on the label everywhere it is judged is not emailed."""
    if change.kind != "created":
        return True
    return change.status == "new" and not is_known_risk(change.labelled)


def rank(kind: str) -> int:
    return _RANK.get(kind, len(URGENCY))


@dataclass(frozen=True)
class DigestItem:
    """One signal of a digest: its state after the run, what the run did to it (most urgent first) and why."""

    signal_id: int
    run_id: int
    product: str
    event: str
    level: str
    status: str
    priority: float
    labelled: dict[str, bool]
    measures: dict[str, float]
    serious_cases: int | None
    deaths: int | None
    kinds: tuple[str, ...]
    reasons: tuple[tuple[str, str], ...] = ()  # (kind, reason) in the order of ``kinds``, missing ones absent

    @property
    def kind(self) -> str:
        return self.kinds[0]

    def sort_key(self) -> tuple[int, float, int]:
        return rank(self.kind), -self.priority, self.signal_id


@dataclass(frozen=True)
class Digest:
    """The digest of one run for one recipient: its findings, most urgent first, and the routes that send them."""

    run_id: int
    as_of: dt.date
    recipient: str
    findings: tuple[Finding[DigestItem], ...]
    routes: tuple[str, ...] = ()

    @property
    def items(self) -> list[DigestItem]:
        return [m.item for f in self.findings for m in f.members]

    def counts(self) -> dict[str, int]:
        """Findings by the most urgent kind of their lead (opened and created counted as ``opened``), in
        :data:`URGENCY` order."""
        out: dict[str, int] = {}
        for f in self.findings:
            kind = min((m.item.kind for m in f.members), key=rank)
            kind = "opened" if kind == "created" else kind
            out[kind] = out.get(kind, 0) + 1
        return {k: out[k] for k in sorted(out, key=rank)}


@dataclass
class _Routed:
    changes: list[SignalChange] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)


def _audit_matches(kind: str, action: str, before: str | None, after: str) -> bool:
    if kind == "reopened":
        return action == "reopened" or (action == "transition" and (before, after) == ("monitoring", "validated"))
    return action == kind


def audit_reasons(session: Session, changes: Sequence[SignalChange]) -> dict[tuple[int, int, str], str]:
    """The reason recorded in the audit trail for each change: (signal_id, run_id, kind) -> reason (the last
    matching entry of that signal and run; changes with none recorded are absent)."""
    pairs = sorted({(c.signal_id, c.run_id) for c in changes})
    out: dict[tuple[int, int, str], str] = {}
    wanted = {(c.signal_id, c.run_id, c.kind) for c in changes}
    for i in range(0, len(pairs), 500):
        chunk = pairs[i:i + 500]
        rows = session.execute(
            select(SignalAudit.signal_id, SignalAudit.run_id, SignalAudit.action, SignalAudit.from_status,
                   SignalAudit.to_status, SignalAudit.reason)
            .where(tuple_(SignalAudit.signal_id, SignalAudit.run_id).in_(chunk))
            .order_by(SignalAudit.id))
        for signal_id, run_id, action, before, after, reason in rows:
            if run_id is None:
                continue
            for kind in URGENCY:
                if (signal_id, run_id, kind) in wanted and _audit_matches(kind, action, before, after):
                    out[(signal_id, run_id, kind)] = reason
    return out


def _item(changes: Sequence[SignalChange], reasons: Mapping[tuple[int, int, str], str]) -> DigestItem:
    """One signal's changes in one run as one item; its figures and state are those of the run's last change."""
    kinds = tuple(sorted(dict.fromkeys(c.kind for c in changes), key=rank))
    last = changes[-1]
    found = tuple((k, reasons[(last.signal_id, last.run_id, k)]) for k in kinds
                  if (last.signal_id, last.run_id, k) in reasons)
    return DigestItem(
        signal_id=last.signal_id, run_id=last.run_id, product=last.product, event=last.event, level=last.level,
        status=last.status, priority=float(last.priority), labelled=dict(last.labelled),
        measures=dict(last.measures), serious_cases=last.serious_cases, deaths=last.deaths, kinds=kinds,
        reasons=found)


def build_digests(
    changes: Iterable[SignalChange],
    routing: AlertRouting,
    reasons: Mapping[tuple[int, int, str], str] | None = None,
) -> list[Digest]:
    """One digest per (run, recipient) with at least one actionable change routed to it; ordered by run, then
    recipient. Recipients are compared in lower case (and stored so)."""
    reasons = reasons or {}
    routed: dict[tuple[int, str], _Routed] = {}
    as_of: dict[int, dt.date] = {}
    for change in changes:
        if not actionable(change):
            continue
        as_of[change.run_id] = change.as_of
        for recipient, names in routing.recipient_routes(change).items():
            r = routed.setdefault((change.run_id, recipient.lower()), _Routed())
            r.changes.append(change)
            r.routes.extend(n for n in names if n not in r.routes)
    digests = []
    for (run_id, recipient), r in sorted(routed.items()):
        by_signal: dict[int, list[SignalChange]] = {}
        for c in r.changes:
            by_signal.setdefault(c.signal_id, []).append(c)
        items = sorted((_item(cs, reasons) for cs in by_signal.values()), key=DigestItem.sort_key)
        findings = group_findings(items, routing.event_groups)
        digests.append(Digest(run_id=run_id, as_of=as_of[run_id], recipient=recipient,
                              findings=tuple(findings), routes=tuple(r.routes)))
    return digests


def brand_of(product: str, products: ProductDictionary | None) -> str | None:
    """The product's brand name: the first of its spellings in products.yaml that is a capitalised word
    (Kymriah, Yescarta); None when it has none (a code, an unmapped drug)."""
    if products is None:
        return None
    spec = products.products.get(product)
    if not spec:
        return None
    for spelling in spec.get("spellings", []) or []:  # type: ignore[attr-defined]
        if _BRAND.match(str(spelling)):
            return str(spelling)
    return None


def product_display(product: str, products: ProductDictionary | None) -> str:
    """'Yescarta (axicabtagene ciloleucel)', or the INN alone when it has no brand."""
    brand = brand_of(product, products)
    return f"{brand} ({product})" if brand else product


def short_product(product: str, products: ProductDictionary | None) -> str:
    """The brand, or the INN."""
    return brand_of(product, products) or product
