"""Numbers as stored and shown: a measure is a float or missing (None), never NaN in a record or JSON."""

from __future__ import annotations

import math
from typing import Any


def optional_float(x: Any) -> float | None:
    """``x`` as a float; None when it is None, NaN or not a number. Infinities are kept."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def json_float(x: Any) -> float | None:
    """``x`` as a float fit for JSON (which has no NaN or Infinity): None also for infinite values, such as a
    PRR when no other product has the event."""
    v = optional_float(x)
    return v if v is not None and math.isfinite(v) else None
