"""Cumulative incidence analyses behind ``pv incidence`` and ``pv onset``: tables in, JSON-ready dicts out.

- :func:`analyse` runs the estimators of :mod:`pv.stats` on a time/event table (any CSV, or a cohort extract)
  and returns the result as JSON: ``n`` (rows analysed), ``n_excluded_missing_group`` (rows left out for a
  missing group value), ``counts`` -> group -> {n, events: code -> rows, censored}; ``groups`` -> group ->
  event -> list of {time, estimate, variance, lower, upper}; ``gray_test`` -> event -> {statistic, df,
  p_value, reason} (empty without a group; ``reason`` says why the statistic is null, else null);
  ``fine_gray`` (when covariates are given) -> {event, n, n_missing (rows dropped for a missing covariate),
  coefficients: list of {covariate, coef, se, hr, hr_lower, hr_upper, p_value}}; ``notes`` (what the user
  must be told, e.g. that there is no event of interest at all).
- :func:`cohort_time_event` turns the cohort store into such a table for one event group: time from infusion
  to the first event of the group, death (competing) or last follow-up (censored); :func:`cohort_codes` are
  its event codes.
- :func:`onset_table` extracts (product, event, start_date, event_date) from current case versions.
Services receive a Session from their caller and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.errors import InputError, NotFoundError
from pv.ingest.cohort import cohort_frame
from pv.models import Case, CaseVersion, CohortEvent, Drug, EventGroupTerm, Reaction
from pv.normalise import EventGroups
from pv.stats.checks import code_like, event_codes, is_numeric_codes, sorted_levels
from pv.stats.cuminc import CumulativeIncidence
from pv.stats.finegray import FineGray
from pv.stats.gray import gray_test
from pv.stats.numbers import optional_float

DEATH = "death"
CENSORED = "censored"
UNIT_DAYS = {"days": 1.0, "months": 365.25 / 12, "years": 365.25}


@dataclass
class IncidenceResult:
    """The fitted estimators and the JSON-ready result."""

    cuminc: CumulativeIncidence
    fine_gray: FineGray | None
    result: dict[str, Any]
    events: list[str]


# How CSV writers spell a missing value (R's NA, pandas' NaN, SQL's NULL, Python's None): in a group or
# covariate column these are missing, like an empty cell, never a group or category of their own.
MISSING_TEXT = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"})


def _with_missing(values: pd.Series) -> pd.Series:
    """``values`` with text stripped of surrounding blanks and the spellings of :data:`MISSING_TEXT` as NaN."""
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    return text.mask(text.map(lambda v: isinstance(v, str) and v in MISSING_TEXT))


def _design(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numeric design matrix: numeric columns as they are, others one-hot against their first sorted level.
    Missing values (:data:`MISSING_TEXT` included) stay missing: Fine-Gray drops those rows and counts them."""
    parts = []
    for col in covariates:
        if col not in frame.columns:
            raise InputError(f"no column {col!r} for covariate", field=col)
        values = _with_missing(frame[col])
        if values.isna().all():
            raise InputError(f"covariate {col} has no value", field="covariates")
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():
            parts.append(numeric.rename(col).astype(float))
            continue
        levels = sorted(values.dropna().astype(str).unique())
        if len(levels) == 1:
            raise InputError(f"covariate {col} is constant ({levels[0]} in every row with a value): it has no "
                             "hazard ratio; leave it out", field="covariates")
        for level in levels[1:]:
            dummy = (values.astype(str) == level).astype(float).where(values.notna())
            parts.append(dummy.rename(f"{col}={level}"))
    if not parts:
        raise InputError("covariates give no usable column", field="covariates")
    return pd.concat(parts, axis=1)


def _group_labels(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the rows with a group value, which rows have one). Missing values (blank text and
    :data:`MISSING_TEXT` included) are not a group; labels are text (whole numbers without decimals, as a float
    column with gaps holds them)."""
    text = _with_missing(values)
    present = text.notna().to_numpy()
    kept = text[present]
    if pd.api.types.is_float_dtype(kept) and len(kept) and (kept == kept.round()).all():
        kept = kept.astype("int64")
    return kept.astype(str).to_numpy(object), present


def _counts(codes: np.ndarray, labels: np.ndarray | None, censored: Any) -> dict[str, dict[str, Any]]:
    """Per group: rows, events by code (every code other than the censored one), censored rows."""
    g = np.full(len(codes), "all", dtype=object) if labels is None else labels
    out: dict[str, dict[str, Any]] = {}
    for level in sorted_levels(g):
        mine = codes[g == level]
        events, counts = np.unique(mine[mine != censored], return_counts=True)
        out[str(level)] = {
            "n": len(mine),
            "events": {str(e): int(c) for e, c in zip(events.tolist(), counts, strict=True)},
            "censored": int((mine == censored).sum()),
        }
    return out


def _describe_codes(levels: np.ndarray, counts: np.ndarray, limit: int = 12) -> str:
    """"0 (3 rows), 1 (2 rows), ..." for the codes of an event column."""
    parts = [f"{level} ({count} row{'s' if count != 1 else ''})" for level, count in zip(levels, counts, strict=True)]
    if len(parts) > limit:
        return ", ".join(parts[:limit]) + f", ... ({len(parts)} codes in all)"
    return ", ".join(parts)


class _Codes:
    """The codes of an event column, and the codes named by the caller resolved against them."""

    def __init__(self, column: str, codes: np.ndarray, known: Sequence[Any], where: str = "") -> None:
        self.column = column
        self.where = where
        self.codes = codes
        self.levels, self.counts = np.unique(codes, return_counts=True)
        self.occurring = set(self.levels.tolist())
        self.known = {k for k in (code_like(c, codes) for c in known) if k is not None}
        self.numeric = is_numeric_codes(codes)

    def describe(self) -> str:
        return _describe_codes(self.levels, self.counts)

    def resolve(self, value: Any, field: str, what: str, *, may_be_absent: bool = False) -> Any:
        """``value`` as the code it names; refused when it does not occur (unless known or ``may_be_absent``)."""
        given = value.strip() if isinstance(value, str) else value
        code = code_like(given, self.codes)
        if code is not None and (code in self.occurring or code in self.known or may_be_absent):
            return code
        hint = ""
        if not self.numeric:
            alike = [str(c) for c in self.levels if str(c).casefold() == str(given).casefold()]
            if alike:
                hint = f" (codes are compared exactly, case included: did you mean {alike[0]!r}?)"
        raise InputError(f"{what} {value!r} does not occur in column {self.column!r}{self.where}{hint}; "
                         f"its codes are {self.describe()}", field=field)


def analyse(
    frame: pd.DataFrame,
    time: str,
    event: str,
    *,
    event_of_interest: Any = None,
    competing: Sequence[Any] | None = None,
    censored: Any = "0",
    group: str | None = None,
    times: Sequence[float] | None = None,
    covariates: Sequence[str] | None = None,
    conf_type: str = "log-log",
    alpha: float = 0.05,
    known_codes: Sequence[Any] | None = None,
) -> IncidenceResult:
    """Cumulative incidence (and Gray's test, and Fine-Gray when covariates are given) for a time/event table.

    Event codes are compared as the type of the event column (:func:`pv.stats.checks.event_codes`): as numbers
    when every value is a number (``1``, ``1.0`` and ``"1"`` are one code), otherwise as text, exactly (case
    included; surrounding blanks are ignored). ``event_of_interest``, each ``competing`` code and ``censored``
    must occur in the column, except codes listed in ``known_codes`` (the codes the column can hold by
    construction, e.g. a cohort extract's event group, ``death`` and ``censored``: there an absent code is a
    correct zero count). A ``censored`` code may also be absent when ``event_of_interest`` and ``competing``
    account for every code (complete follow-up). Every value other than ``censored`` is an event; when
    ``competing`` is given, a value outside {event_of_interest, competing..., censored} is an error. Without
    ``times`` the curves are reported at their steps (0 and every time with an event of that type). Rows
    without a ``group`` value (missing, blank or a spelling in :data:`MISSING_TEXT`) are left out of the whole
    analysis and counted in ``n_excluded_missing_group``; ``n`` counts the rows analysed.
    """
    for col in [time, event] + ([group] if group else []):
        if col not in frame.columns:
            raise InputError(
                f"no column {col!r}; columns are {', '.join(map(str, frame.columns))}", field=col
            )
    t = pd.to_numeric(frame[time], errors="coerce")
    if t.isna().any():
        pos = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise InputError(f"row {pos + 1}: time {frame[time].iloc[pos]!r} is not a number", field=time)
    raw = frame[event]
    if raw.isna().any():
        pos = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise InputError(f"row {pos + 1}: missing event value", field=event)
    ev = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    all_codes = event_codes(ev.to_numpy(object))
    keep = np.ones(len(frame), dtype=bool)
    labels = None
    where = ""
    if group:
        labels, keep = _group_labels(frame[group])
        if not keep.any():
            raise InputError(f"no row has a value in column {group!r}", field=group)
        frame, t = frame[keep], t[keep]
        if not keep.all():
            where = f" among the {int(keep.sum())} rows with a value in column {group!r}"
    codes = _Codes(event, all_codes[keep], known_codes or [], where)
    target = None
    if event_of_interest is not None:
        target = codes.resolve(event_of_interest, "event_of_interest", "event of interest")
    rivals = [codes.resolve(c, "competing", "competing event") for c in competing or []]
    complete = target is not None and bool(rivals) and codes.occurring <= {target, *rivals}
    cens = codes.resolve(censored, "censored", "censored code", may_be_absent=complete)
    if target is not None and (target == cens or target in rivals):
        raise InputError(f"event of interest {event_of_interest!r} is also named "
                         f"{'censored' if target == cens else 'competing'}", field="event_of_interest")
    if cens in rivals:
        raise InputError(f"competing event {censored!r} is also the censored code", field="competing")
    if target is not None and rivals:
        allowed = {target, cens, *rivals}
        unexpected = [str(c) for c in codes.levels if c not in allowed]
        if unexpected:
            raise InputError(
                f"event value(s) {', '.join(unexpected)} are neither the event of interest, "
                "competing nor censored",
                field=event,
            )
    observed = [c for c in codes.levels.tolist() if c != cens]
    if target is None and not observed:
        raise InputError(f"no events: every row of column {event!r}{where} has the censored code {cens!r}",
                         field=event)
    report = [target] if target is not None else observed
    ci = CumulativeIncidence(censored=cens, alpha=alpha, conf_type=conf_type).fit(
        t.to_numpy(float),
        codes.codes,
        labels,
        events=report,
    )
    if times is not None:
        points = ci.predict(sorted(times))
    else:
        points = ci.summary[["group", "event", "time", "estimate", "variance", "lower", "upper"]]
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for g in ci.groups_:
        groups[str(g)] = {}
        for e in report:
            part = points[(points.group == g) & (points.event == e)]
            groups[str(g)][str(e)] = [
                {
                    "time": float(r.time),
                    "estimate": optional_float(r.estimate),
                    "variance": optional_float(r.variance),
                    "lower": optional_float(r.lower),
                    "upper": optional_float(r.upper),
                }
                for r in part.itertuples(index=False)
            ]
    tests = ci.gray_test_
    if group and len(ci.groups_) == 1:  # a comparison was asked for: say why there is none
        tests = gray_test(t.to_numpy(float), codes.codes, labels, censored=cens, events=report)
    gray = {
        str(r.event): {
            "statistic": optional_float(r.statistic),
            "df": int(r.df),
            "p_value": optional_float(r.p_value),
            "reason": r.reason if isinstance(r.reason, str) else None,
        }
        for r in tests.itertuples(index=False)
    }
    notes = [
        f"no events of interest ({e}) in the data: the cumulative incidence is 0 throughout follow-up"
        for e in report
        if e not in codes.occurring
    ]
    result: dict[str, Any] = {
        "n": int(keep.sum()),
        "n_excluded_missing_group": int((~keep).sum()),
        "counts": _counts(codes.codes, labels, cens),
        "groups": groups,
        "gray_test": gray,
        "notes": notes,
    }
    fg = None
    if covariates:
        if target is None:
            if len(observed) != 1:
                raise InputError(
                    "--covariates needs --event-of-interest when there are several event types", field="event"
                )
            target = observed[0]
        x = _design(frame, covariates)
        fg = FineGray(event_of_interest=target, censored=cens, alpha=alpha).fit(
            t.to_numpy(float), codes.codes, x
        )
        result["fine_gray"] = {
            "event": str(target),
            "n": fg.n_,
            "n_missing": fg.n_missing_,
            "coefficients": [
                {
                    "covariate": r.covariate,
                    "coef": float(r.coef),
                    "se": float(r.se),
                    "hr": float(r.hr),
                    "hr_lower": float(r.hr_lower),
                    "hr_upper": float(r.hr_upper),
                    "p_value": float(r.p_value),
                }
                for r in fg.summary.itertuples(index=False)
            ],
        }
    return IncidenceResult(cuminc=ci, fine_gray=fg, result=result, events=[str(e) for e in report])


def cohort_codes(event_group: str) -> list[str]:
    """The codes of the ``event`` column of :func:`cohort_time_event` for ``event_group`` (its
    ``known_codes`` for :func:`analyse`)."""
    return [event_group, DEATH, CENSORED]


def group_types(event_groups: EventGroups, group: str) -> set[str]:
    """Cohort event types selected by an event group: the group itself and every group nested in it."""
    if group not in event_groups.groups:
        raise NotFoundError(f"unknown event group {group!r}; known: {', '.join(sorted(event_groups.groups))}")
    terms = event_groups.groups[group]
    return {g for g, t in event_groups.groups.items() if g == group or (t and t <= terms)}


def cohort_time_event(
    session: Session, event_group: str, event_groups: EventGroups, unit: str = "years"
) -> pd.DataFrame:
    """One row per cohort patient: time from infusion (in ``unit``) and outcome for ``event_group``.

    ``event`` is the group name when a patient's first event of the group comes first (an event on the day of
    death counts as the event), ``death`` when death comes first, ``censored`` at the last follow-up. Baseline
    columns (product, disease, age_years, sex, hbv_status, prior_lines) come along for grouping and
    covariates.
    """
    if unit not in UNIT_DAYS:
        raise InputError(f"unknown time unit {unit!r}; use days, months or years", field="unit")
    types = group_types(event_groups, event_group)
    patients = list(cohort_frame(session).itertuples(index=False))
    if not patients:
        raise NotFoundError("the cohort store is empty: load a cohort with `pv ingest cohort` first")
    first = dict(
        session.execute(
            select(CohortEvent.patient_pk, CohortEvent.event_date)
            .where(CohortEvent.event_type.in_(types))
            .order_by(CohortEvent.patient_pk, CohortEvent.event_date.desc())
        ).all()
    )  # last assignment: earliest
    rows = []
    for p in patients:
        ev_date = first.get(p.pk)
        end_date = p.death_date or p.last_followup_date
        if ev_date is not None and (p.death_date is None or ev_date <= p.death_date):
            when, outcome = ev_date, event_group
        elif p.death_date is not None:
            when, outcome = p.death_date, DEATH
        else:
            when, outcome = end_date, CENSORED
        rows.append(
            {
                "patient_id": p.patient_id,
                "time": (when - p.infusion_date).days / UNIT_DAYS[unit],
                "event": outcome,
                "product": p.product or p.product_verbatim or "unknown",
                "disease": p.disease,
                "age_years": p.age_years,
                "sex": p.sex,
                "hbv_status": p.hbv_status,
                "prior_lines": p.prior_lines,
            }
        )
    return pd.DataFrame(rows)


def onset_table(
    session: Session, product: str, event_group: str, event_groups: EventGroups | None = None
) -> pd.DataFrame:
    """(case_key, product, event, start_date, event_date) for current case versions with the product and a
    reaction in the event group. The start is the earliest start date of the product's drugs in the
    version."""
    terms = list(session.scalars(select(EventGroupTerm.pt).where(EventGroupTerm.group_name == event_group)))
    if not terms:
        if event_groups is None or event_group not in event_groups.groups:
            raise NotFoundError(f"unknown event group {event_group!r}")
        terms = sorted(event_groups.groups[event_group])
    with_event = select(Reaction.case_version_id).where(Reaction.pt.in_(terms)).distinct()
    rows = session.execute(
        select(Case.case_key, CaseVersion.event_date, Drug.start_date)
        .join(CaseVersion, CaseVersion.id == Case.current_version_id)
        .join(Drug, Drug.case_version_id == CaseVersion.id)
        .where(Drug.product == product, CaseVersion.id.in_(with_event))
    ).all()
    frame = pd.DataFrame(rows, columns=["case_key", "event_date", "start_date"])
    if frame.empty:
        return pd.DataFrame(columns=["case_key", "product", "event", "start_date", "event_date"])
    frame["start_date"] = pd.to_datetime(frame["start_date"])
    frame = frame.groupby("case_key", as_index=False).agg(
        event_date=("event_date", "first"), start_date=("start_date", "min")
    )
    frame.insert(1, "product", product)
    frame.insert(2, "event", event_group)
    return frame[["case_key", "product", "event", "start_date", "event_date"]]
