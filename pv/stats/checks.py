"""Input checks shared by the time-to-event statistics (cumulative incidence, Gray's test, Fine-Gray,
Kaplan-Meier, incidence rates, time to onset).

Each check raises :class:`pv.errors.InputError` naming the offending argument or column (``field``) and, for a
bad value, its position, and returns the input as the arrays the estimators compute on.

>>> t, e = validate_time_event([3, 1.5, 2], [1, 0, 2])
>>> t.tolist(), e.tolist()
([3.0, 1.5, 2.0], [1, 0, 2])
>>> validate_time_event([1, -2], [0, 1])
Traceback (most recent call last):
pv.errors.InputError: field 'time': negative time at position 1
>>> sorted_levels(np.array(["b", "a", "b"], dtype=object))
['a', 'b']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pv.errors import InputError


def as_array(values: Any, name: str) -> np.ndarray:
    """``values`` (array-like or Series) as a one-dimensional numpy array; ``name`` is the argument's name."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be one-dimensional", field=name)
    return arr


def validate_time_event(time: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check and return (float times, events): same length, finite non-negative times, nothing missing."""
    t = as_array(time, "time").astype(float)
    e = as_array(event, "event")
    if len(t) != len(e):
        raise InputError(f"time has {len(t)} values but event has {len(e)}", field="event")
    bad = ~np.isfinite(t)
    if bad.any():
        raise InputError(f"missing or infinite time at position {int(np.flatnonzero(bad)[0])}", field="time")
    if (t < 0).any():
        raise InputError(f"negative time at position {int(np.flatnonzero(t < 0)[0])}", field="time")
    missing = pd.isna(e)
    if np.any(missing):
        raise InputError(f"missing event at position {int(np.flatnonzero(missing)[0])}", field="event")
    return t, e


def sorted_levels(values: np.ndarray) -> list[Any]:
    """The distinct values, sorted (by their text when they cannot be compared, e.g. numbers and strings)."""
    levels = list(pd.unique(values))
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=str)


def require_columns(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise for the first of ``columns`` that ``data`` lacks."""
    for col in columns:
        if col not in data.columns:
            raise InputError(f"missing column {col!r}", field=col)
