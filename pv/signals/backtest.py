"""Backtest: replay as-of runs and report when the service would have raised each signal, when it would have
recommended a label update, and when the label actually changed (the lead time).

The replay uses the real registry code (:func:`pv.signals.evaluation.evaluate_run`) on a scratch in-memory
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

from pv.analysis.results import results_frame
from pv.analysis.runs import request_run, succeeded_run
from pv.analysis.stages import execute_run
from pv.errors import InputError, UnreadableFileError
from pv.models.base import Base
from pv.models.signals import Signal, SignalAudit, SignalMeasure
from pv.normalise import EventGroups, ProductDictionary, default_products, normalise_pt
from pv.periods import Every, Quarter, as_of_dates
from pv.signals.evaluation import IncidenceHook, evaluate_run
from pv.signals.labels import LabelIndex
from pv.signals.rules import RuleSet, select_result_set

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


def run_pipeline_producer(session: Session, *, scope: str = "all") -> Producer:
    """A producer of the analysis run of each as-of date, computed in this process when not yet done."""

    def produce(as_of: dt.date) -> tuple[int, pd.DataFrame]:
        run, compute = request_run(session, as_of, scope=scope)
        if compute:
            execute_run(session, run.id)
        run = succeeded_run(session, run.id, f"the backtest as of {as_of}")
        return run.id, results_frame(session, run.id)

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


@dataclass(frozen=True)
class Opening:
    """When a replayed signal was first detected and when it was opened: its earliest ``signal_audit`` row
    with ``to_status`` 'new' (None when it never was, e.g. a finding only tracked)."""

    product: str
    event: str
    level: str
    first_detected: dt.date
    opened: dt.date | None


def openings(session: Session) -> list[Opening]:
    """Every signal of a registry with its first detection and its opening (earliest audit row to 'new')."""
    opened: dict[int, dt.date] = {}
    for signal_id, day in session.execute(
            select(SignalAudit.signal_id, SignalAudit.as_of).where(SignalAudit.to_status == "new")):
        if day is not None and (signal_id not in opened or day < opened[signal_id]):
            opened[signal_id] = day
    return [Opening(s.product, s.event, s.level, s.first_detected, opened.get(s.id))
            for s in session.scalars(select(Signal).order_by(Signal.id))]


def replay_openings(
    producer: Producer,
    dates: Iterable[dt.date],
    *,
    rules: RuleSet,
    labels: LabelIndex,
    incidence: IncidenceHook | None = None,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
) -> list[Opening]:
    """Replay the registry over ``dates`` (in order) on a scratch in-memory database and return, for every
    signal it created, when it was first detected and opened. Nothing is written to the live store."""
    scratch = _scratch_session()
    try:
        for i, as_of in enumerate(sorted(dates), start=1):
            produced = producer(as_of)
            run_id, results = produced if isinstance(produced, tuple) else (i, produced)
            evaluate_run(scratch, run_id=run_id, as_of=as_of, results=results, rules=rules, labels=labels,
                         incidence=incidence, groups=groups, products=products)
            scratch.commit()
        return openings(scratch)
    finally:
        bind = scratch.get_bind()
        scratch.close()
        bind.dispose()  # type: ignore[union-attr]


PairKey = tuple[str, str, str]  # (product case-folded, event as the registry keys it, level)


def pair_key(product: str, event: str, level: str) -> PairKey:
    """The key of a pair in :func:`operating_characteristics`: product case-folded, PT normalised."""
    return (str(product).casefold(), normalise_pt(event) if level == "pt" else str(event), str(level))


@dataclass(frozen=True)
class OperatingCharacteristics:
    """How a rule set did on simulated data with a known truth (docs/signals.md, "Threshold profiles").

    ``injected``: the injected signals judged by the rules with at least ``min_injected_cases`` cases at the last
    as-of date, with the days from their start to their opening (None: never opened). ``emerging``: the same
    for the injected pairs of the emerging event (T-cell lymphoma). ``quiet``: the judged pairs whose true
    reporting ratio is <= 1 (and the null controls) with at least ``min_quiet_cases`` cases at the last date,
    and which of them were ever opened; ``null_controls``: the scenario's null controls among them.
    """

    injected: dict[PairKey, int | None]
    emerging: dict[PairKey, int | None]
    quiet: int
    quiet_opened: list[PairKey]
    null_controls: int
    null_controls_opened: int

    @property
    def injected_opened(self) -> int:
        return sum(d is not None for d in self.injected.values())

    @property
    def injected_share(self) -> float:
        return self.injected_opened / len(self.injected) if self.injected else float("nan")

    @property
    def quiet_share(self) -> float:
        return len(self.quiet_opened) / self.quiet if self.quiet else float("nan")

    @property
    def emerging_first(self) -> int | None:
        """Days from the start of the emerging event to the opening of its first injected pair."""
        days = [d for d in self.emerging.values() if d is not None]
        return min(days) if days else None

    def emerging_within(self, days: int, *, every: bool = False) -> bool:
        """The emerging signal was opened within ``days`` of its start: its first injected pair (the signal is
        one event across the products that share it), or with ``every`` each of its pairs."""
        if every:
            return bool(self.emerging) and all(d is not None and d <= days for d in self.emerging.values())
        first = self.emerging_first
        return first is not None and first <= days


def operating_characteristics(
    openings: Iterable[Opening],
    *,
    truth: Any,
    ratios: dict[PairKey, float],
    last_results: pd.DataFrame,
    rules: RuleSet,
    products: ProductDictionary | None = None,
    emerging_event: str = "T-cell lymphoma",
    min_injected_cases: int = 5,
    min_quiet_cases: int = 3,
) -> OperatingCharacteristics:
    """Score a replay against the simulator's truth (:class:`pv.simulate.truth.Truth`) and true ratios
    (``ratios``: :func:`pair_key` -> true reporting ratio, e.g. from ``truth_ratios.csv``). Case counts are the
    unstratified ``n`` of ``last_results`` (the run of the last as-of date); only the products the rules judge
    (``detection.products``) and events they do not exclude count."""
    spec = rules.detection.products
    judged = (None if spec == "all" else
              {p.casefold() for p in ((products or default_products()).products if spec == "dictionary" else spec)})
    excluded = {normalise_pt(e) for e in rules.detection.exclude_events}

    def in_scope(key: PairKey) -> bool:
        return (judged is None or key[0] in judged) and not (key[2] == "pt" and key[1] in excluded)

    frame = select_result_set(last_results, "unstratified")
    cases = {pair_key(p, e, lv): float(n) for p, e, lv, n in
             frame[["product", "event", "level", "n"]].itertuples(index=False)}
    opened = {pair_key(o.product, o.event, o.level): o.opened for o in openings if o.opened is not None}
    injected: dict[PairKey, int | None] = {}
    emerging: dict[PairKey, int | None] = {}
    nulls = [pair_key(r.product, r.event, r.level) for r in truth.null_controls]
    for r in truth.signals:
        key = pair_key(r.product, r.event, r.level)
        if not in_scope(key) or cases.get(key, 0) < min_injected_cases:
            continue
        start = Quarter.parse(r.start_quarter).start
        day = opened.get(key)
        injected[key] = (day - start).days if day is not None else None
        if key[1] == pair_key("", emerging_event, r.level)[1]:
            emerging[key] = injected[key]
    quiet = [k for k, ratio in ratios.items()
             if ratio <= 1 and in_scope(k) and cases.get(k, 0) >= min_quiet_cases]
    quiet += [k for k in nulls if k not in set(quiet) and in_scope(k) and cases.get(k, 0) >= min_quiet_cases]
    quiet_opened = sorted(k for k in quiet if k in opened)
    quiet_set = set(quiet)
    return OperatingCharacteristics(
        injected=injected, emerging=emerging, quiet=len(quiet), quiet_opened=quiet_opened,
        null_controls=sum(k in quiet_set for k in nulls),
        null_controls_opened=sum(k in quiet_set and k in opened for k in nulls),
    )
