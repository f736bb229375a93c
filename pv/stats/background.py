"""Background choices: which case-level rows enter a disproportionality analysis.

Two choices change the comparator (the "background") of every 2x2 table:

* **Suspect roles counted** (FAERS ``role_cod``; E2B G.k.1): ``"ps"`` keeps primary-suspect drug rows only,
  ``"suspect"`` (the default) keeps primary and secondary suspects (PS, SS), ``"all"`` keeps every row
  (PS, SS, concomitant C, interacting I, and rows without a role). A drug row that is not counted does not
  make its case a case "with the product"; the case itself stays in the table through its other rows.
* **Background restriction**: keep only the cases that have, among the rows kept by the role choice, a row
  whose ``column`` value is in a given set, e.g. ``{"indication": {"diffuse large b-cell lymphoma"}}``
  (reports for the same indication: less confounding by indication) or ``{"product": LYMPHOMA_DRUGS}``
  (a product class). Every row of a kept case is kept, so the restricted table still has the other products
  and events of those cases.
  With several columns a case must match all of them. String values match case-insensitively.

The function is pure (DataFrame in, DataFrame out); the database side builds the rows and calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from pv.errors import InputError

ROLE_CHOICES: dict[str, frozenset[str] | None] = {
    "ps": frozenset({"PS"}),
    "suspect": frozenset({"PS", "SS"}),
    "all": None,
}


def _fold(values: pd.Series) -> pd.Series:
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype | pd.CategoricalDtype):
        return values.astype("string").str.strip().str.casefold()
    return values


def select_background(rows: pd.DataFrame, *, roles: str = "suspect", role_col: str = "role",
                      restrict: Mapping[str, Iterable[object]] | None = None,
                      id_col: str = "id") -> pd.DataFrame:
    """The rows that enter the analysis under a role choice and an optional background restriction.

    ``roles`` is ``"ps"``, ``"suspect"`` (PS + SS, default) or ``"all"``; with ``"all"`` the role column
    need not exist. ``restrict`` maps a column to the accepted values (see the module docstring).
    """
    if roles not in ROLE_CHOICES:
        raise InputError(f"unknown role choice {roles!r}: use one of {', '.join(ROLE_CHOICES)}",
                         field="roles")
    allowed = ROLE_CHOICES[roles]
    out = rows
    if allowed is not None:
        if role_col not in rows.columns:
            raise InputError(f"role choice {roles!r} needs a {role_col!r} column", field=role_col)
        role = rows[role_col].astype("string").str.strip().str.upper()
        out = rows.loc[role.isin(allowed).fillna(False).to_numpy(bool)]
    if restrict:
        if id_col not in out.columns:
            raise InputError(f"background restriction needs the case id column {id_col!r}", field=id_col)
        keep_cases: np.ndarray | None = None
        for col, values in restrict.items():
            if col not in out.columns:
                raise InputError(f"background restriction on missing column {col!r}", field=col)
            wanted = pd.Series(list(values))
            wanted = _fold(wanted) if wanted.dtype == object else wanted
            hit = _fold(out[col]).isin(set(wanted.dropna())).fillna(False).to_numpy(bool)
            cases = pd.unique(out[id_col].to_numpy()[hit])
            keep_cases = cases if keep_cases is None else np.intersect1d(keep_cases, cases)
        assert keep_cases is not None
        out = out.loc[out[id_col].isin(keep_cases).to_numpy(bool)]
    return out
