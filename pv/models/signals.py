"""Signal registry, label registry and their append-only audit trails.

- ``signals``: one row per product x event x level (pt or group), with its GVP IX status, priority and the
  feedback-loop state (escalation, "label update recommended" flag, monitoring baseline).
- ``signal_measures``: the pair's measures in every evaluated run (the trend).
- ``signal_audit`` and ``label_audit``: append-only. No UPDATE or DELETE through the ORM (mapper events and a
  session hook on bulk statements raise :class:`~pv.errors.AuditTrailError`) nor through SQL (triggers created
  by migration 0004_signals on PostgreSQL and SQLite).
- ``signal_rule_snapshots``: the detection rules used for each run.
- ``labels``: per product and jurisdiction the events on the label, the section and the effective date.

``run_id`` columns are plain indexed integers; the foreign key to ``runs`` is added when runs land on main.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pv.models.append_only import append_only
from pv.models.base import Base
from pv.models.casestore import utcnow
from pv.models.measures import MeasureColumns

AUDIT_TABLES = ("signal_audit", "label_audit")


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("product", "event", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product: Mapped[str] = mapped_column(String(200), index=True)
    event: Mapped[str] = mapped_column(String(300))  # normalised PT, or event group name
    level: Mapped[str] = mapped_column(String(8))  # pt | group
    status: Mapped[str] = mapped_column(String(24), index=True, default="new")
    first_detected: Mapped[dt.date] = mapped_column(Date)  # as-of date of the first run meeting the rules
    first_run_id: Mapped[int] = mapped_column(Integer, index=True)
    last_run_id: Mapped[int] = mapped_column(Integer, index=True)  # last run that measured the pair
    last_as_of: Mapped[dt.date] = mapped_column(Date)
    last_met_as_of: Mapped[dt.date | None] = mapped_column(Date)  # last run whose rules it met
    priority: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    strength: Mapped[float] = mapped_column(Float, default=0.0)
    labelled: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)  # jurisdiction -> on the label
    consecutive_unlabelled: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[dt.date | None] = mapped_column(Date)
    label_update_recommended: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    label_update_since: Mapped[dt.date | None] = mapped_column(Date)
    label_update_jurisdictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    monitoring_since: Mapped[dt.date | None] = mapped_column(Date)
    monitoring_baseline: Mapped[float | None] = mapped_column(Float)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    # The opening rule and the evidence-following flags (migration 0014_signal_opening; docs/signals.md):
    opened_as_of: Mapped[dt.date | None] = mapped_column(Date)  # as-of date it opened (tracked -> new)
    consecutive_met: Mapped[int] = mapped_column(Integer, default=0)  # consecutive runs meeting the rules
    consecutive_not_met: Mapped[int] = mapped_column(Integer, default=0)  # ...not meeting them, or not measured
    tracked_baseline: Mapped[float | None] = mapped_column(Float)  # reopening measure (EB05) when first tracked
    cases_checked: Mapped[float | None] = mapped_column(Float)  # n at the feedback loop's last decision
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    measures: Mapped[list[SignalMeasure]] = relationship(
        back_populates="signal", order_by="SignalMeasure.as_of", viewonly=True
    )


class SignalMeasure(MeasureColumns, Base):
    __tablename__ = "signal_measures"
    __table_args__ = (UniqueConstraint("signal_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), index=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    stratified: Mapped[bool] = mapped_column(Boolean, default=False)
    meets_rules: Mapped[bool] = mapped_column(Boolean)
    criteria_met: Mapped[list[str]] = mapped_column(JSON, default=list)
    n: Mapped[float | None] = mapped_column(Float)
    expected: Mapped[float | None] = mapped_column(Float)
    n_serious: Mapped[float | None] = mapped_column(Float)
    n_deaths: Mapped[float | None] = mapped_column(Float)
    labelled: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    priority: Mapped[float] = mapped_column(Float, default=0.0)

    signal: Mapped[Signal] = relationship(back_populates="measures")


class SignalAudit(Base):
    """Append-only: every status change and feedback action on a signal, with who, when and why."""

    __tablename__ = "signal_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(String(100))
    # created, opened, transition, escalated, label_update_recommended, label_update_cleared,
    # label_update_withdrawn
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    as_of: Mapped[dt.date | None] = mapped_column(Date)


class SignalRuleSnapshot(Base):
    """The detection rules a run was evaluated with."""

    __tablename__ = "signal_rule_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, unique=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    evaluated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Label(Base):
    """One event on one product's label in one jurisdiction, in force from effective_date (to end_date)."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("product", "jurisdiction", "event", "section", "effective_date"),
        Index("ix_labels_product_jurisdiction", "product", "jurisdiction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(8))  # FDA | NMPA | EMA
    event: Mapped[str] = mapped_column(String(300))  # normalised PT or event group name
    level: Mapped[str] = mapped_column(String(8))  # pt | group
    section: Mapped[str] = mapped_column(String(32))
    effective_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    check: Mapped[bool] = mapped_column(Boolean, default=False)  # fact from a secondary source: verify
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class LabelAudit(Base):
    """Append-only: every change to the label registry (seeded, added) with who, when and why."""

    __tablename__ = "label_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))  # seeded | added
    reason: Mapped[str] = mapped_column(Text)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)  # the label row as recorded


append_only(SignalAudit, LabelAudit)


__all__ = ["Label", "LabelAudit", "Signal", "SignalAudit", "SignalMeasure", "SignalRuleSnapshot"]
