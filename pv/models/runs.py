"""Analysis runs and their immutable results.

A run is (as-of date, data scope, configuration): ``runs`` records its status, configuration snapshot and
hash, code version, counts, the fitted MGPS prior and any error; the same (as_of, scope, config_hash) is
computed once. ``run_results`` holds one row per product x event pair (PT or event group, unstratified or
stratified); ``run_trend`` the cumulative measures by quarter end for the pairs of interest. ``run_counts``
is the scratch count table a run's shard tasks read; it is emptied when the run finishes. Results never
change once the run has succeeded.
"""

from __future__ import annotations

import datetime as dt

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
from pv.models.measures import MeasureColumns

RUN_STATUSES = ("queued", "running", "succeeded", "failed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_BIGID = BigInteger().with_variant(Integer, "sqlite")


class Run(Base):
    """One analysis run."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("as_of", "scope", "config_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    as_of: Mapped[dt.date] = mapped_column(Date)
    scope: Mapped[str] = mapped_column(String(64), default="all")
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    config: Mapped[dict] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(64))
    n_cases: Mapped[int | None] = mapped_column(Integer)
    n_rows: Mapped[int | None] = mapped_column(BigInteger)
    n_pairs: Mapped[int | None] = mapped_column(Integer)
    shards: Mapped[int] = mapped_column(Integer, default=1)
    # table ("pt:crude", "group:stratified"...) -> {alpha1, beta1, alpha2, beta2, p}
    hyperparameters: Mapped[dict | None] = mapped_column(JSON)
    loglik: Mapped[dict | None] = mapped_column(JSON)  # analysis -> log-likelihood of the fitted prior
    timings: Mapped[dict | None] = mapped_column(JSON)  # stage -> seconds
    error: Mapped[str | None] = mapped_column(Text)
    # who computes the run ("host:pid:start", the process that last claimed a stage) and until when that claim
    # holds: a run whose owner is gone or whose lease expired is recomputed by the next request (pv.analysis.runs)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RunResult(MeasureColumns, Base):
    """The measures of one product x event pair in one run."""

    __tablename__ = "run_results"
    __table_args__ = (
        UniqueConstraint("run_id", "level", "stratified", "product", "event"),
        Index("ix_run_results_product_event", "product", "event"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    shard: Mapped[int] = mapped_column(Integer)  # the shard task that wrote the row
    level: Mapped[str] = mapped_column(String(8))  # pt | group
    stratified: Mapped[bool] = mapped_column(Boolean)
    product: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(300))
    n: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    n_serious: Mapped[int] = mapped_column(Integer, default=0)
    n_deaths: Mapped[int] = mapped_column(Integer, default=0)


class RunTrend(MeasureColumns, Base):
    """Cumulative measures of one pair of interest at one quarter end up to the run's as-of date."""

    __tablename__ = "run_trend"
    __table_args__ = (UniqueConstraint("run_id", "level", "product", "event", "period_end"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(8))
    product: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(300))
    period_end: Mapped[dt.date] = mapped_column(Date)
    n: Mapped[int] = mapped_column(Integer)
    n_product: Mapped[int] = mapped_column(Integer)
    n_event: Mapped[int] = mapped_column(Integer)
    n_total: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)


class RunCount(Base):
    """Scratch count table of a running run (read by its shard tasks; emptied when the run ends)."""

    __tablename__ = "run_counts"
    __table_args__ = (Index("ix_run_counts_run_shard", "run_id", "shard"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    shard: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    stratified: Mapped[bool] = mapped_column(Boolean)
    product: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(300))
    n: Mapped[int] = mapped_column(Integer)
    n_product: Mapped[int] = mapped_column(Integer)
    n_event: Mapped[int] = mapped_column(Integer)
    n_total: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    n_serious: Mapped[int] = mapped_column(Integer, default=0)
    n_deaths: Mapped[int] = mapped_column(Integer, default=0)
