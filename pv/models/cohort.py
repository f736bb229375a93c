"""The cohort store: patient-level follow-up after CAR-T infusion (real-world cohorts, registries, trials).

One row per patient (``cohort_patients``) with infusion date, baseline facts and the end of follow-up (death
date or last follow-up date), and one row per event (``cohort_events``: the first occurrence of an event type,
such as crs, icans, hbv_reactivation, malignancy_t_cell, malignancy_myeloid, malignancy_other; types are the
event group names of config/event_groups.yaml, so nested groups such as secondary_malignancy select them).
A patient id is unique across the store: loading a newer file with the same patient replaces that patient.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pv.models.base import Base


class CohortPatient(Base):
    """A cohort patient: infusion, baseline facts and follow-up end."""

    __tablename__ = "cohort_patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(100), unique=True)
    source_file_id: Mapped[int] = mapped_column(ForeignKey("source_files.id"), index=True)
    source_line: Mapped[int | None] = mapped_column(Integer)
    product: Mapped[str | None] = mapped_column(String(100), index=True)  # mapped INN (None: unmapped)
    product_verbatim: Mapped[str | None] = mapped_column(Text)
    disease: Mapped[str | None] = mapped_column(String(200))
    infusion_date: Mapped[dt.date] = mapped_column(Date)
    age_years: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(8))  # F / M / UNK
    hbv_status: Mapped[str | None] = mapped_column(String(32))
    prior_lines: Mapped[int | None] = mapped_column(Integer)
    death_date: Mapped[dt.date | None] = mapped_column(Date)
    last_followup_date: Mapped[dt.date | None] = mapped_column(Date)

    events: Mapped[list[CohortEvent]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True
    )


class CohortEvent(Base):
    """An event of a cohort patient (first occurrence of its type) with its date."""

    __tablename__ = "cohort_events"
    __table_args__ = (Index("ix_cohort_events_type_patient", "event_type", "patient_pk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("cohort_patients.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    event_date: Mapped[dt.date] = mapped_column(Date)

    patient: Mapped[CohortPatient] = relationship(back_populates="events")
