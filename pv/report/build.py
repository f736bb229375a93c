"""Assembling the weekly report's data from the store: one succeeded run, the signal registry, the labels,
the cohort store and the provenance of the loaded files. The caller passes the session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.analysis.incidence import CENSORED, DEATH, analyse, cohort_codes, cohort_time_event
from pv.analysis.results import PAIR_VALUES, read_trend, results_frame
from pv.analysis.runs import succeeded_run
from pv.config import config_path, load_yaml
from pv.errors import ConfigError, InputError, NotFoundError
from pv.ingest.summary import store_summary
from pv.models import (
    Run,
    Signal,
    SignalAudit,
    SignalMeasure,
    SignalRuleSnapshot,
    SourceFile,
)
from pv.models.cohort import CohortPatient
from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products
from pv.report.data import EventSection, ReportData, SignalRow, SourceInfo
from pv.signals.states import OPEN_STATES

#: ``created`` (a finding now tracked) is not headline news: ``opened`` is.
HEADLINE_ACTIONS = ("opened", "escalated", "label_update_recommended", "reopened", "label_update_withdrawn")


def _previous_as_of(session: Session, run: Run) -> dt.date | None:
    """As-of date of the last run evaluated by the registry before this one: the previous report."""
    return session.scalar(
        select(func.max(SignalRuleSnapshot.as_of)).where(SignalRuleSnapshot.as_of < run.as_of,
                                                        SignalRuleSnapshot.run_id != run.id)
    )


def _measures(m: SignalMeasure | None) -> dict[str, float | None]:
    if m is None:
        return {}
    return {k: getattr(m, k) for k in PAIR_VALUES}


def event_label(event: str, level: str, groups: EventGroups) -> str:
    """How a report names an event: the group's label, or the PT as spelt in the configuration."""
    if level == "group":
        return groups.labels.get(event, event)
    shown = groups.display.get(event, event)
    return shown[:1].upper() + shown[1:]


def _signal_rows(session: Session, signals: list[Signal], run: Run, changes: dict[int, str],
                 groups: EventGroups) -> list[SignalRow]:
    ids = [s.id for s in signals]
    latest: dict[int, SignalMeasure] = {}
    if ids:
        for m in session.scalars(
            select(SignalMeasure).where(SignalMeasure.signal_id.in_(ids), SignalMeasure.as_of <= run.as_of)
            .order_by(SignalMeasure.signal_id, SignalMeasure.as_of, SignalMeasure.stratified.desc())
        ):
            latest[m.signal_id] = m  # last wins: latest as-of, unstratified preferred
    rows = [
        SignalRow(
            id=s.id, product=s.product, event=event_label(s.event, s.level, groups), level=s.level,
            status=s.status, priority=s.priority,
            first_detected=s.first_detected, measures=_measures(latest.get(s.id)), labelled=dict(s.labelled or {}),
            label_update_recommended=s.label_update_recommended, change=changes.get(s.id),
        )
        for s in signals
    ]
    return sorted(rows, key=lambda r: (-r.priority, r.product, r.event))


def _headline(session: Session, run: Run, since: dt.date | None, groups: EventGroups) -> dict[str, list[SignalRow]]:
    q = select(SignalAudit.signal_id, SignalAudit.action).where(
        SignalAudit.action.in_(HEADLINE_ACTIONS), SignalAudit.as_of <= run.as_of
    )
    if since is not None:
        q = q.where(SignalAudit.as_of > since)
    by_kind: dict[str, set[int]] = {}
    for signal_id, action in session.execute(q):
        by_kind.setdefault(action, set()).add(signal_id)
    out: dict[str, list[SignalRow]] = {}
    for kind, ids in by_kind.items():
        signals = list(session.scalars(select(Signal).where(Signal.id.in_(ids))))
        out[kind] = _signal_rows(session, signals, run, {i: kind for i in ids}, groups)
    return out


def _car_t(products: ProductDictionary) -> list[str]:
    return sorted(p for p in products.products if products.attribute(p, "class") == "car_t")


def events_of_interest(groups: EventGroups, path: Path | None = None) -> tuple[str, ...]:
    """The event groups the report shows with figures, in order (``events_of_interest`` in config/report.yaml)."""
    path = path or config_path("report.yaml")
    data = load_yaml(path) or {}
    events = data.get("events_of_interest") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ConfigError(f"{path}: events_of_interest must be a list of event group names")
    unknown = [e for e in events if e not in groups.groups]
    if unknown:
        raise ConfigError(f"{path}: events_of_interest names unknown event group(s) {', '.join(unknown)}; "
                          f"groups are defined in event_groups.yaml")
    return tuple(events)


def _cif(session: Session, group: str, groups: EventGroups) -> pd.DataFrame | None:
    if session.scalar(select(func.count(CohortPatient.id))) == 0:
        return None
    try:
        frame = cohort_time_event(session, group, groups, unit="years")
    except (NotFoundError, InputError):
        return None
    if not (frame["event"] == group).any():
        return None
    result = analyse(frame, "time", "event", event_of_interest=group, competing=[DEATH], censored=CENSORED,
                     group="product", known_codes=cohort_codes(group))
    rows = [
        {"group": g, **point}
        for g, events in result.result["groups"].items()
        for point in events.get(group, [])
    ]
    return pd.DataFrame(rows, columns=["group", "time", "estimate", "variance", "lower", "upper"])


def _section(session: Session, run: Run, group: str, groups: EventGroups, car_t: list[str],
             with_cohort: bool) -> EventSection:
    results = results_frame(session, run.id, level="group", stratified=False, event=group, products=car_t)
    if results.empty:
        forest = pd.DataFrame(columns=["product", "estimate", "lower", "upper", "n"])
        counts = pd.DataFrame(columns=["product", "cases", "serious", "non_serious", "deaths"])
    else:
        forest = results.rename(columns={"ebgm": "estimate", "eb05": "lower", "eb95": "upper"})[
            ["product", "estimate", "lower", "upper", "n"]]
        counts = pd.DataFrame({
            "product": results["product"], "cases": results["n"], "serious": results["n_serious"],
            "non_serious": results["n"] - results["n_serious"], "deaths": results["n_deaths"],
        }).sort_values("cases", ascending=False)
    trend = read_trend(session, run.id, level="group", event=group, products=car_t)
    trend = (trend.rename(columns={"period_end": "quarter", "eb05": "value"})[["quarter", "product", "value"]]
             if not trend.empty else pd.DataFrame(columns=["quarter", "product", "value"]))
    return EventSection(
        group=group, label=groups.labels.get(group, group), forest_measure="EBGM", forest=forest,
        trend_measure="EB05", trend=trend.dropna(subset=["value"]), counts=counts,
        cif=_cif(session, group, groups) if with_cohort else None,
    )


def build_report_data(
    session: Session,
    run_id: int,
    *,
    groups: EventGroups | None = None,
    products: ProductDictionary | None = None,
    events: tuple[str, ...] | None = None,
    generated_at: dt.datetime | None = None,
) -> ReportData:
    """Everything the weekly report shows for one succeeded run (``events``: the events of interest, by default
    those of config/report.yaml)."""
    groups = groups or default_event_groups()
    products = products or default_products()
    events = events if events is not None else events_of_interest(groups)
    run = succeeded_run(session, run_id, "a report")
    since = _previous_as_of(session, run)
    open_signals = list(session.scalars(select(Signal).where(Signal.status.in_(sorted(OPEN_STATES)),
                                                             Signal.first_detected <= run.as_of)))
    car_t = _car_t(products)
    with_cohort = bool(session.scalar(select(func.count(CohortPatient.id))))
    sources = [
        SourceInfo(name=f.name, kind=f.kind, quarter=f.quarter, sha256=f.sha256, loaded_at=f.loaded_at,
                   versions_loaded=f.versions_loaded, rows_quarantined=f.rows_quarantined)
        for f in session.scalars(select(SourceFile).order_by(SourceFile.quarter, SourceFile.name))
    ]
    snapshot = session.scalar(select(SignalRuleSnapshot).where(SignalRuleSnapshot.run_id == run.id))
    summary = store_summary(session)
    totals = {k: int(v) for k, v in summary.items() if isinstance(v, int)}
    config = run.config or {}
    parameters: dict[str, object] = {
        "as of": run.as_of, "scope": run.scope, "cases analysed": run.n_cases, "pairs": run.n_pairs,
        "code version": run.code_version,
        **{k: v for k, v in (config.get("analysis", config) or {}).items() if isinstance(v, str | int | float | list)},
        "MGPS hyperparameters": run.hyperparameters, "MGPS log-likelihood": run.loglik,
    }
    not_fitted = (run.parameters or {}).get("mgps_not_fitted")
    if not_fitted:  # tables whose EBGM, EB05 and EB95 are empty, and why
        parameters["MGPS not fitted (no EBGM)"] = not_fitted
    return ReportData(
        as_of=run.as_of,
        run_id=run.id,
        generated_at=generated_at or dt.datetime.now(dt.UTC),
        config_hash=run.config_hash,
        previous_report_as_of=since,
        headline=_headline(session, run, since, groups),
        open_signals=_signal_rows(session, open_signals, run, {}, groups),
        sections=[_section(session, run, g, groups, car_t, with_cohort) for g in events],
        sources=sources,
        parameters=parameters,
        rules=dict(snapshot.rules) if snapshot is not None else {"rules": "this run was not evaluated"},
        totals=totals,
    )
