"""Case-level rows as of a date, read from the case store.

As of date D, a case is represented by its version in force: the one of highest precedence among its versions
received on or before D (``case_versions.precedence``, set by the ingest under the rule documented in
:mod:`pv.ingest.store`, which also picks ``cases.current_version_id``). Versions received after D are ignored,
so history replays. Cases listed as deleted are excluded, and so are versions without a receipt date. Of that
version the service takes the drugs in the counted roles (``Drug.drug_key`` is the product dimension: the
mapped product, or the normalised verbatim name) and the reactions (normalised PT), each once per case; event
groups come from the configuration snapshot of the run (a case counts once per group).

On PostgreSQL the versions in force are chosen by one ``DISTINCT ON`` query into a temporary table, and the
three streams (cases, drugs, reactions) are read with ``COPY TO``; on SQLite a ``ROW_NUMBER()`` window does
the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from pv.db import backend_name
from pv.db.bulk import csv_text, read_frame, read_lines

_ORDER = "v.precedence DESC"

_PG_CHOSEN = """
CREATE TEMP TABLE pv_asof ON COMMIT DROP AS
SELECT DISTINCT ON (v.case_key) v.id AS vid, v.sex, v.age_years, v.received_date,
       COALESCE(LEAST(v.initial_received_date, v.received_date), v.received_date) AS first_received,
       v.serious, v.died
FROM case_versions v
WHERE v.received_date <= :as_of {scope}
  AND NOT EXISTS (SELECT 1 FROM deleted_cases d WHERE d.case_key = v.case_key)
ORDER BY v.case_key, {order}
"""

_SQLITE_CHOSEN = """
SELECT vid, sex, age_years, received_date, first_received, serious, died FROM (
  SELECT v.id AS vid, v.sex, v.age_years, v.received_date,
         COALESCE(MIN(v.initial_received_date, v.received_date), v.received_date) AS first_received,
         v.serious, v.died,
         ROW_NUMBER() OVER (PARTITION BY v.case_key ORDER BY {order}) AS rn
  FROM case_versions v
  WHERE v.received_date <= :as_of {scope}
    AND NOT EXISTS (SELECT 1 FROM deleted_cases d WHERE d.case_key = v.case_key)
) WHERE rn = 1
"""


CASE_COLUMNS = ["vid", "sex", "age_years", "received_date", "first_received", "serious", "died"]


@dataclass
class CaseData:
    """The store as of a date: one row per case, and its counted drugs and reactions (by version id)."""

    as_of: dt.date
    cases: pd.DataFrame  # vid, sex, age_years, received_date, first_received, serious, died
    drugs: pd.DataFrame  # vid, product (distinct per case)
    reactions: pd.DataFrame  # vid, pt (distinct per case)
    indications: pd.DataFrame | None = None  # vid, pt (only when the background needs them)


def _in_list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def extract(
    session: Session,
    as_of: dt.date,
    roles: Sequence[str],
    with_indications: bool = False,
    scope: str = "all",
) -> CaseData:
    """Read the case-level data in force at ``as_of`` (see the module docstring).

    ``scope`` "all" takes every source; otherwise only versions of that source (faers, aers, e2b, csv).
    """
    roles_sql = _in_list(sorted(roles))
    scope_sql = "" if scope == "all" else f"AND v.source = {_in_list([scope])}"
    if backend_name(session) == "postgresql":
        session.execute(text(_PG_CHOSEN.format(scope=scope_sql, order=_ORDER)), {"as_of": as_of})
        session.execute(text("ANALYZE pv_asof"))
        flag = "CASE WHEN {0} THEN 't' ELSE 'f' END"
        cases = read_lines(
            session,
            "SELECT vid / 8192 AS grp, vid::text || ',' || " + csv_text("sex") + " || ',' || "
            "COALESCE(age_years::text, '') || ',' || COALESCE(received_date::text, '') || ',' || "
            "COALESCE(first_received::text, '') || ',' || " + flag.format("serious") + " || ',' || "
            + flag.format("died") + " AS line FROM pv_asof",
            CASE_COLUMNS, dtypes={"sex": "str"},
        )
        drugs = read_lines(
            session,
            "SELECT d.case_version_id / 8192 AS grp, d.case_version_id::text || ',' || "
            + csv_text("d.drug_key") + " AS line FROM drugs d JOIN pv_asof c ON c.vid = d.case_version_id "
            f"WHERE d.role IN ({roles_sql}) AND d.drug_key <> ''",
            ["vid", "product"], dtypes={"product": "category"},
        )
        reactions = read_lines(
            session,
            "SELECT r.case_version_id / 8192 AS grp, r.case_version_id::text || ',' || " + csv_text("r.pt")
            + " AS line FROM reactions r JOIN pv_asof c ON c.vid = r.case_version_id WHERE r.pt <> ''",
            ["vid", "pt"], dtypes={"pt": "category"},
        )
        indications = None
        if with_indications:
            indications = read_lines(
                session,
                "SELECT i.case_version_id / 8192 AS grp, i.case_version_id::text || ',' || " + csv_text("i.pt")
                + " AS line FROM indications i JOIN pv_asof c ON c.vid = i.case_version_id",
                ["vid", "pt"], dtypes={"pt": "str"},
            )
        session.execute(text("DROP TABLE IF EXISTS pv_asof"))
    else:
        sqlite_chosen = _SQLITE_CHOSEN.format(scope=scope_sql, order=_ORDER)
        chosen = f"({sqlite_chosen})"
        cases = read_frame(session, sqlite_chosen, {"as_of": as_of})
        drugs = read_frame(
            session,
            f"SELECT d.case_version_id AS vid, d.drug_key AS product FROM drugs d "
            f"JOIN {chosen} c ON c.vid = d.case_version_id WHERE d.role IN ({roles_sql}) AND d.drug_key <> ''",
            {"as_of": as_of},
        )
        reactions = read_frame(
            session,
            f"SELECT r.case_version_id AS vid, r.pt FROM reactions r "
            f"JOIN {chosen} c ON c.vid = r.case_version_id WHERE r.pt <> ''",
            {"as_of": as_of},
        )
        indications = None
        if with_indications:
            indications = read_frame(
                session,
                f"SELECT i.case_version_id AS vid, i.pt FROM indications i "
                f"JOIN {chosen} c ON c.vid = i.case_version_id",
                {"as_of": as_of},
            )
    return CaseData(
        as_of=as_of,
        cases=_clean_cases(cases),
        drugs=_sorted(drugs, "product"),
        reactions=_sorted(reactions, "pt"),
        indications=indications,
    )


def _sorted(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    """Sorted by case then value, the value as a categorical with sorted categories."""
    frame = frame.astype({"vid": "int64"})
    values = frame[col]
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(str).astype("category")
    frame[col] = values.cat.as_ordered().cat.reorder_categories(sorted(values.cat.categories.astype(str)))
    frame[col] = frame[col].cat.as_unordered()
    frame = frame.sort_values(["vid", col], kind="stable")
    # once per case and value (a report may list the same PT or drug twice)
    return frame[~frame.duplicated(["vid", col])].reset_index(drop=True)


def _to_date(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce")


def _clean_cases(cases: pd.DataFrame) -> pd.DataFrame:
    cases = cases.copy()
    cases["vid"] = cases["vid"].astype("int64")
    cases["received_date"] = _to_date(cases["received_date"])
    cases["first_received"] = _to_date(cases["first_received"]).fillna(cases["received_date"])
    cases["age_years"] = pd.to_numeric(cases["age_years"], errors="coerce")
    for flag in ("serious", "died"):
        if cases[flag].dtype != bool:
            cases[flag] = cases[flag].map(_truthy).astype(bool)
    return cases.sort_values("vid").reset_index(drop=True)


def _truthy(v: object) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("t", "true", "1")
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return False
    return bool(v)


def add_strata(cases: pd.DataFrame, age_bands: Sequence[float]) -> pd.DataFrame:
    """Add the stratification columns: sex (F/M/UNK), age_band (e.g. '18-44', '75+', 'unknown'),
    report_year."""
    cases = cases.copy()
    sex = cases["sex"].astype(object).where(cases["sex"].isin(["F", "M"]), "UNK")
    cases["sex"] = sex.astype(str).astype("category")
    edges = list(age_bands)
    labels = [
        f"{_fmt(lo)}-{_fmt(hi - 1)}" if i + 1 < len(edges) else f"{_fmt(lo)}+"
        for i, (lo, hi) in enumerate(zip(edges, [*edges[1:], np.inf], strict=True))
    ]
    idx = np.searchsorted(
        np.asarray(edges, dtype=float), cases["age_years"].to_numpy(dtype=float), side="right"
    )
    age = np.where(
        (idx == 0) | cases["age_years"].isna().to_numpy(),
        "unknown",
        np.asarray(["", *labels], dtype=object)[idx],
    )
    cases["age_band"] = pd.Categorical(age.astype(str))
    cases["report_year"] = cases["received_date"].dt.year.astype("int64").astype(str).astype("category")
    return cases


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
