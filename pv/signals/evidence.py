"""Evidence from real-world cohorts for the registry: the cumulative incidence of a signal's event among the
patients who received its product (Aalen-Johansen, death as a competing risk), at 1 and 2 years.

:func:`cohort_incidence` is the registry's incidence hook (:data:`pv.signals.evaluation.IncidenceHook`): its
summary goes into the evidence of a label update recommendation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from pv.analysis.incidence import analyse, cohort_codes, cohort_time_event
from pv.errors import NotFoundError
from pv.normalise import EventGroups, default_event_groups


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
                     times=list(times), known_codes=cohort_codes(group))
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
