"""Cohort ingestion: a patient-level CSV (one row per patient) into ``cohort_patients`` / ``cohort_events``.

:func:`parse_cohort_csv` checks every row and splits the file into good patients, their events and quarantined
rows (file, line, field, reason); :func:`load_cohort` writes the good rows into the store (a patient id
already present is replaced by the newer row) and the bad ones into ``quarantine``. The caller commits.

Row rules (a row breaking one goes to quarantine, the others still load): patient_id present and not repeated
in the file; infusion_date present and a valid date; other dates valid; age a number in 0-120; prior_lines a
non-negative integer; sex one of F/M (female/male, case-insensitive) or empty; no date before the infusion;
death or last follow-up date given (the end of follow-up); no event after death, nor after the last follow-up
of a patient alive at last contact.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pv.config import load_yaml
from pv.errors import ConfigError, UnreadableFileError
from pv.models import CohortEvent, CohortPatient, Quarantine, SourceFile
from pv.normalise import EventGroups, ProductDictionary

FIELDS = (
    "patient_id",
    "product",
    "disease",
    "infusion_date",
    "age",
    "sex",
    "hbv_status",
    "prior_lines",
    "death_date",
    "last_followup_date",
)
DATE_FIELDS = ("infusion_date", "death_date", "last_followup_date")
SEX = {"f": "F", "female": "F", "m": "M", "male": "M", "u": "UNK", "unk": "UNK", "unknown": "UNK"}


@dataclass(frozen=True)
class CohortMapping:
    columns: dict[str, str]
    events: dict[str, str]
    date_format: str = "%Y-%m-%d"

    @classmethod
    def load(cls, path: str | Path, event_groups: EventGroups | None = None) -> CohortMapping:
        data = load_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
            raise ConfigError(f"{path}: expected a mapping with 'columns'")
        columns = {str(k): str(v) for k, v in data["columns"].items() if v}
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ConfigError(
                f"{path}: unknown cohort field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
            )
        for required in ("patient_id", "infusion_date"):
            if required not in columns:
                raise ConfigError(f"{path}: 'columns' must map {required}")
        events = {str(k): str(v) for k, v in (data.get("events") or {}).items() if v}
        if event_groups is not None:
            bad = sorted(set(events) - set(event_groups.groups))
            if bad:
                raise ConfigError(
                    f"{path}: event type(s) {', '.join(bad)} are not event groups of event_groups.yaml"
                )
        return cls(columns=columns, events=events, date_format=str(data.get("date_format") or "%Y-%m-%d"))


@dataclass
class ParsedCohort:
    name: str
    sha256: str
    rows_read: int = 0
    patients: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # patient_id, event_type, event_date
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # file, line, field, raw, reason


class _RowError(Exception):
    def __init__(self, fld: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = fld
        self.reason = reason


def _date(value: str, fld: str, fmt: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, fmt).date()
    except ValueError as exc:
        raise _RowError(fld, f"not a date ({fmt}): {value!r}") from exc


N = TypeVar("N", int, float)


def _number(value: str, fld: str, kind: Callable[[str], N], problem: str) -> N | None:
    """``value`` read by ``kind`` (int or float); None when empty."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise _RowError(fld, f"{problem}: {value!r}") from exc


def _parse_row(
    row: dict[str, str], mapping: CohortMapping, products: ProductDictionary
) -> tuple[dict[str, Any], list[tuple[str, dt.date]]]:
    def get(fld: str) -> str:
        col = mapping.columns.get(fld)
        return (row.get(col) or "").strip() if col else ""

    pid = get("patient_id")
    if not pid:
        raise _RowError("patient_id", "missing patient id")
    dates = {f: _date(get(f), f, mapping.date_format) for f in DATE_FIELDS}
    infusion = dates["infusion_date"]
    if infusion is None:
        raise _RowError("infusion_date", "missing infusion date")
    age = _number(get("age"), "age", float, "not a number")
    if age is not None and not 0 <= age <= 120:
        raise _RowError("age", f"age out of range 0-120: {age:g}")
    lines = _number(get("prior_lines"), "prior_lines", int, "not an integer")
    if lines is not None and lines < 0:
        raise _RowError("prior_lines", f"negative number of prior lines: {lines}")
    sex: str | None = None
    if get("sex"):
        sex = SEX.get(get("sex").casefold())
        if sex is None:
            raise _RowError("sex", f"unknown sex {get('sex')!r} (expected F or M)")
    for f in ("death_date", "last_followup_date"):
        d = dates[f]
        if d is not None and d < infusion:
            raise _RowError(f, f"{f} {d} is before the infusion date {infusion}")
    death, last = dates["death_date"], dates["last_followup_date"]
    if death is None and last is None:
        raise _RowError(
            "last_followup_date", "no end of follow-up: neither death date nor last follow-up date"
        )
    events: list[tuple[str, dt.date]] = []
    for etype, col in mapping.events.items():
        d = _date((row.get(col) or "").strip(), col, mapping.date_format)
        if d is None:
            continue
        if d < infusion:
            raise _RowError(col, f"{etype} date {d} is before the infusion date {infusion}")
        if death is not None and d > death:
            raise _RowError(col, f"{etype} date {d} is after the death date {death}")
        if death is None and last is not None and d > last:
            raise _RowError(col, f"{etype} date {d} is after the last follow-up date {last}")
        events.append((etype, d))
    verbatim = get("product") or None
    patient = {
        "patient_id": pid,
        "product": products.match(verbatim) if verbatim else None,
        "product_verbatim": verbatim,
        "disease": get("disease") or None,
        "infusion_date": infusion,
        "age_years": age,
        "sex": sex,
        "hbv_status": get("hbv_status") or None,
        "prior_lines": lines,
        "death_date": death,
        "last_followup_date": last,
    }
    return patient, events


def parse_cohort_csv(path: str | Path, mapping: CohortMapping, products: ProductDictionary) -> ParsedCohort:
    """Read and check a cohort CSV; bad rows become quarantine entries (line numbers count the header as
    1)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError("not UTF-8 text", file=str(path)) from exc
    parsed = ParsedCohort(name=path.name, sha256=hashlib.sha256(raw).hexdigest())
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    for fld in ("patient_id", "infusion_date"):
        if mapping.columns[fld] not in header:
            raise UnreadableFileError(
                f"no column {mapping.columns[fld]!r} (mapped to {fld}) in the header", file=str(path), line=1
            )
    seen: set[str] = set()
    for lineno, row in enumerate(reader, start=2):
        parsed.rows_read += 1
        raw_line = ",".join((v or "") if isinstance(v, str) else ",".join(v) for v in row.values())
        try:
            if None in row:
                raise _RowError(None, f"{len(header) + len(row[None])} values for {len(header)} columns")  # type: ignore[index]
            patient, events = _parse_row(row, mapping, products)
            if patient["patient_id"] in seen:
                raise _RowError("patient_id", f"patient {patient['patient_id']!r} repeated in the file")
        except _RowError as err:
            parsed.quarantine.append(
                {"file": path.name, "line": lineno, "field": err.field, "raw": raw_line, "reason": err.reason}
            )
            continue
        seen.add(patient["patient_id"])
        patient["source_line"] = lineno
        parsed.patients.append(patient)
        parsed.events.extend(
            {"patient_id": patient["patient_id"], "event_type": t, "event_date": d} for t, d in events
        )
    return parsed


def load_cohort(session: Session, parsed: ParsedCohort) -> tuple[SourceFile, bool]:
    """Write a parsed cohort into the store (replacing patients already there); the caller commits.

    Returns (source file, loaded). A file already loaded (same content) is not loaded again: its SourceFile
    is returned with ``loaded`` False.
    """
    existing = session.scalar(
        select(SourceFile).where(SourceFile.kind == "cohort", SourceFile.sha256 == parsed.sha256)
    )
    if existing is not None:
        return existing, False
    src = SourceFile(
        kind="cohort",
        name=parsed.name,
        sha256=parsed.sha256,
        rows_read=parsed.rows_read,
        versions_loaded=len(parsed.patients),
        rows_quarantined=len(parsed.quarantine),
    )
    session.add(src)
    session.flush()
    ids = [p["patient_id"] for p in parsed.patients]
    replaced = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        replaced += len(
            session.scalars(select(CohortPatient.id).where(CohortPatient.patient_id.in_(chunk))).all()
        )
        session.execute(delete(CohortPatient).where(CohortPatient.patient_id.in_(chunk)))
    src.cases_updated = replaced
    src.cases_added = len(ids) - replaced
    events_by_patient: dict[str, list[dict[str, Any]]] = {}
    for ev in parsed.events:
        events_by_patient.setdefault(ev["patient_id"], []).append(ev)
    for p in parsed.patients:
        patient = CohortPatient(source_file_id=src.id, **p)
        patient.events = [
            CohortEvent(event_type=e["event_type"], event_date=e["event_date"])
            for e in events_by_patient.get(p["patient_id"], [])
        ]
        session.add(patient)
    for q in parsed.quarantine:
        session.add(Quarantine(source_file_id=src.id, **q))
    session.flush()
    return src, True


def cohort_frame(session: Session) -> pd.DataFrame:
    """All cohort patients as a DataFrame (one row per patient)."""
    rows = session.execute(
        select(
            CohortPatient.id,
            CohortPatient.patient_id,
            CohortPatient.product,
            CohortPatient.product_verbatim,
            CohortPatient.disease,
            CohortPatient.infusion_date,
            CohortPatient.age_years,
            CohortPatient.sex,
            CohortPatient.hbv_status,
            CohortPatient.prior_lines,
            CohortPatient.death_date,
            CohortPatient.last_followup_date,
        )
    ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "pk",
            "patient_id",
            "product",
            "product_verbatim",
            "disease",
            "infusion_date",
            "age_years",
            "sex",
            "hbv_status",
            "prior_lines",
            "death_date",
            "last_followup_date",
        ],
    )
