"""One product's labels side by side: FDA, NMPA and EMA at a date (``pv labels compare PRODUCT``).

Rows are the events named on any label entry of the product (any jurisdiction, any date) plus the events of its
open signals; per jurisdiction a cell says how the label in force at the date covers the event, decided exactly as
the feedback loop decides it (:class:`~pv.signals.labels.LabelIndex`: the PT, a group containing it, the group, or
a group containing that group, in one of ``feedback.labelled_sections``):

- ``labelled``: the strongest covering section (boxed warning, then warnings and precautions, then adverse
  reactions) with its effective date, the event of the covering entry when it is another one (``via``), and
  whether that entry is unverified (``check``);
- ``not_on_label``: judged there, and no entry in force covers the event;
- ``not_approved``: the product is not judged there at the date (not approved, no entry in force);
- ``not_judged``: the jurisdiction is not among ``feedback.jurisdictions``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.errors import InputError
from pv.models.signals import Label, Signal
from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products, drug_key
from pv.signals.labels import LabelIndex, LabelRow, ensure_seeded, product_approvals
from pv.signals.rules import JURISDICTIONS, SECTIONS, RuleSet
from pv.signals.states import OPEN_STATES

#: Cell statuses, in the words of the table.
LABELLED: Final = "labelled"
NOT_ON_LABEL: Final = "not_on_label"
NOT_APPROVED: Final = "not_approved"
NOT_JUDGED: Final = "not_judged"

SECTION_SHORT: Final[dict[str, str]] = {
    "boxed_warning": "boxed",
    "warnings_and_precautions": "W&P",
    "adverse_reactions": "AR",
}
_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(SECTIONS)}
UNVERIFIED_MARK: Final = "*"


@dataclass(frozen=True)
class CoveringEntry:
    """A label entry in force that covers the row's event."""

    id: int
    event: str
    level: str
    section: str
    effective_date: dt.date
    end_date: dt.date | None
    check: bool
    source: str | None
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "level": self.level, "section": self.section,
                "effective_date": self.effective_date.isoformat(),
                "end_date": self.end_date.isoformat() if self.end_date else None,
                "unverified": self.check, "source": self.source, "note": self.note}


@dataclass(frozen=True)
class CompareCell:
    jurisdiction: str
    status: str
    entries: tuple[CoveringEntry, ...] = ()  # strongest first
    first_approval: dt.date | None = None

    @property
    def main(self) -> CoveringEntry | None:
        return self.entries[0] if self.entries else None

    def via(self, event: str, level: str) -> str | None:
        m = self.main
        return m.event if m is not None and (m.event, m.level) != (event, level) else None

    def text(self, event: str, level: str) -> str:
        if self.status == NOT_JUDGED:
            return "not judged"
        if self.status == NOT_APPROVED:
            if self.first_approval is not None:
                return f"not approved (from {self.first_approval})"
            return "not approved"
        m = self.main
        if m is None:
            return "—"
        via = self.via(event, level)
        return (f"{SECTION_SHORT.get(m.section, m.section)} {m.effective_date}"
                + (f" via {via}" if via else "") + (f" {UNVERIFIED_MARK}" if m.check else ""))

    def as_dict(self, event: str, level: str) -> dict[str, Any]:
        m = self.main
        return {
            "status": self.status,
            "section": m.section if m else None,
            "effective_date": m.effective_date.isoformat() if m else None,
            "via": self.via(event, level),
            "unverified": m.check if m else None,
            "entries": [e.as_dict() for e in self.entries],
        }


@dataclass(frozen=True)
class CompareRow:
    event: str
    level: str
    name: str  # the group's label or the PT as spelled in the config
    on_label: bool  # named by a label entry of the product (else only by an open signal)
    signals: tuple[Signal, ...]
    cells: dict[str, CompareCell]

    def signal_text(self) -> str:
        return ", ".join(
            f"#{s.id} {s.status}" + (" flagged" if s.label_update_recommended else "") for s in self.signals)


@dataclass(frozen=True)
class LabelComparison:
    product: str
    as_of: dt.date
    jurisdictions: tuple[str, ...]
    judged: tuple[str, ...]  # feedback.jurisdictions
    approvals: dict[str, dt.date]
    rows: list[CompareRow] = field(default_factory=list)

    def table_rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.rows:
            d: dict[str, Any] = {"event": r.event, "level": r.level}
            for j in self.jurisdictions:
                d[j] = r.cells[j].text(r.event, r.level)
            d["signal"] = r.signal_text()
            out.append(d)
        return out

    def columns(self) -> tuple[str, ...]:
        return ("event", "level", *self.jurisdictions, "signal")

    def csv_rows(self) -> list[dict[str, Any]]:
        out = []
        for r in self.rows:
            d: dict[str, Any] = {"event": r.event, "level": r.level}
            for j in self.jurisdictions:
                c = r.cells[j].as_dict(r.event, r.level)
                d |= {f"{j}_status": c["status"], f"{j}_section": c["section"] or "",
                      f"{j}_effective_date": c["effective_date"] or "", f"{j}_via": c["via"] or "",
                      f"{j}_unverified": "" if c["unverified"] is None else ("yes" if c["unverified"] else "no")}
            d["signal"] = r.signal_text()
            out.append(d)
        return out

    def csv_columns(self) -> tuple[str, ...]:
        per = ("status", "section", "effective_date", "via", "unverified")
        return ("event", "level", *(f"{j}_{p}" for j in self.jurisdictions for p in per), "signal")

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "as_of": self.as_of.isoformat(),
            "jurisdictions": {
                j: {"judged": j in self.judged,
                    "first_approval": self.approvals[j].isoformat() if j in self.approvals else None}
                for j in self.jurisdictions
            },
            "rows": [
                {"event": r.event, "level": r.level, "name": r.name, "on_label": r.on_label,
                 "signals": [{"id": s.id, "status": s.status, "label_update_recommended": s.label_update_recommended}
                             for s in r.signals],
                 **{j: r.cells[j].as_dict(r.event, r.level) for j in self.jurisdictions}}
                for r in self.rows
            ],
        }


def resolve_product(session: Session, name: str, products: ProductDictionary | None = None) -> str:
    """The product key of any spelling (brand, Chinese brand, INN, code); a name the dictionary does not know is
    accepted only when the label registry or the signal registry has it. Else InputError naming the known ones."""
    products = products or default_products()
    hit = products.match(name)
    if hit:
        return hit
    key = drug_key(name)
    if key and (session.scalar(select(Label.id).where(Label.product == key).limit(1)) is not None
                or session.scalar(select(Signal.id).where(Signal.product == key).limit(1)) is not None):
        return key
    known = []
    for inn, spec in sorted(products.products.items()):
        spellings = spec.get("spellings")
        brand = spellings[0] if isinstance(spellings, list) and spellings else None
        known.append(f"{inn} ({brand})" if brand else inn)
    raise InputError(f"unknown product {name!r}; known products: {'; '.join(known)}", field="product")


def compare_labels(
    session: Session,
    product: str,
    *,
    as_of: dt.date | None = None,
    rules: RuleSet | None = None,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
) -> LabelComparison:
    """FDA, NMPA and EMA side by side for one product at ``as_of`` (default today); seeds an empty registry."""
    groups = groups or default_event_groups()
    products = products or default_products()
    rules = rules or RuleSet.load()
    when = as_of or dt.date.today()
    ensure_seeded(session)
    key = resolve_product(session, product, products)
    labels = list(session.scalars(select(Label).where(Label.product == key).order_by(Label.id)))
    approvals = product_approvals(products).get(key, {})
    index = LabelIndex(
        [LabelRow(r.product, r.jurisdiction, r.event, r.level, r.section, r.effective_date, r.end_date)
         for r in labels],
        groups=groups, approvals={key: approvals},
    )
    sections = list(rules.feedback.labelled_sections)
    judged_cfg = tuple(rules.feedback.jurisdictions)
    judged_now = set(index.judged_jurisdictions(key, when, JURISDICTIONS))
    signals = list(session.scalars(
        select(Signal).where(Signal.product == key, Signal.status.in_(sorted(OPEN_STATES))).order_by(Signal.id)))

    events: dict[tuple[str, str], bool] = {}
    for r in labels:
        events[(r.event, r.level)] = True
    for s in signals:
        events.setdefault((s.event, s.level), False)

    rows = []
    for (event, level), on_label in events.items():
        keys = index.covering_keys(event, level)
        cells: dict[str, CompareCell] = {}
        for j in JURISDICTIONS:
            approval = approvals.get(j)
            if j not in judged_cfg:
                cells[j] = CompareCell(j, NOT_JUDGED, first_approval=approval)
                continue
            if j not in judged_now:
                cells[j] = CompareCell(j, NOT_APPROVED, first_approval=approval)
                continue
            covering = sorted(
                (CoveringEntry(r.id, r.event, r.level, r.section, r.effective_date, r.end_date, r.check, r.source,
                               r.note)
                 for r in labels
                 if r.jurisdiction == j and r.section in sections and (r.level, r.event) in keys
                 and r.effective_date <= when and (r.end_date is None or when < r.end_date)),
                key=lambda e: (_RANK.get(e.section, len(_RANK)), (e.event, e.level) != (event, level),
                               e.effective_date, e.id),
            )
            cells[j] = CompareCell(j, LABELLED if covering else NOT_ON_LABEL, tuple(covering), approval)
        name = groups.labels.get(event, event) if level == "group" else groups.display.get(event, event)
        rows.append(CompareRow(event, level, name, on_label,
                               tuple(s for s in signals if (s.event, s.level) == (event, level)), cells))

    def order(row: CompareRow) -> tuple[int, int, str]:
        ranks = [_RANK.get(c.main.section, len(_RANK)) for c in row.cells.values() if c.main is not None]
        return (min(ranks) if ranks else len(_RANK), 0 if row.level == "group" else 1, row.event)

    rows.sort(key=order)
    return LabelComparison(product=key, as_of=when, jurisdictions=tuple(JURISDICTIONS), judged=judged_cfg,
                           approvals=dict(approvals), rows=rows)


def compare_text(comparison: LabelComparison, table: str) -> str:
    """The table of :meth:`LabelComparison.table_rows` with a heading (approvals) and the legend."""
    c = comparison
    approvals = ", ".join(
        f"{j} {c.approvals[j]}" if j in c.approvals else f"{j} -" for j in c.jurisdictions)
    head = f"labels of {c.product} in force at {c.as_of} (first approvals: {approvals})"
    legend = ("boxed = boxed warning, W&P = warnings and precautions (EU SmPC 4.4), AR = adverse reactions "
              "(SmPC 4.8); via = covered by that entry's group; — = not on the label\n"
              f"{UNVERIFIED_MARK} = unverified entry (check: verify before relying on it in a label-facing output)")
    return "\n".join([head, table, legend])
