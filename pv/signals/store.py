"""The signal registry wired to the rest of the store: analysis runs (issue 3) and cohorts (issue 4).

- :func:`evaluate_run_from_store` evaluates a succeeded analysis run (``runs``/``run_results``).
- :func:`run_pipeline_producer` is a backtest producer computing (or reusing) the analysis run of each as-of.
- :func:`cohort_incidence` is the evidence hook: cumulative incidence of the event's group among the product's
  cohort patients (Aalen-Johansen, death competing), at 1 and 2 years, when the cohort store has them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from pv.errors import InputError, NotFoundError
from pv.normalise import EventGroups, default_event_groups
from pv.signals.backtest import Producer
from pv.signals.changes import SignalChange
from pv.signals.registry import IncidenceHook, evaluate_run


def evaluate_run_from_store(session: Session, run_id: int, *,
                            incidence: IncidenceHook | None = None, **kwargs: Any) -> list[SignalChange]:
    """Evaluate the results of analysis run ``run_id`` (must have succeeded). The caller commits.

    ``incidence`` defaults to :func:`cohort_incidence`; other keyword arguments go to
    :func:`~pv.signals.registry.evaluate_run` (rules, labels, groups, products).
    """
    from pv.analysis.runs import get_run, results_frame

    run = get_run(session, run_id)
    if run.status != "succeeded":
        raise InputError(f"run {run_id} is {run.status}: only succeeded runs are evaluated", field="run_id")
    return evaluate_run(session, run_id=run.id, as_of=run.as_of, results=results_frame(session, run.id),
                        incidence=incidence if incidence is not None else cohort_incidence, **kwargs)


def run_pipeline_producer(session: Session, *, scope: str = "all") -> Producer:
    """Backtest producer: the analysis run of each as-of date (computed in this process when not yet done)."""
    from pv.analysis.runs import execute_run, get_run, request_run, results_frame

    def produce(as_of: dt.date) -> tuple[int, pd.DataFrame]:
        run, compute = request_run(session, as_of, scope=scope)
        if compute:
            execute_run(session, run.id)
        run = get_run(session, run.id)
        if run.status != "succeeded":
            raise InputError(f"run {run.id} as of {as_of} is {run.status}: {run.error or 'not finished'}",
                             field="as_of")
        return run.id, results_frame(session, run.id)

    return produce


def _group_for(event: str, level: str, groups: EventGroups) -> str | None:
    if level == "group":
        return event if event in groups.groups else None
    containing = [g for g, terms in groups.groups.items() if event in terms]
    if not containing:
        return None
    return min(containing, key=lambda g: (len(groups.groups[g]), g))  # the most specific group


def cohort_incidence(session: Session, product: str, event: str, level: str, as_of: dt.date, *,
                     times: Sequence[float] = (1.0, 2.0),
                     groups: EventGroups | None = None) -> dict[str, Any] | None:
    """Cumulative incidence (years since infusion) of the event's group among the product's cohort patients.

    A PT is represented by its most specific event group. None when the event is in no group, the cohort store
    is empty, or no patient received the product. The cohort is used as loaded (not cut at ``as_of``).
    """
    from pv.incidence import analyse, cohort_time_event

    groups = groups or default_event_groups()
    group = _group_for(event, level, groups)
    if group is None:
        return None
    try:
        frame = cohort_time_event(session, group, groups)
    except NotFoundError:
        return None
    frame = frame[frame["product"] == product]
    if frame.empty:
        return None
    result = analyse(frame, "time", "event", event_of_interest=group, competing=["death"], censored="censored",
                     times=list(times))
    curve = next(iter(result.result["groups"].values()))[group]
    return {
        "source": "cohort store",
        "event_group": group,
        "n_patients": int(len(frame)),
        "n_events": int((frame["event"] == group).sum()),
        "n_deaths_first": int((frame["event"] == "death").sum()),
        "unit": "years",
        "method": "Aalen-Johansen, death as competing risk",
        "cumulative_incidence": curve,
    }
