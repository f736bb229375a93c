"""Backtest: replay as-of runs and report when the service would have raised each signal, when it would have
recommended a label update, and when the label actually changed (the lead time).

The replay uses the real registry code (:func:`pv.signals.registry.evaluate_run`) on a scratch in-memory
database, so the live registry is untouched; the labels come from the live label registry (the label in force
at each as-of date decides labelled/unlabelled, exactly as in production). Results for each as-of date come
from a *producer*: any callable ``as_of -> DataFrame`` (or ``-> (run_id, DataFrame)``), e.g. the analysis run
pipeline, or :func:`results_from_folder` for results saved as files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from pv.errors import InputError, UnreadableFileError
from pv.models.base import Base
from pv.models.signals import Signal, SignalMeasure
from pv.normalise import EventGroups, ProductDictionary
from pv.periods import Every, as_of_dates
from pv.signals.labels import LabelIndex
from pv.signals.registry import IncidenceHook, evaluate_run
from pv.signals.rules import RuleSet

Producer = Callable[[dt.date], "pd.DataFrame | tuple[int, pd.DataFrame]"]


@dataclass(frozen=True)
class BacktestRow:
    product: str
    event: str
    level: str
    raised: dt.date  # first as-of date meeting the rules
    label_update_recommended: dt.date | None
    recommended_in: tuple[str, ...]
    label_changed: dt.date | None  # earliest label entry covering the event, in force after it was raised
    label_changed_in: str | None
    flag_cleared: dt.date | None
    status: str
    last_eb05: float | None
    lead_days_raised: int | None  # label_changed - raised
    lead_days_recommended: int | None  # label_changed - label_update_recommended

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, dt.date):
                out[k] = v.isoformat()
            elif isinstance(v, tuple):
                out[k] = list(v)
        return out


@dataclass(frozen=True)
class BacktestReport:
    as_of: list[dt.date]
    rows: list[BacktestRow] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.as_dict() for r in self.rows])

    def row(self, product: str, event: str, level: str = "pt") -> BacktestRow:
        for r in self.rows:
            if (r.product, r.event, r.level) == (product, event, level):
                return r
        raise KeyError((product, event, level))


def results_from_folder(folder: str | Path) -> Producer:
    """A producer reading ``<folder>/<YYYY-MM-DD>.csv`` (or ``.parquet``) for each as-of date."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UnreadableFileError(f"results folder {folder} does not exist", file=str(folder))

    def produce(as_of: dt.date) -> pd.DataFrame:
        for suffix in (".parquet", ".csv"):
            path = folder / f"{as_of.isoformat()}{suffix}"
            if path.exists():
                try:
                    if suffix == ".csv":
                        return pd.read_csv(path)
                    return pd.read_parquet(path)
                except Exception as exc:  # pandas raises many types for unreadable files
                    raise UnreadableFileError(f"cannot read run results: {exc}", file=str(path)) from exc
        raise InputError(f"no results for as-of {as_of}: expected {as_of.isoformat()}.csv or .parquet",
                         file=str(folder))

    return produce


def _scratch_session() -> Session:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)()


def backtest(
    session: Session,
    producer: Producer,
    *,
    start: dt.date,
    end: dt.date,
    every: Every = "quarter",
    rules: RuleSet | None = None,
    labels: LabelIndex | None = None,
    incidence: IncidenceHook | None = None,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
    dates: Iterable[dt.date] | None = None,
) -> BacktestReport:
    """Replay runs at each as-of date in [start, end] and report raise / recommend / label-change dates.

    ``session`` is only read (the label registry; seeded from config/labels.yaml if empty).
    """
    rules = rules or RuleSet.load()
    labels = labels or LabelIndex.from_session(session, groups=groups, products=products)
    when = sorted(dates) if dates is not None else as_of_dates(start, end, every)
    scratch = _scratch_session()
    recommended: dict[int, tuple[dt.date, tuple[str, ...]]] = {}
    cleared: dict[int, dt.date] = {}
    unlabelled_at_raise: dict[int, tuple[str, ...]] = {}
    try:
        for i, as_of in enumerate(when, start=1):
            produced = producer(as_of)
            run_id, results = produced if isinstance(produced, tuple) else (i, produced)
            changes = evaluate_run(scratch, run_id=run_id, as_of=as_of, results=results, rules=rules,
                                   labels=labels, incidence=incidence, groups=groups, products=products)
            scratch.commit()
            for c in changes:
                if c.kind == "created":
                    unlabelled_at_raise[c.signal_id] = tuple(j for j, v in c.labelled.items() if not v)
                elif c.kind == "label_update_recommended" and c.signal_id not in recommended:
                    sig = scratch.get(Signal, c.signal_id)
                    juris = tuple(sig.label_update_jurisdictions) if sig is not None else ()
                    recommended[c.signal_id] = (as_of, juris)
                elif c.kind == "label_update_cleared" and c.signal_id not in cleared:
                    cleared[c.signal_id] = as_of
        rows = []
        ordered = select(Signal).order_by(Signal.first_detected, Signal.product, Signal.event)
        for sig in scratch.scalars(ordered):
            last = scratch.scalars(select(SignalMeasure).where(SignalMeasure.signal_id == sig.id)
                                   .order_by(SignalMeasure.as_of.desc())).first()
            rec = recommended.get(sig.id)
            gap = rec[1] if rec else unlabelled_at_raise.get(sig.id, ())
            change = None
            for r in labels.covering_rows(sig.product, sig.event, sig.level,
                                          sections=rules.feedback.labelled_sections):
                if r.jurisdiction in gap and r.effective_date > sig.first_detected:
                    change = r
                    break
            changed = change.effective_date if change else None
            rows.append(BacktestRow(
                product=sig.product, event=sig.event, level=sig.level, raised=sig.first_detected,
                label_update_recommended=rec[0] if rec else None, recommended_in=rec[1] if rec else (),
                label_changed=changed, label_changed_in=change.jurisdiction if change else None,
                flag_cleared=cleared.get(sig.id), status=sig.status,
                last_eb05=last.eb05 if last is not None else None,
                lead_days_raised=(changed - sig.first_detected).days if changed else None,
                lead_days_recommended=(changed - rec[0]).days if changed and rec else None,
            ))
    finally:
        bind = scratch.get_bind()
        scratch.close()
        bind.dispose()  # type: ignore[union-attr]
    rows.sort(key=lambda r: (r.label_update_recommended is None, r.raised, r.product, r.event))
    return BacktestReport(as_of=list(when), rows=rows)
