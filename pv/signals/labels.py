"""The label registry: which events are on which product's label, per jurisdiction, from which date.

``config/labels.yaml`` seeds the ``labels`` table (:func:`seed_labels`, automatic when the table is empty; on an
existing store it adds the missing entries, and :func:`refresh_seeded` brings the source, note and check mark of
seeded entries up to date);
the table is then edited with :func:`add_label` (``pv labels add``), every change kept in the append-only
``label_audit`` trail. :class:`LabelIndex` answers "is this event on the label in force at date D?" per
jurisdiction: an event is labelled when an entry in force names the PT itself, a group containing the PT, the
group itself, or a group containing that group (its terms are a superset).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.config import config_path, load_yaml
from pv.errors import ConfigError, InputError
from pv.models.signals import Label, LabelAudit
from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products, drug_key
from pv.normalise import normalise_pt as _normalise_pt
from pv.signals.rules import JURISDICTIONS, SECTIONS, Jurisdiction, Section


class LabelSeed(BaseModel):
    """One entry of config/labels.yaml (several products and events expand to one row each)."""

    model_config = ConfigDict(extra="forbid")

    products: list[str] = Field(min_length=1)
    jurisdiction: Jurisdiction
    section: Section
    events: list[str] = Field(min_length=1)
    effective_date: dt.date
    end_date: dt.date | None = None
    source: str | None = None
    note: str | None = None
    check: bool = False

    @model_validator(mode="before")
    @classmethod
    def _singulars(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "product" in data:
                data.setdefault("products", [data.pop("product")])
            if "event" in data:
                data.setdefault("events", [data.pop("event")])
        return data

    @model_validator(mode="after")
    def _dates(self) -> LabelSeed:
        if self.end_date is not None and self.end_date <= self.effective_date:
            raise ValueError("end_date must be after effective_date")
        return self


def canonical_product(name: str, products: ProductDictionary | None = None) -> str:
    """The product key used in run results: the INN when the dictionary knows the name, else the drug key."""
    products = products or default_products()
    return products.match(name) or drug_key(name)


def canonical_event(event: str, groups: EventGroups | None = None) -> tuple[str, str]:
    """(event, level): a group name stays a group; anything else is a PT in its normalised form."""
    groups = groups or default_event_groups()
    name = event.strip()
    if name in groups.groups:
        return name, "group"
    key = _normalise_pt(name)
    if not key:
        raise InputError("empty event", field="event")
    return key, "pt"


def load_seed(path: str | Path | None = None) -> list[LabelSeed]:
    path = Path(path) if path else config_path("labels.yaml")
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        raise ConfigError(f"{path}: expected a list under 'labels'")
    seeds = []
    for i, entry in enumerate(data["labels"]):
        try:
            seeds.append(LabelSeed.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{path}: labels[{i}]: {problems}") from exc
    return seeds


def _entry_dict(label: Label) -> dict[str, Any]:
    return {
        "product": label.product,
        "jurisdiction": label.jurisdiction,
        "event": label.event,
        "level": label.level,
        "section": label.section,
        "effective_date": label.effective_date.isoformat(),
        "end_date": label.end_date.isoformat() if label.end_date else None,
        "source": label.source,
        "note": label.note,
        "check": label.check,
    }


def _existing(session: Session, product: str, jurisdiction: str, event: str, section: str,
              effective_date: dt.date) -> Label | None:
    return session.scalars(
        select(Label).where(
            Label.product == product, Label.jurisdiction == jurisdiction, Label.event == event,
            Label.section == section, Label.effective_date == effective_date,
        )
    ).first()


def _insert(session: Session, *, product: str, jurisdiction: str, event: str, level: str, section: str,
            effective_date: dt.date, end_date: dt.date | None, source: str | None, note: str | None,
            check: bool, by: str, action: str, reason: str) -> Label:
    label = Label(
        product=product, jurisdiction=jurisdiction, event=event, level=level, section=section,
        effective_date=effective_date, end_date=end_date, source=source, note=note, check=check,
        created_by=by,
    )
    session.add(label)
    session.flush()
    session.add(LabelAudit(label_id=label.id, by=by, action=action, reason=reason, entry=_entry_dict(label)))
    return label


def seed_labels(session: Session, path: str | Path | None = None, *, by: str = "seed",
                groups: EventGroups | None = None, products: ProductDictionary | None = None) -> int:
    """Insert the entries of config/labels.yaml not yet in the table; returns how many were added."""
    groups = groups or default_event_groups()
    products = products or default_products()
    source_file = str(path or config_path("labels.yaml"))
    added = 0
    for seed in load_seed(path):
        for raw_product in seed.products:
            product = canonical_product(raw_product, products)
            for raw_event in seed.events:
                event, level = canonical_event(raw_event, groups)
                if _existing(session, product, seed.jurisdiction, event, seed.section, seed.effective_date):
                    continue
                _insert(
                    session, product=product, jurisdiction=seed.jurisdiction, event=event, level=level,
                    section=seed.section, effective_date=seed.effective_date, end_date=seed.end_date,
                    source=seed.source, note=seed.note, check=seed.check, by=by, action="seeded",
                    reason=f"seeded from {source_file}",
                )
                added += 1
    return added


def refresh_seeded(session: Session, path: str | Path | None = None, *, by: str = "seed",
                   groups: EventGroups | None = None, products: ProductDictionary | None = None) -> int:
    """Bring the source, note and check mark of entries that came from a seed up to date with the seed file.

    Only entries first recorded by a seed (audit action ``seeded``) are touched, and only those three descriptive
    fields (never the product, event, section or dates, which decide classification): an entry marked unverified
    in the seed becomes unverified in the store. Each change is appended to label_audit (``reseeded``, with the
    fields changed). Returns how many entries changed. The caller commits.
    """
    groups = groups or default_event_groups()
    products = products or default_products()
    source_file = str(path or config_path("labels.yaml"))
    seeded_ids = set(session.scalars(select(LabelAudit.label_id).where(LabelAudit.action == "seeded")))
    changed = 0
    for seed in load_seed(path):
        for raw_product in seed.products:
            product = canonical_product(raw_product, products)
            for raw_event in seed.events:
                event, _ = canonical_event(raw_event, groups)
                label = _existing(session, product, seed.jurisdiction, event, seed.section, seed.effective_date)
                if label is None or label.id not in seeded_ids:
                    continue
                diffs = [f"{name}: {getattr(label, name)!r} -> {value!r}"
                         for name, value in (("source", seed.source), ("note", seed.note), ("check", seed.check))
                         if getattr(label, name) != value]
                if not diffs:
                    continue
                label.source, label.note, label.check = seed.source, seed.note, seed.check
                session.flush()
                session.add(LabelAudit(label_id=label.id, by=by, action="reseeded",
                                       reason=f"updated from {source_file}: " + "; ".join(diffs),
                                       entry=_entry_dict(label)))
                changed += 1
    return changed


def ensure_seeded(session: Session) -> int:
    """Seed the label registry from config/labels.yaml when the labels table is empty."""
    if session.scalar(select(func.count()).select_from(Label)):
        return 0
    return seed_labels(session)


@dataclass(frozen=True)
class LabelEntry:
    """One event on a product's label in one jurisdiction and section, from a date, as a person enters it
    (product by any spelling, event as a PT or an event group name)."""

    product: str
    jurisdiction: str
    event: str
    section: str
    effective_date: dt.date
    end_date: dt.date | None = None
    source: str | None = None
    note: str | None = None
    check: bool = False


def add_label(
    session: Session,
    entry: LabelEntry,
    *,
    by: str,
    reason: str,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
) -> Label:
    """Record one event on a product's label (who and why go to label_audit). The caller commits.

    Use :func:`pv.signals.commands.record_label_change` to also apply the change to flagged signals.
    """
    e = entry
    if e.jurisdiction not in JURISDICTIONS:
        raise InputError(f"unknown jurisdiction {e.jurisdiction!r}; expected one of {', '.join(JURISDICTIONS)}",
                         field="jurisdiction")
    if e.section not in SECTIONS:
        raise InputError(f"unknown section {e.section!r}; expected one of {', '.join(SECTIONS)}",
                         field="section")
    if not by.strip():
        raise InputError("a label change needs who recorded it", field="by")
    if not reason.strip():
        raise InputError("a label change needs a reason", field="reason")
    if e.end_date is not None and e.end_date <= e.effective_date:
        raise InputError("end date must be after the effective date", field="end_date")
    product_key = canonical_product(e.product, products)
    event_key, level = canonical_event(e.event, groups)
    if _existing(session, product_key, e.jurisdiction, event_key, e.section, e.effective_date):
        raise InputError(
            f"{product_key} / {e.jurisdiction} / {event_key} / {e.section} from {e.effective_date} "
            "is already recorded",
            field="event",
        )
    return _insert(
        session, product=product_key, jurisdiction=e.jurisdiction, event=event_key, level=level,
        section=e.section, effective_date=e.effective_date, end_date=e.end_date, source=e.source, note=e.note,
        check=e.check,
        by=by.strip(), action="added", reason=reason.strip(),
    )


@dataclass(frozen=True)
class LabelRow:
    product: str
    jurisdiction: str
    event: str
    level: str
    section: str
    effective_date: dt.date
    end_date: dt.date | None = None

    def in_force(self, as_of: dt.date) -> bool:
        return self.effective_date <= as_of and (self.end_date is None or as_of < self.end_date)


class LabelIndex:
    """Label look-ups for classification, built once per run from the labels table (or given rows)."""

    def __init__(
        self,
        rows: Iterable[LabelRow],
        *,
        groups: EventGroups | None = None,
        approvals: Mapping[str, Mapping[str, dt.date]] | None = None,
    ) -> None:
        self.groups = groups or default_event_groups()
        self.rows = list(rows)
        self.approvals = dict(approvals or {})
        self._by_product: dict[str, list[LabelRow]] = defaultdict(list)
        for row in self.rows:
            self._by_product[row.product].append(row)

    @classmethod
    def from_session(cls, session: Session, *, groups: EventGroups | None = None,
                     products: ProductDictionary | None = None, seed: bool = True) -> LabelIndex:
        if seed:
            ensure_seeded(session)
        rows = [
            LabelRow(r.product, r.jurisdiction, r.event, r.level, r.section, r.effective_date, r.end_date)
            for r in session.scalars(select(Label))
        ]
        return cls(rows, groups=groups, approvals=product_approvals(products))

    def covering_keys(self, event: str, level: str) -> set[tuple[str, str]]:
        """(level, event) keys whose presence on a label makes ``event`` labelled."""
        keys = {(level, event)}
        if level == "pt":
            keys |= {("group", g) for g, terms in self.groups.groups.items() if event in terms}
        else:
            terms = self.groups.groups.get(event, frozenset())
            if terms:
                keys |= {("group", g) for g, other in self.groups.groups.items() if terms <= other}
        return keys

    def judged_jurisdictions(self, product: str, as_of: dt.date, jurisdictions: Sequence[str]) -> list[str]:
        """Jurisdictions where the product is approved or has a label entry in force at ``as_of``."""
        approved = self.approvals.get(product, {})
        out = []
        for j in jurisdictions:
            if (j in approved and approved[j] <= as_of) or any(
                r.jurisdiction == j and r.in_force(as_of) for r in self._by_product.get(product, ())
            ):
                out.append(j)
        return out

    def classify(self, product: str, event: str, level: str, as_of: dt.date, *,
                 jurisdictions: Sequence[str] = JURISDICTIONS,
                 sections: Sequence[str] = SECTIONS,
                 required: Mapping[str, str] | None = None,
                 highest: Mapping[str, str] | None = None) -> dict[str, bool]:
        """jurisdiction -> labelled, for the jurisdictions where the product is judged at ``as_of``.

        ``required``: event group -> the label section a risk of that group belongs in; an entry in a lower
        section does not make it labelled (e.g. a T-cell malignancy mentioned under Warnings and Precautions,
        when it belongs in a boxed warning). ``highest``: jurisdiction -> the highest section its labels have
        (an EU SmPC has no boxed warning), which caps the requirement there.
        """
        keys = self.covering_keys(event, level)
        need = self.required_section(event, level, required or {})
        result = {}
        for j in self.judged_jurisdictions(product, as_of, jurisdictions):
            enough = _at_least(need, (highest or {}).get(j))
            result[j] = any(
                r.jurisdiction == j and r.section in sections and r.section in enough and r.in_force(as_of)
                and (r.level, r.event) in keys
                for r in self._by_product.get(product, ())
            )
        return result

    def required_section(self, event: str, level: str, required: Mapping[str, str]) -> str | None:
        """The highest section ``required`` asks of the event: of its own group or of a group holding it (a PT
        of ``malignancy_t_cell``, or a group within it); a broader group (``secondary_malignancy``) is not held
        to what one of its parts needs."""
        if not required:
            return None
        asked = [required[g] for lv, g in self.covering_keys(event, level) if lv == "group" and g in required]
        return min(asked, key=SECTIONS.index) if asked else None

    def covering_rows(self, product: str, event: str, level: str, *,
                      sections: Sequence[str] = SECTIONS) -> list[LabelRow]:
        keys = self.covering_keys(event, level)
        return sorted(
            (r for r in self._by_product.get(product, ())
             if (r.level, r.event) in keys and r.section in sections),
            key=lambda r: r.effective_date,
        )


def _at_least(need: str | None, cap: str | None) -> tuple[str, ...]:
    """The sections that cover a risk needing section ``need`` in a jurisdiction whose highest is ``cap``."""
    if need is None:
        return tuple(SECTIONS)
    if cap is not None and SECTIONS.index(cap) > SECTIONS.index(need):
        need = cap
    return SECTIONS[:SECTIONS.index(need) + 1]


def product_approvals(products: ProductDictionary | None = None) -> dict[str, dict[str, dt.date]]:
    """product -> jurisdiction -> first approval date, from config/products.yaml."""
    products = products or default_products()
    out: dict[str, dict[str, dt.date]] = {}
    for product, spec in products.products.items():
        approvals = spec.get("first_approvals") or {}
        if isinstance(approvals, Mapping):
            parsed = {}
            for j, d in approvals.items():
                if isinstance(d, dt.date):
                    parsed[str(j)] = d
                elif isinstance(d, str):
                    try:
                        parsed[str(j)] = dt.date.fromisoformat(d)
                    except ValueError as exc:
                        raise ConfigError(f"products.yaml: {product}: bad approval date {d!r}") from exc
            out[product] = parsed
    return out


def list_labels(session: Session, *, product: str | None = None, jurisdiction: str | None = None,
                as_of: dt.date | None = None) -> list[Label]:
    stmt = select(Label)
    if product:
        stmt = stmt.where(Label.product == canonical_product(product))
    if jurisdiction:
        stmt = stmt.where(Label.jurisdiction == jurisdiction)
    rows = list(session.scalars(stmt.order_by(Label.product, Label.jurisdiction, Label.effective_date,
                                                Label.section, Label.event)))
    if as_of is not None:
        rows = [r for r in rows if r.effective_date <= as_of and (r.end_date is None or as_of < r.end_date)]
    return rows


def label_history(session: Session, label_id: int) -> list[LabelAudit]:
    stmt = select(LabelAudit).where(LabelAudit.label_id == label_id).order_by(LabelAudit.id)
    return list(session.scalars(stmt))


def label_as_dict(label: Label) -> dict[str, Any]:
    return {"id": label.id, **_entry_dict(label), "created_by": label.created_by,
            "created_at": label.created_at.isoformat() if label.created_at else None}
