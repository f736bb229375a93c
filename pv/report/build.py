"""Assembling the weekly report's data from the store: one succeeded run, the signal registry, the labels,
the cohort store and the provenance of the loaded files. The caller passes the session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.analysis.incidence import CENSORED, DEATH, UNIT_DAYS, analyse, cohort_codes, cohort_time_event
from pv.analysis.results import PAIR_VALUES, read_trend, results_frame
from pv.analysis.runs import succeeded_run
from pv.config import config_path, load_yaml
from pv.errors import ConfigError, InputError, NotFoundError
from pv.ingest.summary import store_summary
from pv.models import (
    Case,
    CaseVersion,
    Drug,
    Label,
    LabelAudit,
    Reaction,
    SignalMeasure,
    SignalRuleSnapshot,
    SourceFile,
)
from pv.models.cohort import CohortPatient
from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products
from pv.report.data import (
    JURISDICTIONS,
    Decision,
    EventSection,
    FindingRows,
    LabelChange,
    OnsetRow,
    Recommendation,
    ReportData,
    SignalRow,
    SinceLast,
    SourceInfo,
    TrendPoint,
)
from pv.signals import history
from pv.signals.findings import group_findings
from pv.signals.history import RegistryAt, SignalState
from pv.signals.states import OPEN_STATES
from pv.stats.numbers import optional_float
from pv.stats.onset import ONSET_COLUMNS, onset_days, time_to_onset

#: Audit actions that open a signal: detected as a signal, or a tracked disproportionality opened.
OPENING_ACTIONS = (history.CREATED, history.OPENED)


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


def _row(state: SignalState, groups: EventGroups, *, change: str | None = None, note: str = "") -> SignalRow:
    s, m = state.signal, state.measure
    return SignalRow(
        id=s.id, product=s.product, event=event_label(s.event, s.level, groups), level=s.level,
        status=state.status, priority=float(m.priority if m is not None and m.priority is not None
                                            else s.priority or 0.0),
        first_detected=s.first_detected, measures=_measures(m), labelled=dict(state.labelled),
        label_update_recommended=state.flagged, change=change, event_key=s.event, new_cases=state.new_cases,
        flag_jurisdictions=tuple(state.flag_jurisdictions), escalated=state.escalated,
        meets_rules=m.meets_rules if m is not None and state.measured else None,
        note=note or (flag_reason(state.flag_reason) if state.flagged else ""),
    )


def flag_reason(reason: str | None) -> str:
    """Why a signal was flagged, without the audit row's preamble ("label update recommended for <product> in
    <jurisdictions>: "), which the report says in its own columns."""
    text = reason or ""
    if text.startswith("label update recommended for ") and ": " in text:
        return text.split(": ", 1)[1]
    return text


def _by_priority(rows: list[SignalRow]) -> list[SignalRow]:
    return sorted(rows, key=lambda r: (-r.priority, r.product, r.event, r.id))


def findings_of(rows: list[SignalRow], groups: EventGroups) -> list[FindingRows]:
    """``rows`` (most urgent first) as findings: a product's PT, group and parent-group signals in one."""
    return group_findings(rows, groups, key=lambda r: (r.product, r.event_key or r.event, r.level))


def _changed(registry: RegistryAt, actions: tuple[str, ...], groups: EventGroups, kind: str,
             only=None) -> list[FindingRows]:  # type: ignore[no-untyped-def]
    """The signals with an audit row of these actions in the period (the last row's reason as the note)."""
    notes: dict[int, str] = {}
    for a in registry.period_rows(actions, people=None):
        state = registry.states.get(a.signal_id)
        if state is not None and (only is None or only(a)):
            notes[a.signal_id] = a.reason
    rows = [_row(registry.states[i], groups, change=kind, note=n) for i, n in notes.items()]
    return findings_of(_by_priority(rows), groups)


def _opens(a) -> bool:  # type: ignore[no-untyped-def]
    return a.action == history.OPENED or a.to_status in OPEN_STATES


def _label_changes(session: Session, registry: RegistryAt) -> list[LabelChange]:
    """Label registry changes of the period: entries recorded by people (not the seeding from
    config/labels.yaml), and recorded entries that came into force after the previous report."""
    out = []
    q = select(LabelAudit, Label).join(Label, Label.id == LabelAudit.label_id).where(LabelAudit.action != "seeded")
    for audit, label in session.execute(q.order_by(LabelAudit.id)):
        at = history._aware(audit.at)
        if (registry.since is not None and at <= registry.since) or (
                registry.until is not None and at > registry.until):
            continue
        out.append(LabelChange("recorded", at.date(), label.product, label.jurisdiction, label.event,
                               label.section, label.effective_date, audit.by, audit.reason))
    if registry.previous_as_of is not None:
        for label in session.scalars(select(Label).where(Label.effective_date > registry.previous_as_of,
                                                         Label.effective_date <= registry.as_of)
                                     .order_by(Label.effective_date, Label.product, Label.jurisdiction)):
            out.append(LabelChange("in force", label.effective_date, label.product, label.jurisdiction,
                                   label.event, label.section, label.effective_date, label.created_by,
                                   label.note or label.source or ""))
    return out


def _recommendation(session: Session, finding: FindingRows, registry: RegistryAt,
                    period_flags: set[int]) -> Recommendation:
    flagged = tuple(r for r in sorted(finding.items, key=lambda r: -r.priority) if r.label_update_recommended)
    primary = registry.states[flagged[0].id]
    jurisdictions = tuple(j for j in JURISDICTIONS if any(j in r.flag_jurisdictions for r in flagged))
    trend = tuple(TrendPoint(m.as_of, m.n, m.eb05, m.prr, bool(m.meets_rules))
                  for m in history.measure_trend(session, primary.signal.id, registry.as_of))
    incidence = None
    for row in flagged:
        evidence = registry.states[row.id].signal.evidence or {}
        recorded = evidence.get("cumulative_incidence")
        if recorded and str(evidence.get("as_of", "")) <= registry.as_of.isoformat():
            incidence = dict(recorded)
            break
    return Recommendation(
        finding=finding, flagged=flagged, reason=flag_reason(primary.flag_reason), since=primary.flag_since,
        jurisdictions=jurisdictions, trend=trend, incidence=incidence,
        new=any(r.id in period_flags for r in flagged),
    )


def _decisions(registry: RegistryAt, groups: EventGroups) -> list[Decision]:
    out = []
    for a in registry.period_rows(people=True):
        state = registry.states.get(a.signal_id)
        if state is None:
            continue
        out.append(Decision(at=history._aware(a.at), by=a.by, action=a.action, from_status=a.from_status,
                            to_status=a.to_status, reason=a.reason, signal=_row(state, groups)))
    return sorted(out, key=lambda d: d.at)


def _known_risk(row: SignalRow) -> bool:
    return bool(row.labelled) and all(row.labelled.values()) and not row.label_update_recommended


def _work(registry: RegistryAt, groups: EventGroups
          ) -> tuple[list[FindingRows], list[FindingRows], list[FindingRows], list[SignalRow]]:
    """The open findings as of the run: flagged for a label update, unlabelled somewhere, labelled everywhere;
    and every open signal's row."""
    rows = _by_priority([_row(s, groups) for s in registry.open_states()])
    flagged, unlabelled, labelled = [], [], []
    for f in findings_of(rows, groups):
        if any(r.label_update_recommended for r in f.items):
            flagged.append(f)
        elif not all(_known_risk(r) for r in f.items):
            unlabelled.append(f)
        else:
            labelled.append(f)
    return flagged, unlabelled, labelled, rows


def _since(session: Session, registry: RegistryAt, groups: EventGroups, work: list[FindingRows]) -> SinceLast:
    stopped = [_row(s, groups, change="stopped_meeting_rules",
                    note=", ".join(s.previous.criteria_met or []) if s.previous is not None else "")
               for s in registry.open_states() if s.stopped_meeting_rules]
    grown = sorted((r for f in work for r in f.items if (r.new_cases or 0) > 0),
                   key=lambda r: (-(r.new_cases or 0), -r.priority, r.id))
    new = _changed(registry, OPENING_ACTIONS, groups, "new", only=_opens)
    return SinceLast(
        new=[f for f in new if not all(_known_risk(r) for r in f.items)],
        new_labelled=[f for f in new if all(_known_risk(r) for r in f.items)],
        escalated=_changed(registry, (history.ESCALATED,), groups, "escalated"),
        reopened=_changed(registry, (history.TRANSITION,), groups, "reopened",
                          only=lambda a: (a.from_status, a.to_status) == ("monitoring", "validated")),
        flags_withdrawn=_changed(registry, history.FLAG_OFF, groups, "flag withdrawn"),
        decisions=_decisions(registry, groups),
        label_changes=_label_changes(session, registry),
        stopped_meeting_rules=findings_of(_by_priority(stopped), groups),
        new_cases=findings_of(grown, groups),
    )


def _terms(event: str, level: str, groups: EventGroups) -> frozenset[str]:
    return groups.groups.get(event, frozenset()) if level == "group" else frozenset({event})


def _onset_summary(table: pd.DataFrame, weibull: bool) -> pd.DataFrame:
    if weibull:
        return time_to_onset(table)
    frame = table[["product", "event"]].assign(days=onset_days(table))
    rows = []
    for (product, event), part in frame.groupby(["product", "event"], sort=True):
        days = part["days"].to_numpy(float)
        use = days[np.isfinite(days) & (days >= 0)]
        q1, med, q3 = np.percentile(use, [25, 50, 75]) if len(use) else (np.nan,) * 3
        rows.append({"product": product, "event": event, "n": len(use), "n_excluded": len(days) - len(use),
                     "median_days": med, "q1_days": q1, "q3_days": q3, "weibull_shape": np.nan,
                     "shape_lower": np.nan, "shape_upper": np.nan, "weibull_scale": np.nan})
    return pd.DataFrame(rows, columns=ONSET_COLUMNS)


def onset_rows(session: Session, as_of: dt.date, wanted: list[tuple[str, str, str]], groups: EventGroups, *,
               weibull: bool = True) -> list[OnsetRow]:
    """Time to onset (days from the product's earliest therapy start to the event) in the current versions of
    the cases received by ``as_of``, for each (product, event, level) of ``wanted`` (a PT or an event group):
    median and quartiles, and the Weibull shape with its interval unless ``weibull`` is False (each fit takes a
    noticeable fraction of a second)."""
    if not wanted:
        return []
    products = sorted({p for p, _, _ in wanted})
    terms = sorted(set().union(*(_terms(e, lv, groups) for _, e, lv in wanted)))
    rows = session.execute(
        select(CaseVersion.id, Drug.product, CaseVersion.event_date, Drug.start_date, Reaction.pt)
        .join(Case, Case.current_version_id == CaseVersion.id)
        .join(Drug, Drug.case_version_id == CaseVersion.id)
        .join(Reaction, Reaction.case_version_id == CaseVersion.id)
        .where(Drug.product.in_(products), Reaction.pt.in_(terms), CaseVersion.received_date <= as_of)
    ).all()
    frame = pd.DataFrame(rows, columns=["version", "product", "event_date", "start_date", "pt"])
    frame["start_date"] = pd.to_datetime(frame["start_date"])
    out = []
    parts = []
    for product, event, level in wanted:
        sel = frame[(frame["product"] == product) & frame["pt"].isin(_terms(event, level, groups))]
        per_case = sel.groupby("version", as_index=False).agg(event_date=("event_date", "first"),
                                                              start_date=("start_date", "min"))
        per_case["product"], per_case["event"] = product, f"{level}:{event}"
        parts.append(per_case)
    table = pd.concat(parts, ignore_index=True) if parts else frame
    summary = {(r.product, r.event): r for r in _onset_summary(table, weibull).itertuples(index=False)} \
        if not table.empty else {}
    for product, event, level in wanted:
        r = summary.get((product, f"{level}:{event}"))
        if r is None:
            continue
        out.append(OnsetRow(product=product, event=event_label(event, level, groups), level=level, n=int(r.n),
                            n_excluded=int(r.n_excluded), median=optional_float(r.median_days),
                            q1=optional_float(r.q1_days), q3=optional_float(r.q3_days),
                            shape=optional_float(r.weibull_shape), shape_lower=optional_float(r.shape_lower),
                            shape_upper=optional_float(r.shape_upper)))
    return out


def _car_t(products: ProductDictionary) -> list[str]:
    return sorted(p for p in products.products if products.attribute(p, "class") == "car_t")


def _report_config(path: Path | None = None) -> tuple[Path, dict]:  # type: ignore[type-arg]
    path = path or config_path("report.yaml")
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with events_of_interest")
    return path, data


def events_of_interest(groups: EventGroups, path: Path | None = None) -> tuple[str, ...]:
    """The event groups the report shows with figures, in order (``events_of_interest`` in config/report.yaml)."""
    path, data = _report_config(path)
    events = data.get("events_of_interest")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ConfigError(f"{path}: events_of_interest must be a list of event group names")
    unknown = [e for e in events if e not in groups.groups]
    if unknown:
        raise ConfigError(f"{path}: events_of_interest names unknown event group(s) {', '.join(unknown)}; "
                          f"groups are defined in event_groups.yaml")
    return tuple(events)


def time_scales(path: Path | None = None) -> dict[str, tuple[str, float | None]]:
    """The time unit of each event group's cumulative incidence figure and the time it shows
    (``time_scale`` and ``time_window`` in config/report.yaml; years and the whole follow-up when not given)."""
    path, data = _report_config(path)
    scales = data.get("time_scale") or {}
    if not isinstance(scales, dict) or not all(v in UNIT_DAYS for v in scales.values()):
        raise ConfigError(f"{path}: time_scale must map event groups to one of {', '.join(UNIT_DAYS)}")
    windows = data.get("time_window") or {}
    if not isinstance(windows, dict) or not all(isinstance(v, int | float) and v > 0 for v in windows.values()):
        raise ConfigError(f"{path}: time_window must map event groups to a positive time (in their time_scale)")
    return {str(g): (str(scales.get(g, ("years", None))), float(windows[g]) if g in windows else None)
            for g in set(scales) | set(windows)}


def _cif(session: Session, group: str, groups: EventGroups, unit: str
         ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The cohort cumulative incidence of ``group`` by product (time in ``unit``) and each patient's time to
    event, death or last follow-up; None without a cohort or without any event of the group."""
    try:
        frame = cohort_time_event(session, group, groups, unit=unit)
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
    cif = pd.DataFrame(rows, columns=["group", "time", "estimate", "variance", "lower", "upper"])
    followup = frame.rename(columns={"product": "group"})[["group", "time"]].reset_index(drop=True)
    return cif, followup


def _section(session: Session, run_id: int, as_of: dt.date, group: str, groups: EventGroups, car_t: list[str],
             with_cohort: bool, scale: tuple[str, float | None]) -> EventSection:
    unit, window = scale
    results = results_frame(session, run_id, level="group", stratified=False, event=group, products=car_t)
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
    trend = read_trend(session, run_id, level="group", event=group, products=car_t)
    trend = (trend.rename(columns={"period_end": "quarter", "eb05": "value"})[["quarter", "product", "value"]]
             if not trend.empty else pd.DataFrame(columns=["quarter", "product", "value"]))
    cif = _cif(session, group, groups, unit) if with_cohort else None
    with_cases = [str(p) for p in counts["product"]] if not counts.empty else []
    return EventSection(
        group=group, label=groups.labels.get(group, group), forest_measure="EBGM", forest=forest,
        trend_measure="EB05", trend=trend.dropna(subset=["value"]), counts=counts,
        cif=cif[0] if cif is not None else None, cif_time_unit=unit, cif_window=window,
        followup=cif[1] if cif is not None else None,
        onset=onset_rows(session, as_of, [(p, group, "group") for p in sorted(with_cases)], groups,
                         weibull=False),
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
    those of config/report.yaml), with the registry as it stood at that run (:mod:`pv.signals.history`)."""
    groups = groups or default_event_groups()
    products = products or default_products()
    events = events if events is not None else events_of_interest(groups)
    scales = time_scales() if events else {}
    run = succeeded_run(session, run_id, "a report")
    registry = history.registry_at(session, run)
    recommended, unlabelled, labelled, open_rows = _work(registry, groups)
    period_flags = {a.signal_id for a in registry.period_rows((history.FLAGGED,))}
    recommendations = [_recommendation(session, f, registry, period_flags) for f in recommended]
    work = recommended + unlabelled
    onset_wanted = list(dict.fromkeys((r.product, r.event_key, r.level) for f in work for r in f.items))
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
        previous_report_as_of=registry.previous_as_of,
        recommendations=recommendations,
        since=_since(session, registry, groups, work),
        open_unlabelled=unlabelled,
        labelled=labelled,
        onset=onset_rows(session, run.as_of, onset_wanted, groups),
        open_signals=open_rows,
        sections=[_section(session, run.id, run.as_of, g, groups, car_t, with_cohort, scales.get(g, ("years", None)))
                  for g in events],
        sources=sources,
        parameters=parameters,
        rules=dict(snapshot.rules) if snapshot is not None else {"rules": "this run was not evaluated"},
        totals=totals,
        products=tuple(car_t),
        statuses_as_of_run=registry.until is not None,
    )
