"""Writing a parsed :class:`~pv.ingest.batch.Batch` into the case store, with deduplication and deletions.

Rules (the same on PostgreSQL and SQLite, and independent of the order in which batches are loaded):

- A source file already loaded (same kind and sha256) changes nothing.
- A version (case_key, report_id) is inserted once; a repeat of it in a later file is ignored.
- Case keys listed in a deletion file are recorded in ``deleted_cases`` for good: the case and all its
  versions are removed, and versions of it in any later load (even of an earlier quarter) are not loaded.
- Version precedence (FDA's rule for FAERS, applied to every source): of two versions of a case, the one
  with the higher ``version`` (caseversion) takes precedence; ties go to the later ``received_date``
  (fda_dt; missing dates rank lowest), then to the numerically higher ``report_id`` (primaryid), then to the
  textually higher one, so the order is always total. ``case_versions.precedence`` is the rank of a version
  among the stored versions of its case under this rule (0 for the lowest), recomputed for every case that
  gets a new version (:func:`version_precedence`). This is the one place the rule is implemented.
- The current version of a case is its version of highest precedence. ``cases`` points at it, so a
  follow-up replaces the earlier version whole (drugs, reactions, indications) for current-state queries,
  while every version stays in ``case_versions`` for as-of replay, where the version in force at a date is
  the one of highest precedence among those received by then (:mod:`pv.analysis.extract`).
- ``cases.initial_received_date`` is the earliest of the versions' initial (or, lacking it, received) dates;
  ``cases.latest_received_date`` the latest received date of any version.

Drugs are mapped to products with :class:`~pv.normalise.ProductDictionary` (each distinct
drugname/ingredient pair once); ``drug_key`` is the product when mapped, else the normalised verbatim name.
Reaction and indication terms get their normalised PT. ``event_group_terms`` is synced from the event
groups on every load.

Bulk writes go through :mod:`pv.db.bulk` (PostgreSQL ``COPY``, ``executemany`` on SQLite). :func:`load_batch`
does not commit: the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import UniqueConstraint, delete, func, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex
from sqlalchemy.sql.schema import Table

from pv.db import backend_name
from pv.db.bulk import drop_temp, temp_table, write_frame
from pv.ingest.batch import MAX_CASE_KEY, MAX_REPORT_ID, QUARANTINE_COLUMNS, Batch
from pv.models.casestore import (
    Case,
    CaseVersion,
    DeletedCase,
    DeliveryReplacement,
    Drug,
    EventGroupTerm,
    Indication,
    Quarantine,
    Reaction,
    SourceFile,
)
from pv.normalise import (
    EventGroups,
    ProductDictionary,
    default_event_groups,
    default_products,
    drug_key,
    normalise_pt,
)

LOAD_STAGES = ("replacement", "deletions", "versions", "drugs", "reactions", "indications", "cases", "quarantine")
_LOCK_ID = 7_461_029_311  # pg advisory lock: one loader at a time per database
_BULK_MIN = 50_000  # new versions from which a PostgreSQL load may rebuild indexes instead of updating them


@dataclass(frozen=True)
class LoadSummary:
    """What one :func:`load_batch` call changed."""

    cases_added: int = 0
    cases_updated: int = 0
    cases_deleted: int = 0
    versions_loaded: int = 0
    rows_quarantined: int = 0
    skipped_duplicate_file: bool = False
    source_file_id: int | None = None
    #: the earlier deliveries of the same quarter this file replaced: their DeliveryReplacement summaries
    replaced: tuple[dict[str, Any], ...] = ()


# ---------------------------------------------------------------------------------------------- large loads
def _is_bulk(session: Session, n_new: int) -> bool:
    """A load big enough to rebuild indexes: >= 50,000 new versions and at least half the stored ones."""
    if backend_name(session) != "postgresql" or n_new < _BULK_MIN:
        return False
    stored = session.execute(text(
        "SELECT GREATEST(reltuples, 0) FROM pg_class WHERE relname = 'case_versions'")).scalar()
    return n_new >= 0.5 * float(stored or 0)


@contextmanager
def _bulk_mode(session: Session, tables: list[Table], enabled: bool) -> Iterator[None]:
    """For a large load on PostgreSQL: drop the tables' secondary indexes and foreign keys, then rebuild them.

    This is PostgreSQL's own advice for populating a database: building an index by one sort and checking a
    foreign key by one join are much faster than maintaining them row by row. Unique constraints are
    re-added (and so re-checked) too; primary keys stay. Everything is inside the load's transaction, so a
    failure rolls it all back; the drop holds an exclusive lock on those tables until commit (readers wait
    for the load), which is why it is used only when the batch is large relative to the store.
    """
    if not enabled:
        yield
        return
    indexes = [idx for table in tables for idx in table.indexes]
    foreign_keys = [fk for table in tables for fk in table.foreign_key_constraints]
    uniques = [c for table in tables for c in table.constraints if isinstance(c, UniqueConstraint)]
    for constraint in [*foreign_keys, *uniques]:
        session.execute(DropConstraint(constraint))
    for idx in indexes:
        session.execute(DropIndex(idx))
    yield
    # sort in memory when building (the server default, 64 MB, spills a large load's sorts to disk)
    session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for idx in indexes:
        session.execute(CreateIndex(idx))
    for constraint in [*uniques, *foreign_keys]:
        session.execute(AddConstraint(constraint))


def _reserve_ids(session: Session, n: int) -> int:
    """First of ``n`` consecutive new case_versions ids."""
    if backend_name(session) == "postgresql":
        last = session.execute(text(
            "SELECT setval(pg_get_serial_sequence('case_versions', 'id'), "
            "nextval(pg_get_serial_sequence('case_versions', 'id')) + :n - 1)"), {"n": n}).scalar_one()
        return int(last) - n + 1
    top = session.execute(select(func.max(CaseVersion.id))).scalar()
    return int(top or 0) + 1


# ---------------------------------------------------------------------------------------------- the rules
def _ranks(versions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Case codes (by first appearance) and the precedence of each row among the rows of its case."""
    n = len(versions)
    case_codes = pd.factorize(versions["case_key"].astype(str))[0]
    received = pd.to_datetime(versions["received_date"], errors="coerce").to_numpy(dtype="datetime64[ns]")
    received_rank = received.astype("int64")  # NaT is the smallest int64: missing dates rank lowest
    report_num = pd.to_numeric(versions["report_id"], errors="coerce").to_numpy(dtype=float)
    report_num = np.where(np.isnan(report_num), -np.inf, report_num)
    report_txt = pd.factorize(versions["report_id"].astype(str), sort=True)[0]
    version = versions["version"].to_numpy(dtype="int64")
    order = np.lexsort((report_txt, report_num, received_rank, version, case_codes))  # last key first
    grouped = case_codes[order]
    first = np.r_[True, grouped[1:] != grouped[:-1]]
    position = np.arange(n)
    ranks = np.empty(n, dtype="int64")
    ranks[order] = position - np.maximum.accumulate(np.where(first, position, 0))
    return case_codes, ranks


def version_precedence(versions: pd.DataFrame) -> pd.Series:
    """The precedence of each version among the versions of its case in ``versions`` (columns case_key,
    report_id, version, received_date): 0 for the lowest, k-1 for the highest of a case's k versions, under
    the rule of the module docstring. Indexed like ``versions``."""
    if versions.empty:
        return pd.Series(dtype="int64", index=versions.index, name="precedence")
    return pd.Series(_ranks(versions)[1], index=versions.index, name="precedence")


def _highest(case_codes: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Positions of the row of highest precedence of each case, in the order of the case codes."""
    top = np.bincount(case_codes)[case_codes] - 1
    rows = np.flatnonzero(ranks == top)
    return rows[np.argsort(case_codes[rows], kind="stable")]


def current_versions(versions: pd.DataFrame) -> pd.DataFrame:
    """One row per case_key: its current version, the one of highest :func:`version_precedence`."""
    frame = versions.reset_index(drop=True)
    if frame.empty:
        return frame
    return frame.iloc[_highest(*_ranks(frame))]


def _case_dates(versions: pd.DataFrame) -> pd.DataFrame:
    received = pd.to_datetime(versions["received_date"], errors="coerce")
    initial = pd.to_datetime(versions["initial_received_date"], errors="coerce").fillna(received)
    frame = pd.DataFrame({"case_key": versions["case_key"].to_numpy(), "initial": initial.to_numpy(),
                          "latest": received.to_numpy()})
    out = frame.groupby("case_key", sort=False).agg(initial=("initial", "min"), latest=("latest", "max"))
    for col in ("initial", "latest"):
        values = out[col]
        out[col] = values.astype(object).where(values.notna(), None)
        out[col] = [v.date() if v is not None else None for v in out[col]]
    return out


def _sync_event_groups(session: Session, groups: EventGroups) -> None:
    wanted = set(groups.pairs())
    have = {(g, pt) for g, pt in session.execute(select(EventGroupTerm.group_name, EventGroupTerm.pt))}
    if wanted == have:
        return
    session.execute(delete(EventGroupTerm))
    if wanted:
        session.execute(insert(EventGroupTerm), [{"group_name": g, "pt": pt} for g, pt in sorted(wanted)])


def _delete_cases(session: Session, keys: list[str]) -> int:
    """Remove the cases with these keys and every version (with drugs, reactions, indications)."""
    if not keys:
        return 0
    temp_table(session, "_pv_del", {"case_key": "VARCHAR(100)"}, pd.DataFrame({"case_key": keys}))
    in_keys = "SELECT case_key FROM _pv_del"
    removed = session.execute(text(f"SELECT COUNT(*) FROM cases WHERE case_key IN ({in_keys})")).scalar_one()
    session.execute(text(f"DELETE FROM cases WHERE case_key IN ({in_keys})"))
    versions = f"SELECT id FROM case_versions WHERE case_key IN ({in_keys})"
    for child in ("drugs", "reactions", "indications"):
        session.execute(text(f"DELETE FROM {child} WHERE case_version_id IN ({versions})"))
    session.execute(text(f"DELETE FROM case_versions WHERE case_key IN ({in_keys})"))
    drop_temp(session, "_pv_del")
    return int(removed)


def _replace_earlier_deliveries(session: Session, batch: Batch, source: SourceFile) -> list[dict[str, Any]]:
    """Replace what the earlier deliveries of ``batch``'s quarter loaded, when ``batch`` is another file of the
    same kind and quarter (a corrected redelivery, or the same quarter packed again).

    A version the redelivery holds unchanged (same fields, drugs and reactions) stays as it is and passes to the
    new file; a version it changes or no longer holds is removed with its drugs, reactions and indications
    (a changed one is then loaded from the redelivery); the deletions the earlier DELETE files recorded are
    withdrawn (the redelivery brings its own); the cases touched are recomputed from what remains. Each
    earlier file is marked replaced and the change audited (:class:`DeliveryReplacement`). The caller then
    loads ``batch`` as usual."""
    if batch.quarter is None or batch.kind not in ("faers", "aers"):
        return []
    earlier = session.scalars(select(SourceFile).where(
        SourceFile.kind == batch.kind, SourceFile.quarter == batch.quarter, SourceFile.id != source.id,
        SourceFile.replaced_by_id.is_(None)).order_by(SourceFile.id)).all()
    if not earlier:
        return []
    summaries = []
    now = _batch_fingerprints(batch)
    for old in earlier:
        stored = _stored_fingerprints(session, old.id)
        old_keys, new_keys = set(stored), set(now)
        same = {k for k in old_keys & new_keys if stored[k][1] == now[k]}
        gone = old_keys - same
        counts = {"drugs_before": 0, "reactions_before": 0}
        ids = pd.DataFrame({"id": [stored[k][0] for k in gone]}, dtype="int64")
        if len(ids):
            temp_table(session, "_pv_old", {"id": "BIGINT PRIMARY KEY"}, ids)
            for child, label in (("drugs", "drugs_before"), ("reactions", "reactions_before")):
                counts[label] = int(session.execute(text(
                    f"SELECT COUNT(*) FROM {child} WHERE case_version_id IN (SELECT id FROM _pv_old)")).scalar_one())
            for child in ("drugs", "reactions", "indications"):
                session.execute(text(f"DELETE FROM {child} WHERE case_version_id IN (SELECT id FROM _pv_old)"))
            session.execute(text("DELETE FROM cases WHERE current_version_id IN (SELECT id FROM _pv_old)"))
            session.execute(text("DELETE FROM case_versions WHERE id IN (SELECT id FROM _pv_old)"))
            drop_temp(session, "_pv_old")
            _refresh_cases(session, sorted({case_key for case_key, _ in gone}))
        if same:  # kept as they are: they are the new delivery's now
            kept = pd.DataFrame({"id": [stored[k][0] for k in same]}, dtype="int64")
            temp_table(session, "_pv_kept", {"id": "BIGINT PRIMARY KEY"}, kept)
            session.execute(text("UPDATE case_versions SET source_file_id = :new WHERE id IN "
                                 "(SELECT id FROM _pv_kept)"), {"new": source.id})
            drop_temp(session, "_pv_kept")
        withdrawn = session.scalar(select(func.count()).select_from(DeletedCase)
                                   .where(DeletedCase.source_file_id == old.id))
        session.execute(delete(DeletedCase).where(DeletedCase.source_file_id == old.id))
        summary = {
            "quarter": batch.quarter, "replaced_file": old.name, "replaced_file_id": old.id,
            "by_file": source.name, "by_file_id": source.id,
            "versions_before": len(old_keys), "versions_now": len(new_keys),
            "in_both": len(old_keys & new_keys), "unchanged": len(same),
            "changed": len((old_keys & new_keys) - same), "only_before": len(old_keys - new_keys),
            "only_now": len(new_keys - old_keys), **counts,
            "drugs_now": len(batch.drugs), "reactions_now": len(batch.reactions),
            "rows_quarantined_before": old.rows_quarantined, "rows_quarantined_now": len(batch.quarantine),
            "deletions_withdrawn": int(withdrawn or 0),
        }
        old.replaced_by_id = source.id
        session.add(DeliveryReplacement(replaced_file_id=old.id, by_file_id=source.id, quarter=batch.quarter,
                                        summary=summary))
        summaries.append(summary)
    session.flush()
    return summaries


Fingerprint = tuple[Any, ...]
_V_FIELDS = ("version", "initial_or_followup", "received_date", "initial_received_date", "event_date", "age_years",
             "age_group", "sex", "weight_kg", "reporter_country", "occurrence_country", "report_type")
_CHILD_FIELDS = {
    "drugs": ("seq", "role", "drugname", "active_ingredient", "route", "dose_text", "start_date", "end_date"),
    "reactions": ("pt_verbatim", "meddra_code", "outcome"),
    "indications": ("drug_seq", "term"),
}


def _norm(value: Any) -> str:
    """One text form of a stored or parsed value, for comparing a redelivery with what is stored."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    if isinstance(value, float | np.floating):
        return f"{float(value):.9g}"
    if isinstance(value, int | np.integer):
        return str(int(value))
    text_value = str(value)
    return text_value[:10] if len(text_value) >= 10 and text_value[4:5] == "-" and text_value[:4].isdigit() \
        and text_value[10:11] in ("", " ", "T") else text_value


def _rows(frame: pd.DataFrame, fields: tuple[str, ...]) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    out: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    columns = [frame[f].tolist() for f in fields]
    for i, key in enumerate(zip(frame["case_key"].astype(str), frame["report_id"].astype(str), strict=True)):
        out.setdefault(key, []).append(tuple(_norm(c[i]) for c in columns))
    return out


def _batch_fingerprints(batch: Batch) -> dict[tuple[str, str], Fingerprint]:
    """What each version of ``batch`` would store: its fields, outcomes, drugs, reactions and indications."""
    children = {name: _rows(getattr(batch, name), fields) for name, fields in _CHILD_FIELDS.items()}
    versions = batch.versions
    out = {}
    codes = set(dict(_FLAGS).values())
    fields = _rows(versions.assign(version=pd.to_numeric(versions["version"], errors="coerce").fillna(1)
                                   .astype("int64")), _V_FIELDS)
    for key, outcomes in zip(zip(versions["case_key"].astype(str), versions["report_id"].astype(str),
                                 strict=True), versions["outcomes"], strict=True):
        listed = outcomes if isinstance(outcomes, list | tuple) else []
        out[key] = (tuple(fields[key][0]), tuple(sorted({c for c in listed if c in codes})),
                    *(tuple(sorted(children[name].get(key, []))) for name in _CHILD_FIELDS))
    return out


def _stored_fingerprints(session: Session, source_file_id: int) -> dict[tuple[str, str], tuple[int, Fingerprint]]:
    """(version id, fingerprint) of every version a stored file loaded (the fingerprint as in
    :func:`_batch_fingerprints`)."""
    of_file = {"f": source_file_id}
    flags = [flag for flag, _ in _FLAGS]
    versions = session.execute(text(
        f"SELECT id, case_key, report_id, {', '.join(_V_FIELDS)}, {', '.join(flags)} FROM case_versions "
        "WHERE source_file_id = :f"), of_file).all()
    ids = "SELECT id FROM case_versions WHERE source_file_id = :f"
    children: dict[str, dict[int, list[tuple[str, ...]]]] = {}
    for name, fields in _CHILD_FIELDS.items():
        rows: dict[int, list[tuple[str, ...]]] = {}
        for row in session.execute(text(f"SELECT case_version_id, {', '.join(fields)} FROM {name} "
                                        f"WHERE case_version_id IN ({ids})"), of_file):
            rows.setdefault(int(row[0]), []).append(tuple(_norm(v) for v in row[1:]))
        children[name] = rows
    out = {}
    n = len(_V_FIELDS)
    for row in versions:
        vid, ck, rid = int(row[0]), str(row[1]), str(row[2])
        fields = tuple(_norm(v) for v in row[3:3 + n])
        outcomes = tuple(sorted(code for (_, code), on in zip(_FLAGS, row[3 + n:], strict=True) if on))
        out[(ck, rid)] = (vid, (fields, outcomes,
                                *(tuple(sorted(children[name].get(vid, []))) for name in _CHILD_FIELDS)))
    return out


def _refresh_cases(session: Session, keys: list[str]) -> None:
    """Recompute the precedence of the remaining versions of these cases and their current version; a case
    with no version left is removed."""
    stored, _ = _stored_versions(session, pd.DataFrame({"case_key": keys}))
    remaining = set(stored["case_key"])
    gone = [k for k in keys if k not in remaining]
    if gone:
        temp_table(session, "_pv_gone", {"case_key": "VARCHAR(100)"}, pd.DataFrame({"case_key": gone}))
        session.execute(text("DELETE FROM cases WHERE case_key IN (SELECT case_key FROM _pv_gone)"))
        drop_temp(session, "_pv_gone")
    if stored.empty:
        return
    stored = stored.reset_index(drop=True)
    stored["version"] = stored["version"].astype("int64")
    case_codes, ranks = _ranks(stored)
    moved = pd.DataFrame({"id": stored["id"].to_numpy(dtype="int64"), "precedence": ranks})
    _update_precedence(session, moved[ranks != stored["precedence"].to_numpy(dtype="int64")])
    current = stored.iloc[_highest(case_codes, ranks)].join(_case_dates(stored), on="case_key")
    _upsert_cases(session, current)


def _children(frame: pd.DataFrame, ids: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of ``frame`` that belong to a newly inserted version, with that version's id."""
    if frame.empty:
        return frame, pd.Series(dtype="int64")
    position = ids.index.get_indexer(_version_key(frame))
    keep = position >= 0
    return frame[keep], pd.Series(ids.to_numpy()[position[keep]], index=frame.index[keep], dtype="int64")


def _version_key(frame: pd.DataFrame) -> pd.Index:
    """(case_key, report_id) as one string, for hash joins (no sorting, unlike a MultiIndex)."""
    return pd.Index(frame["case_key"].astype(str) + "\x1f" + frame["report_id"].astype(str))


def _map_drugs(drugs: pd.DataFrame, products: ProductDictionary) -> tuple[list[str | None], list[str]]:
    names = drugs["drugname"].tolist()
    ingredients = drugs["active_ingredient"].tolist()
    ingredients = [None if (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))) else v
                   for v in ingredients]
    pairs = dict.fromkeys(zip(names, ingredients, strict=True))
    mapped = {pair: products.match(*pair) for pair in pairs}
    keys: dict[tuple[Any, Any], str] = {}
    for pair, product in mapped.items():
        keys[pair] = product or drug_key(pair[0]) or drug_key(pair[1]) or ""
    pair_list = list(zip(names, ingredients, strict=True))
    return [mapped[p] for p in pair_list], [keys[p] for p in pair_list]


def _strings(values: pd.Series) -> Any:
    """A non-null text column as an array (Arrow strings kept as they are)."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.fillna("").array
    return values.astype(str).to_numpy()


def _normalised(values: pd.Series) -> pd.Series:
    """normalise_pt of each value, computed once per distinct value."""
    codes, uniques = pd.factorize(values.astype(values.dtype if isinstance(values.dtype, pd.StringDtype)
                                                 else str))
    normal = np.array([normalise_pt(str(u)) for u in uniques] + [""], dtype=object)
    return pd.Series(normal[np.where(codes < 0, len(uniques), codes)], index=values.index)


# ---------------------------------------------------------------------------------------------- identifiers
def without_overlong_ids(batch: Batch) -> tuple[Batch, pd.DataFrame]:
    """``batch`` without the versions whose case key or report id is longer than the store holds, and their
    drugs, reactions and indications; and the quarantine rows that say so. An identifier is never cut: a cut one
    would merge two reports sharing its first characters, or part a version from its drugs and reactions.
    (The parsers quarantine such rows with their line; this is the store's own guard.)"""
    def too_long(frame: pd.DataFrame) -> pd.Series:
        return (frame["case_key"].astype(str).str.len().gt(MAX_CASE_KEY)
                | frame["report_id"].astype(str).str.len().gt(MAX_REPORT_ID))

    bad = too_long(batch.versions)
    if not bad.any() and not any(too_long(f).any() for f in (batch.drugs, batch.reactions, batch.indications)):
        return batch, batch.quarantine.iloc[0:0]
    rows = batch.versions[bad]
    quarantine = pd.DataFrame({
        "file": batch.name, "line": None,
        "field": np.where(rows["case_key"].astype(str).str.len().gt(MAX_CASE_KEY), "case_key", "report_id"),
        "raw": (rows["case_key"].astype(str) + " / " + rows["report_id"].astype(str)).str.slice(0, 2000),
        "reason": f"identifier longer than the case store holds (case id {MAX_CASE_KEY}, report id "
                  f"{MAX_REPORT_ID} characters): the whole report is quarantined, never cut",
    }, columns=QUARANTINE_COLUMNS)
    kept = dataclasses.replace(
        batch,
        versions=batch.versions[~bad],
        drugs=batch.drugs[~too_long(batch.drugs)],
        reactions=batch.reactions[~too_long(batch.reactions)],
        indications=batch.indications[~too_long(batch.indications)],
    )
    return kept, quarantine


# ---------------------------------------------------------------------------------------------- load_batch
def load_batch(
    session: Session,
    batch: Batch,
    products: ProductDictionary | None = None,
    event_groups: EventGroups | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadSummary:
    """Write ``batch`` into the case store following the module's rules; the caller commits.

    ``products``/``event_groups`` default to the configured dictionaries. ``progress`` is called with each
    stage name of :data:`LOAD_STAGES` as it completes.
    """
    step = progress or (lambda _stage: None)
    products = products or default_products()
    event_groups = event_groups or default_event_groups()
    if backend_name(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    else:  # SQLite: take the write lock before reading (a second loader waits here, then sees the first's file)
        session.execute(text("UPDATE source_files SET id = id WHERE 0 = 1"))

    existing_file = session.execute(
        select(SourceFile.id).where(SourceFile.kind == batch.kind, SourceFile.sha256 == batch.sha256)
    ).scalar()
    if existing_file is not None:
        return LoadSummary(skipped_duplicate_file=True, source_file_id=int(existing_file))

    source = SourceFile(kind=batch.kind, name=batch.name[:500], sha256=batch.sha256, quarter=batch.quarter,
                        rows_read=batch.rows_read)
    session.add(source)
    session.flush()
    _sync_event_groups(session, event_groups)

    # a corrected redelivery of a quarter replaces what the earlier delivery of that quarter loaded
    replaced = _replace_earlier_deliveries(session, batch, source)
    step("replacement")

    # deletions: persistent, applied to what is stored and to this and every later batch
    already_deleted = set(session.execute(select(DeletedCase.case_key)).scalars())
    new_deleted = [k for k in dict.fromkeys(str(k) for k in batch.deleted_case_keys)
                   if len(k) <= MAX_CASE_KEY and k not in already_deleted]
    cases_deleted = _delete_cases(session, new_deleted)
    if new_deleted:
        session.execute(insert(DeletedCase),
                        [{"case_key": k, "source_file_id": source.id} for k in new_deleted])
    deleted = already_deleted | set(new_deleted)
    step("deletions")

    batch, too_long = without_overlong_ids(batch)
    versions = batch.versions.copy()
    versions["case_key"] = versions["case_key"].astype(str)
    versions["report_id"] = versions["report_id"].astype(str)
    versions = versions[~versions["case_key"].isin(deleted)]
    versions = versions.drop_duplicates(["case_key", "report_id"], keep="first")
    stored, stored_cases = _stored_versions(session, versions)

    new = versions[~_version_key(versions).isin(_version_key(stored))].reset_index(drop=True)
    n_new = len(new)
    new["id"] = np.arange(n_new, dtype="int64") + (_reserve_ids(session, n_new) if n_new else 0)
    new["version"] = pd.to_numeric(new["version"], errors="coerce").fillna(1).astype("int64")
    ids = pd.Series(new["id"].to_numpy(), index=_version_key(new), dtype="int64")
    for flag, values in _outcome_flags(new["outcomes"]).items():
        new[flag] = values
    # the versions of every case that gets a new one, ranked: new precedences, stored ones that move
    affected = stored[stored["case_key"].isin(set(new["case_key"]))]
    cols = ["id", "case_key", "report_id", "version", "received_date", "initial_received_date"]
    pool = pd.concat([affected[cols], new[cols]], ignore_index=True)
    pool["version"] = pool["version"].astype("int64")
    case_codes, ranks = _ranks(pool) if len(pool) else (np.zeros(0, "int64"), np.zeros(0, "int64"))
    new["precedence"] = ranks[len(affected):]
    stored_ranks = ranks[:len(affected)]
    moved = pd.DataFrame({"id": affected["id"].to_numpy(dtype="int64"), "precedence": stored_ranks})
    moved = moved[stored_ranks != affected["precedence"].to_numpy(dtype="int64")]
    tables = [CaseVersion.__table__, Drug.__table__, Reaction.__table__, Indication.__table__, Case.__table__]
    added = updated = 0
    with _bulk_mode(session, tables, _is_bulk(session, n_new)):  # type: ignore[arg-type]
        _update_precedence(session, moved)
        _insert_versions(session, new, source.id, batch.kind)
        step("versions")
        _insert_drugs(session, batch.drugs, ids, products)
        step("drugs")
        _insert_reactions(session, batch.reactions, ids)
        step("reactions")
        _insert_indications(session, batch.indications, ids)
        step("indications")
        if n_new:
            current = pool.iloc[_highest(case_codes, ranks)].join(_case_dates(pool), on="case_key")
            before = current["case_key"].map(stored_cases)
            added = int(before.isna().sum())
            updated = int((before.notna() & (before != current["id"])).sum())
            _write_cases(session, current, before.isna().to_numpy(), new, batch.kind)
    step("cases")

    quarantine = pd.concat([batch.quarantine, too_long], ignore_index=True) if len(too_long) else batch.quarantine
    if len(quarantine):
        write_frame(session, Quarantine.__table__, pd.DataFrame({  # type: ignore[arg-type]
            "source_file_id": source.id, "file": quarantine["file"].astype(str).to_numpy(),
            "line": pd.to_numeric(quarantine["line"], errors="coerce").astype("Int64").to_numpy(),
            "field": quarantine["field"].to_numpy(), "raw": quarantine["raw"].to_numpy(),
            "reason": quarantine["reason"].astype(str).to_numpy(),
            "created_at": dt.datetime.now(dt.UTC),
        }))
    step("quarantine")

    summary = LoadSummary(cases_added=added, cases_updated=updated, cases_deleted=cases_deleted,
                          versions_loaded=n_new, rows_quarantined=len(quarantine), source_file_id=source.id,
                          replaced=tuple(replaced))
    source.versions_loaded = n_new
    source.cases_added = added
    source.cases_updated = updated
    source.cases_deleted = cases_deleted
    source.rows_quarantined = len(quarantine)
    session.flush()
    return summary


def _stored_versions(session: Session, versions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The stored versions of the batch's case keys, and their cases' current version ids."""
    stored = pd.DataFrame(columns=["id", "case_key", "report_id", "version", "received_date",
                                   "initial_received_date", "precedence"])
    keys = pd.DataFrame({"case_key": pd.unique(versions["case_key"])})
    if not len(keys):
        return stored, {}
    temp_table(session, "_pv_keys", {"case_key": "VARCHAR(100)"}, keys)
    rows = session.execute(text(
        "SELECT cv.id, cv.case_key, cv.report_id, cv.version, cv.received_date, cv.initial_received_date, "
        "cv.precedence FROM case_versions cv JOIN _pv_keys k ON k.case_key = cv.case_key")).all()
    if rows:
        stored = pd.DataFrame(rows, columns=stored.columns)
    stored_cases = {k: int(v) for k, v in session.execute(text(
        "SELECT c.case_key, c.current_version_id FROM cases c JOIN _pv_keys k ON k.case_key = c.case_key"))}
    drop_temp(session, "_pv_keys")
    return stored, stored_cases


_FLAGS = (("died", "DE"), ("life_threatening", "LT"), ("hospitalised", "HO"), ("disabled", "DS"),
          ("congenital_anomaly", "CA"), ("required_intervention", "RI"), ("other_serious", "OT"))


def _outcome_flags(outcomes: pd.Series) -> dict[str, np.ndarray]:
    """Seriousness flags from the FAERS outcome codes; serious = any of them."""
    sets = [set(o) if isinstance(o, (list, tuple, set)) else set() for o in outcomes]
    flags = {flag: np.fromiter((code in o for o in sets), dtype=bool, count=len(sets))
             for flag, code in _FLAGS}
    flags["serious"] = np.logical_or.reduce(list(flags.values())) if sets else np.zeros(0, dtype=bool)
    return flags


def _update_precedence(session: Session, moved: pd.DataFrame) -> None:
    """Set the precedence of stored versions whose rank changed (``moved``: id, precedence), in one UPDATE."""
    if moved.empty:
        return
    temp_table(session, "_pv_precedence", {"id": "BIGINT PRIMARY KEY", "precedence": "INTEGER"}, moved)
    session.execute(text(
        "UPDATE case_versions SET precedence = t.precedence FROM _pv_precedence t WHERE case_versions.id = t.id"))
    drop_temp(session, "_pv_precedence")


def _insert_versions(session: Session, new: pd.DataFrame, source_id: int, kind: str) -> None:
    if new.empty:
        return
    write_frame(session, CaseVersion.__table__, pd.DataFrame({  # type: ignore[arg-type]
        "id": new["id"], "case_key": new["case_key"], "report_id": new["report_id"],
        "version": new["version"], "precedence": new["precedence"], "source_file_id": source_id, "source": kind,
        "initial_or_followup": new["initial_or_followup"], "received_date": new["received_date"],
        "initial_received_date": new["initial_received_date"], "event_date": new["event_date"],
        "age_years": pd.to_numeric(new["age_years"], errors="coerce"), "age_group": new["age_group"],
        "sex": new["sex"], "weight_kg": pd.to_numeric(new["weight_kg"], errors="coerce"),
        "reporter_country": new["reporter_country"], "occurrence_country": new["occurrence_country"],
        "report_type": new["report_type"], "serious": new["serious"],
        **{flag: new[flag] for flag, _ in _FLAGS},
    }))


def _insert_drugs(session: Session, drugs: pd.DataFrame, ids: pd.Series, products: ProductDictionary) -> None:
    drugs, version_id = _children(drugs, ids)
    if drugs.empty:
        return
    product, key = _map_drugs(drugs, products)
    write_frame(session, Drug.__table__, pd.DataFrame({  # type: ignore[arg-type]
        "case_version_id": version_id.to_numpy(),
        "seq": pd.to_numeric(drugs["seq"], errors="coerce").astype("Int64").to_numpy(),
        "role": drugs["role"].array, "drugname": drugs["drugname"].fillna("").array,
        "active_ingredient": drugs["active_ingredient"].array, "product": product,
        "drug_key": key, "route": drugs["route"].array, "dose_text": drugs["dose_text"].array,
        "start_date": drugs["start_date"].to_numpy(), "end_date": drugs["end_date"].to_numpy(),
    }))


def _insert_reactions(session: Session, reactions: pd.DataFrame, ids: pd.Series) -> None:
    reactions, version_id = _children(reactions, ids)
    if reactions.empty:
        return
    write_frame(session, Reaction.__table__, pd.DataFrame({  # type: ignore[arg-type]
        "case_version_id": version_id.to_numpy(),
        "pt_verbatim": _strings(reactions["pt_verbatim"]),
        "pt": _normalised(reactions["pt_verbatim"]).to_numpy(),
        "meddra_code": reactions["meddra_code"].to_numpy(), "outcome": reactions["outcome"].to_numpy(),
    }))


def _insert_indications(session: Session, indications: pd.DataFrame, ids: pd.Series) -> None:
    indications, version_id = _children(indications, ids)
    if indications.empty:
        return
    write_frame(session, Indication.__table__, pd.DataFrame({  # type: ignore[arg-type]
        "case_version_id": version_id.to_numpy(),
        "drug_seq": pd.to_numeric(indications["drug_seq"], errors="coerce").astype("Int64").to_numpy(),
        "term": _strings(indications["term"]),
        "pt": _normalised(indications["term"]).to_numpy(),
    }))


_CASE_COLUMNS = ("version", "source", "event_date", "age_years", "age_group", "sex", "weight_kg",
                 "reporter_country", "occurrence_country", "serious", "died")


def _write_cases(session: Session, current: pd.DataFrame, is_new_case: np.ndarray, new: pd.DataFrame,
                 kind: str) -> None:
    """Insert new cases whose current version is in this batch directly (COPY); upsert the others."""
    fresh = is_new_case & current["id"].isin(new["id"]).to_numpy()
    direct = current[fresh]
    if len(direct):
        rows = new.set_index("id").loc[direct["id"].to_numpy()]
        write_frame(session, Case.__table__, pd.DataFrame({  # type: ignore[arg-type]
            "case_key": direct["case_key"].to_numpy(), "current_version_id": direct["id"].to_numpy(),
            "version": rows["version"].to_numpy(), "source": kind,
            "initial_received_date": direct["initial"].to_numpy(),
            "latest_received_date": direct["latest"].to_numpy(),
            **{c: rows[c].array for c in ("event_date", "age_group", "sex", "reporter_country",
                                               "occurrence_country")},
            "age_years": pd.to_numeric(rows["age_years"], errors="coerce").to_numpy(),
            "weight_kg": pd.to_numeric(rows["weight_kg"], errors="coerce").to_numpy(),
            "serious": rows["serious"].to_numpy(dtype=bool), "died": rows["died"].to_numpy(dtype=bool),
        }))
    if (~fresh).any():
        _upsert_cases(session, current[~fresh])


def _upsert_cases(session: Session, current: pd.DataFrame) -> None:
    """Insert or update the ``cases`` rows from the chosen current versions (an INSERT ... SELECT upsert)."""
    frame = pd.DataFrame({"case_key": current["case_key"].to_numpy(), "version_id": current["id"].to_numpy(),
                          "initial_date": current["initial"].to_numpy(),
                          "latest_date": current["latest"].to_numpy()})
    temp_table(session, "_pv_current", {"case_key": "VARCHAR(100)", "version_id": "BIGINT",
                                         "initial_date": "DATE", "latest_date": "DATE"}, frame)
    targets = ["case_key", "current_version_id", "initial_received_date", "latest_received_date",
               *_CASE_COLUMNS]
    sources = ["t.case_key", "cv.id", "t.initial_date", "t.latest_date", *(f"cv.{c}" for c in _CASE_COLUMNS)]
    updates = ", ".join(f"{c} = excluded.{c}" for c in targets[1:])
    session.execute(text(
        f"INSERT INTO cases ({', '.join(targets)}) "
        f"SELECT {', '.join(sources)} FROM _pv_current t JOIN case_versions cv ON cv.id = t.version_id "
        f"WHERE true ON CONFLICT (case_key) DO UPDATE SET {updates}"))
    drop_temp(session, "_pv_current")


__all__ = ["LOAD_STAGES", "LoadSummary", "current_versions", "load_batch", "version_precedence"]
