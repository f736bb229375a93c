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

Event codes are compared as the type of the event values (:func:`event_codes`, :func:`as_code`): numbers as
numbers when every value is one (so ``1``, ``1.0`` and ``"1"`` are one code), text exactly otherwise:

>>> event_codes(["1.0", "0", "2"]).tolist(), as_code("1", event_codes([1.0, 0.0]), "censored")
([1, 0, 2], 1)
>>> event_codes(["CRS", "0"]).tolist(), as_code(0, event_codes(["CRS", "0"]), "censored")
(['CRS', '0'], '0')
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pv.errors import InputError


def as_array(values: Any, name: str) -> np.ndarray:
    """``values`` (array-like or Series) as a one-dimensional numpy array; ``name`` is the argument's name."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
    if arr.dtype.kind in "US" and not isinstance(values, np.ndarray | pd.Series):
        # a list mixing text and None/NaN: numpy would turn the missing values into the text "None"/"nan"
        arr = np.asarray(values, dtype=object)
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


def _number(value: Any) -> float | None:
    """``value`` as a finite float when it is a number or the text of one ("1", " 2.0 "), else None."""
    if isinstance(value, bool | np.bool_ | int | float | np.integer | np.floating):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _as_numbers(values: np.ndarray) -> np.ndarray:
    """Finite floats as int64 when every one is a whole number (codes 1.0 and 1 print alike), else float."""
    if len(values) and np.all(values == np.round(values)) and np.all(np.abs(values) < 2.0**53):
        return values.astype(np.int64)
    return values.astype(float)


def event_codes(event: Any) -> np.ndarray:
    """Event values as codes are compared: numbers when every value is a number or the text of one (``1``,
    ``1.0`` and ``"1"`` are one code; whole numbers as int64), otherwise the text of each value, exactly as
    given (a numpy str array: ``"CRS"`` and ``"crs"`` are two codes). "nan" and "inf" are text."""
    arr = np.asarray(event)
    if arr.dtype.kind in "biuf":
        as_float = arr.astype(float)
        if np.all(np.isfinite(as_float)):
            return _as_numbers(as_float)
    values = arr.tolist()
    parsed: list[float] = []
    for value in values:
        number = _number(value)
        if number is None:  # text: stop at the first value that is not a number
            return arr.astype(str) if arr.dtype.kind in "US" else np.array([str(v) for v in values], dtype=str)
        parsed.append(number)
    return _as_numbers(np.array(parsed, dtype=float))


def is_numeric_codes(codes: np.ndarray) -> bool:
    """Whether codes from :func:`event_codes` are numbers (else text)."""
    return codes.dtype.kind in "iuf"


def code_like(code: Any, codes: np.ndarray) -> Any:
    """``code`` in the type of ``codes`` (from :func:`event_codes`): a Python int or float when they are numbers
    (None when ``code`` is not a number), its text otherwise."""
    if not is_numeric_codes(codes):
        return str(code)
    number = _number(code)
    if number is None:
        return None
    return int(number) if number == round(number) and abs(number) < 2.0**53 else number


def as_code(code: Any, codes: np.ndarray, name: str) -> Any:
    """:func:`code_like`, refusing a code that is not a number when the event codes are numbers (it could never
    match); ``name`` is the argument's name."""
    value = code_like(code, codes)
    if value is None:
        raise InputError(f"{name} {code!r} is not a number, but the event codes are numbers", field=name)
    return value


def group_values(group: Any, n: int, name: str = "group") -> np.ndarray:
    """Group labels for ``n`` subjects (all ``"all"`` when ``group`` is None); a missing label is an error,
    never a group of its own."""
    if group is None:
        return np.full(n, "all", dtype=object)
    g = as_array(group, name)
    if len(g) != n:
        raise InputError(f"{name} has {len(g)} values but time has {n}", field=name)
    missing = pd.isna(g)
    if np.any(missing):
        raise InputError(f"missing {name} at position {int(np.flatnonzero(missing)[0])}", field=name)
    return g


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
