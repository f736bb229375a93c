"""The case store: source files, case versions, cases, drugs, reactions, indications, quarantine.

Every version of every case is kept (``case_versions``) with its own drugs, reactions and indications, so
an analysis can be replayed as of any date: it uses, per case, the version of highest precedence received by
then. ``cases`` points at the current version (the one of highest ``CaseVersion.precedence``) and carries
its demographics for quick queries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
from sqlalchemy.orm import Mapped, mapped_column

from pv.models.base import Base

SERIOUS_OUTCOMES = ("DE", "LT", "HO", "DS", "CA", "RI", "OT")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SourceFile(Base):
    """One loaded file or batch (a FAERS quarter, an E2B file, a CSV) with its provenance."""

    __tablename__ = "source_files"
    __table_args__ = (UniqueConstraint("kind", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # faers, aers, e2b, csv, cohort
    name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    quarter: Mapped[str | None] = mapped_column(String(6))  # e.g. 2017Q2
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    versions_loaded: Mapped[int] = mapped_column(Integer, default=0)
    cases_added: Mapped[int] = mapped_column(Integer, default=0)
    cases_updated: Mapped[int] = mapped_column(Integer, default=0)
    cases_deleted: Mapped[int] = mapped_column(Integer, default=0)
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    # a corrected redelivery of the same quarter replaced what this file loaded (DeliveryReplacement says what)
    replaced_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CaseVersion(Base):
    """One version of a case as received (a FAERS primaryid, an AERS isr, an E2B message)."""

    __tablename__ = "case_versions"
    __table_args__ = (
        UniqueConstraint("case_key", "report_id"),
        Index("ix_case_versions_case_received", "case_key", "received_date"),
        Index("ix_case_versions_case_precedence", "case_key", "precedence"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_key: Mapped[str] = mapped_column(String(100), index=True)
    report_id: Mapped[str] = mapped_column(String(120))  # primaryid / isr / C.1.1#C.1.2
    version: Mapped[int] = mapped_column(Integer, default=1)
    # rank among the stored versions of the case (0 the lowest): see pv.ingest.store for the rule
    precedence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source_file_id: Mapped[int] = mapped_column(ForeignKey("source_files.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    initial_or_followup: Mapped[str | None] = mapped_column(String(1))  # I / F
    received_date: Mapped[dt.date | None] = mapped_column(Date)  # FAERS fda_dt, E2B C.1.5
    initial_received_date: Mapped[dt.date | None] = mapped_column(Date)  # FAERS init_fda_dt
    event_date: Mapped[dt.date | None] = mapped_column(Date)
    age_years: Mapped[float | None] = mapped_column(Float)
    age_group: Mapped[str | None] = mapped_column(String(16))
    sex: Mapped[str | None] = mapped_column(String(8))  # F / M / UNK
    weight_kg: Mapped[float | None] = mapped_column(Float)
    reporter_country: Mapped[str | None] = mapped_column(String(64))
    occurrence_country: Mapped[str | None] = mapped_column(String(64))
    report_type: Mapped[str | None] = mapped_column(String(16))
    died: Mapped[bool] = mapped_column(Boolean, default=False)
    life_threatening: Mapped[bool] = mapped_column(Boolean, default=False)
    hospitalised: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    congenital_anomaly: Mapped[bool] = mapped_column(Boolean, default=False)
    required_intervention: Mapped[bool] = mapped_column(Boolean, default=False)
    other_serious: Mapped[bool] = mapped_column(Boolean, default=False)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)


class Case(Base):
    """A case: its key, current version and that version's main facts (denormalised for queries)."""

    __tablename__ = "cases"

    case_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    current_version_id: Mapped[int] = mapped_column(ForeignKey("case_versions.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    initial_received_date: Mapped[dt.date | None] = mapped_column(Date)
    latest_received_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    event_date: Mapped[dt.date | None] = mapped_column(Date)
    age_years: Mapped[float | None] = mapped_column(Float)
    age_group: Mapped[str | None] = mapped_column(String(16))
    sex: Mapped[str | None] = mapped_column(String(8))
    weight_kg: Mapped[float | None] = mapped_column(Float)
    reporter_country: Mapped[str | None] = mapped_column(String(64))
    occurrence_country: Mapped[str | None] = mapped_column(String(64))
    serious: Mapped[bool] = mapped_column(Boolean, default=False)
    died: Mapped[bool] = mapped_column(Boolean, default=False)


class Drug(Base):
    """A drug of one case version, with the product it maps to (None when unmapped; kept verbatim)."""

    __tablename__ = "drugs"
    __table_args__ = (
        Index("ix_drugs_product_version", "product", "case_version_id"),
        Index("ix_drugs_verbatim_key", "drug_key", "case_version_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_version_id: Mapped[int] = mapped_column(
        ForeignKey("case_versions.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(2))  # PS SS C I
    drugname: Mapped[str] = mapped_column(Text)  # verbatim
    active_ingredient: Mapped[str | None] = mapped_column(Text)
    product: Mapped[str | None] = mapped_column(String(100))  # mapped INN from config/products.yaml
    drug_key: Mapped[str] = mapped_column(String(200))  # product if mapped, else normalised verbatim name
    route: Mapped[str | None] = mapped_column(String(100))
    dose_text: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)


class Reaction(Base):
    """A reaction (MedDRA PT) of one case version."""

    __tablename__ = "reactions"
    __table_args__ = (Index("ix_reactions_pt_version", "pt", "case_version_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_version_id: Mapped[int] = mapped_column(
        ForeignKey("case_versions.id", ondelete="CASCADE"), index=True
    )
    pt_verbatim: Mapped[str] = mapped_column(Text)
    pt: Mapped[str] = mapped_column(String(300))  # normalised: see pv.normalise.normalise_pt
    meddra_code: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))


class Indication(Base):
    """An indication of a drug of one case version."""

    __tablename__ = "indications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_version_id: Mapped[int] = mapped_column(
        ForeignKey("case_versions.id", ondelete="CASCADE"), index=True
    )
    drug_seq: Mapped[int | None] = mapped_column(Integer)
    term: Mapped[str] = mapped_column(Text)
    pt: Mapped[str] = mapped_column(String(300), index=True)


class DeliveryReplacement(Base):
    """The audit of a redelivery: a quarter loaded again from a corrected file replaced what the earlier file
    had loaded. ``summary``: versions before and now, in both, only before, only now; drugs, reactions and
    quarantined rows before and now; deletions withdrawn."""

    __tablename__ = "delivery_replacements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replaced_file_id: Mapped[int] = mapped_column(ForeignKey("source_files.id"), index=True)
    by_file_id: Mapped[int] = mapped_column(ForeignKey("source_files.id"), index=True)
    quarter: Mapped[str] = mapped_column(String(6))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeletedCase(Base):
    """A case key listed in a deletion file: removed with all its versions, and kept out of later loads."""

    __tablename__ = "deleted_cases"

    case_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    source_file_id: Mapped[int] = mapped_column(ForeignKey("source_files.id"))
    deleted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventGroupTerm(Base):
    """One PT of an event group, synced from config/event_groups.yaml (nested groups flattened)."""

    __tablename__ = "event_group_terms"

    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    pt: Mapped[str] = mapped_column(String(300), primary_key=True, index=True)


class Quarantine(Base):
    """A row that could not be loaded, with where it came from and why."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    source_file_id: Mapped[int | None] = mapped_column(ForeignKey("source_files.id"), index=True)
    file: Mapped[str] = mapped_column(String(500))  # member or file name
    line: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(100))
    raw: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    details: Mapped[dict | None] = mapped_column(JSON)
