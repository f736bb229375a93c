"""CSV reports with a column mapping (``config/mappings/NAME.yaml``) -> one :class:`Batch` per file.

Two layouts (``layout`` in the mapping):

- ``row``: one row per case-drug-event (CAERS, openEBGM input). Rows with the same case id (and report id)
  form one version; its drugs and events are the distinct values in order of first appearance, and case-level
  fields come from its first row.
- ``case``: one row per case; the drug, event and aligned cells hold lists split on ``list_delimiter``.
  A drug-aligned list (role, active ingredient, route, dose, dates, indication) has one value per drug or a
  single value for all; likewise event-aligned lists (MedDRA code, event outcome).

A row that cannot be read (wrong field count, missing case id, impossible date, unknown role, seriousness or
outcome code, non-numeric version, no drug and no event) goes to quarantine with its line and field; the other
rows load. Mapping mistakes (unknown keys, missing required columns, a column absent from the file) raise
:class:`ConfigError` naming the mapping file and key. See docs/configuration.md for the mapping format.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pv.config import load_yaml
from pv.errors import ConfigError, UnreadableFileError
from pv.ingest.batch import (
    DRUG_COLUMNS,
    INDICATION_COLUMNS,
    MAX_CASE_KEY,
    MAX_REPORT_ID,
    QUARANTINE_COLUMNS,
    REACTION_COLUMNS,
    VERSION_COLUMNS,
    Batch,
    latest_possible_date,
)
from pv.ingest.text import decode, has_invalid, invalid_reason, shown

CASE_FIELDS = ("case_id", "report_id", "version", "received_date", "initial_received_date", "event_date",
               "sex", "age", "age_unit", "age_group", "weight", "weight_unit", "reporter_country",
               "occurrence_country", "report_type", "serious", "outcomes")
DRUG_FIELDS = ("drug", "active_ingredient", "role", "route", "dose_text", "drug_start_date", "drug_end_date",
               "indication")
EVENT_FIELDS = ("event", "meddra_code", "event_outcome")
FIELDS = CASE_FIELDS + DRUG_FIELDS + EVENT_FIELDS
REQUIRED = ("case_id", "drug", "event")
MAPPING_KEYS = {"description", "layout", "delimiter", "quotechar", "encoding", "list_delimiter",
                "date_format", "case_prefix", "columns", "values", "defaults"}
LAYOUTS = ("row", "case")

ROLES = {"PS": "PS", "SS": "SS", "C": "C", "I": "I", "S": "S", "PRIMARY SUSPECT": "PS",
         "SECONDARY SUSPECT": "SS", "SUSPECT": "S", "CONCOMITANT": "C", "INTERACTING": "I", "1": "S",
         "2": "C", "3": "I"}
SEXES = {"F": "F", "FEMALE": "F", "W": "F", "2": "F", "M": "M", "MALE": "M", "1": "M"}
OUTCOMES = ("DE", "LT", "HO", "DS", "CA", "RI", "OT")
OUTCOME_WORDS = {"DEATH": "DE", "DIED": "DE", "FATAL": "DE", "LIFE THREATENING": "LT",
                 "LIFE-THREATENING": "LT",
                 "HOSPITALIZATION": "HO", "HOSPITALISATION": "HO", "DISABILITY": "DS",
                 "CONGENITAL ANOMALY": "CA", "REQUIRED INTERVENTION": "RI", "OTHER": "OT",
                 "OTHER SERIOUS": "OT"}
TRUE = {"Y", "YES", "TRUE", "T", "1", "SERIOUS"}
FALSE = {"N", "NO", "FALSE", "F", "0", "NON-SERIOUS", "NON SERIOUS", "NOT SERIOUS"}
AGE_UNITS = {"YEARS": 1.0, "YEAR": 1.0, "YR": 1.0, "YRS": 1.0, "Y": 1.0, "A": 1.0, "DECADES": 10.0,
             "DECADE": 10.0, "DEC": 10.0, "{DECADE}": 10.0, "MONTHS": 1 / 12, "MONTH": 1 / 12, "MON": 1 / 12,
             "MO": 1 / 12, "WEEKS": 7 / 365.25, "WEEK": 7 / 365.25, "WK": 7 / 365.25, "DAYS": 1 / 365.25,
             "DAY": 1 / 365.25, "DY": 1 / 365.25, "D": 1 / 365.25, "HOURS": 1 / 8766.0, "HOUR": 1 / 8766.0,
             "HR": 1 / 8766.0, "H": 1 / 8766.0}
WEIGHT_UNITS = {"KG": 1.0, "KGS": 1.0, "G": 0.001, "GMS": 0.001, "LB": 0.45359237, "LBS": 0.45359237,
                "[LB_AV]": 0.45359237}
#: The longest field a row may hold; a longer one quarantines its row (Python's csv module would refuse the
#: whole file at 131,072 characters: its limit is raised so that the row, not the file, is refused).
MAX_FIELD = 131_072
csv.field_size_limit(2**31 - 1)
_DATE = re.compile(r"(\d{4})(?:[-/.]?(\d{2})(?:[-/.]?(\d{2}))?)?(?:[T ].*)?")


# ---------------------------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class CsvMapping:
    """A parsed mapping file: which column holds which field, and how to read the cells."""

    path: str
    columns: Mapping[str, str]
    layout: str = "row"
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str | None = None
    list_delimiter: str | None = None
    date_format: str | None = None
    case_prefix: str = ""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


def _single_char(raw: Any, key: str, path: str) -> str:
    if not isinstance(raw, str) or len(raw) != 1:
        raise ConfigError(f"{path}: {key}: must be a single character, got {raw!r}")
    return raw


def mapping_from_dict(raw: Any, path: str) -> CsvMapping:
    """Validate a mapping's content; every mistake is a ConfigError naming ``path`` and the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a CSV mapping must be a YAML mapping with a 'columns' key")
    unknown = sorted(set(map(str, raw)) - MAPPING_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(MAPPING_KEYS))})")
    columns = raw.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(f"{path}: columns: required, a mapping of field -> CSV column name")
    for key, column in columns.items():
        if key not in FIELDS:
            raise ConfigError(f"{path}: columns.{key}: unknown field (known: {', '.join(FIELDS)})")
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{path}: columns.{key}: must be a column name, got {column!r}")
    for key in REQUIRED:
        if key not in columns:
            what = key.replace("_", " ")
            raise ConfigError(f"{path}: columns.{key}: required (the column holding the {what})")
    layout = raw.get("layout", "row")
    if layout not in LAYOUTS:
        raise ConfigError(f"{path}: layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    list_delimiter = raw.get("list_delimiter")
    if list_delimiter is not None and (not isinstance(list_delimiter, str) or list_delimiter == ""):
        raise ConfigError(f"{path}: list_delimiter: must be a non-empty string, got {list_delimiter!r}")
    if layout == "case" and list_delimiter is None:
        raise ConfigError(f"{path}: list_delimiter: required with layout 'case'")
    delimiter = _single_char(raw.get("delimiter", ","), "delimiter", path)
    quotechar = _single_char(raw.get("quotechar", '"'), "quotechar", path)
    if list_delimiter == delimiter:
        raise ConfigError(f"{path}: list_delimiter: must differ from the field delimiter {delimiter!r}")
    encoding = raw.get("encoding")
    if encoding is not None:
        try:
            "".encode(str(encoding))
        except LookupError:
            raise ConfigError(f"{path}: encoding: unknown encoding {encoding!r}") from None
    date_format = raw.get("date_format")
    if date_format is not None and (not isinstance(date_format, str) or "%Y" not in date_format):
        raise ConfigError(f"{path}: date_format: must be a strptime format with %Y, got {date_format!r}")
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: values: must map a field to {{cell value: replacement}}")
    clean_values: dict[str, dict[str, str]] = {}
    for key, table in values.items():
        if key not in FIELDS:
            raise ConfigError(f"{path}: values.{key}: unknown field")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: values.{key}: must be a mapping of cell value -> replacement")
        clean_values[key] = {str(k).strip().upper(): "" if v is None else str(v) for k, v in table.items()}
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults: must map a field to a value")
    for key in defaults:
        if key not in FIELDS or key in REQUIRED:
            raise ConfigError(f"{path}: defaults.{key}: not a field that can have a default")
    prefix = raw.get("case_prefix", "") or ""
    if not isinstance(prefix, str):
        raise ConfigError(f"{path}: case_prefix: must be a string")
    mapping = CsvMapping(
        path=path, columns={k: v.strip() for k, v in columns.items()}, layout=layout, delimiter=delimiter,
        quotechar=quotechar, encoding=str(encoding) if encoding else None, list_delimiter=list_delimiter,
        date_format=date_format, case_prefix=prefix, values=clean_values,
        defaults={k: "" if v is None else str(v) for k, v in defaults.items()},
        description=str(raw.get("description") or ""),
    )
    if "role" in mapping.defaults:
        try:
            _role(mapping.defaults["role"], mapping)
        except _RowError:
            raise ConfigError(f"{path}: defaults.role: unknown role {mapping.defaults['role']!r}") from None
    return mapping


def load_mapping(path: str | Path) -> CsvMapping:
    """Read and validate a mapping file (``config/mappings/NAME.yaml``)."""
    return mapping_from_dict(load_yaml(path), str(path))


# ---------------------------------------------------------------------------------------------- cells
class _RowError(Exception):
    def __init__(self, field_name: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field_name, reason


def _mapped(value: str, key: str, mapping: CsvMapping) -> str:
    table = mapping.values.get(key)
    if table:
        return table.get(value.strip().upper(), value).strip()
    return value.strip()


def _date(value: str, key: str, mapping: CsvMapping) -> dt.date | None:
    if not value:
        return None
    if mapping.date_format:
        try:
            parsed = dt.datetime.strptime(value, mapping.date_format).date()
        except ValueError:
            raise _RowError(key, f"impossible date {value!r} (expected {mapping.date_format})") from None
    else:
        m = _DATE.fullmatch(value)
        try:
            if m is None:
                raise ValueError
            parsed = dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
        except ValueError:
            raise _RowError(key, f"impossible date {value!r}") from None
    if not 1900 <= parsed.year <= 2099:
        raise _RowError(key, f"impossible date {value!r} (year outside 1900-2099)")
    return parsed


def _role(value: str, mapping: CsvMapping) -> str:
    role = ROLES.get(" ".join(value.upper().split()))
    if role is None:
        raise _RowError("role", f"unknown role {value!r} (PS, SS, C, I or suspect, concomitant, interacting)")
    return role


def _number(value: str) -> float | None:
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _scaled(value: str, unit: str, units: Mapping[str, float], low: float, high: float) -> float | None:
    number = _number(value) if value else None
    factor = units.get(unit.strip().upper() or "")
    if number is None or factor is None:
        return None
    scaled = round(number * factor, 4)
    return scaled if low <= scaled <= high else None


def _outcomes(serious: str, outcomes: str) -> list[str]:
    codes: set[str] = set()
    for part in re.split(r"[,;|/]+", outcomes):
        word = " ".join(part.upper().split())
        if not word:
            continue
        code = word if word in OUTCOMES else OUTCOME_WORDS.get(word)
        if code is None:
            raise _RowError("outcomes", f"unknown outcome {part.strip()!r} (DE LT HO DS CA RI OT)")
        codes.add(code)
    if serious:
        flag = " ".join(serious.upper().split())
        if flag in TRUE:
            if not codes:
                codes.add("OT")
        elif flag not in FALSE:
            raise _RowError("serious", f"unknown seriousness {serious!r} (yes/no)")
    return [c for c in OUTCOMES if c in codes]


def _split(value: str, key: str, mapping: CsvMapping, keep_empty: bool = False) -> list[str]:
    """The items of a list cell (layout ``case``) or the cell itself, each through ``values``.

    Empty items are dropped, unless ``keep_empty`` (a list aligned by position: "DLBCL||" is three items)."""
    if not value:
        return []
    if mapping.layout == "row" or not mapping.list_delimiter:
        parts = [value]
    else:
        parts = value.split(mapping.list_delimiter)
    items = [_mapped(part, key, mapping) for part in parts]
    if not any(items):
        return []
    return items if keep_empty else [item for item in items if item]


def _aligned(values: list[str], n: int, key: str) -> list[str]:
    """A list aligned with ``n`` drugs or events: one value each, one for all, or none."""
    if not values:
        return [""] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise _RowError(key, f"{len(values)} values for {n} items (give one per item or one for all)")
    return values


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class _Version:
    case: dict[str, Any]
    drugs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    indications: dict[tuple[int, str], None] = field(default_factory=dict)
    event_dates: list[dt.date] = field(default_factory=list)


def _decode(data: bytes, mapping: CsvMapping) -> str:
    """The file's text: in the mapping's encoding; else UTF-8, or Windows-1252 when it holds no UTF-8 at all; a
    UTF-8 file with a few invalid bytes keeps them as lone surrogates and their rows are quarantined
    (:mod:`pv.ingest.text`)."""
    if mapping.encoding:
        return data.decode(mapping.encoding, errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return decode(data, legacy="cp1252")[0]


def _records(text: str, mapping: CsvMapping, name: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter,
                        quotechar=mapping.quotechar, strict=False)
    last = 0
    try:
        for record in reader:
            start, last = last + 1, reader.line_num
            if record and any(cell.strip() for cell in record):
                yield start, record
    except csv.Error as exc:
        raise UnreadableFileError(f"cannot read as CSV: {exc}", file=name, line=reader.line_num) from exc


def _header_index(header: list[str], mapping: CsvMapping, name: str) -> dict[str, int]:
    names = [h.strip() for h in header]
    folded = [h.casefold() for h in names]
    index: dict[str, int] = {}
    for key, column in mapping.columns.items():
        if column in names:
            index[key] = names.index(column)
        elif folded.count(column.casefold()) == 1:
            index[key] = folded.index(column.casefold())
        else:
            raise ConfigError(f"{mapping.path}: columns.{key}: column {column!r} is not in the header of "
                              f"{name} (columns: {', '.join(names)[:300]})")
    return index


def parse_csv_bytes(data: bytes, name: str, mapping: CsvMapping) -> Batch:
    """Parse the bytes of one CSV file with ``mapping`` into a Batch (kind ``csv``)."""
    text = _decode(data, mapping).replace("\x00", "")  # NUL is never text (and PostgreSQL refuses it)
    records = _records(text, mapping, name)
    first = next(records, None)
    if first is None:
        raise UnreadableFileError("empty file: no header line", file=name)
    _, header = first
    index = _header_index(header, mapping, name)
    versions: dict[tuple[str, str], _Version] = {}
    quarantine: list[dict[str, Any]] = []
    rows_read = 0
    for line, record in records:
        rows_read += 1
        if len(record) != len(header):
            quarantine.append({"file": name, "line": line, "field": None,
                               "raw": shown(mapping.delimiter.join(record))[:2000],
                               "reason": f"{len(record)} fields, the header has {len(header)}"})
            continue
        damaged = next((i for i, cell in enumerate(record) if has_invalid(cell) or len(cell) > MAX_FIELD), None)
        if damaged is not None:
            cell = record[damaged]
            reason = (invalid_reason(cell) if has_invalid(cell) else
                      f"field of {len(cell):,} characters, over the limit of {MAX_FIELD:,}")
            quarantine.append({"file": name, "line": line, "field": header[damaged],
                               "raw": shown(mapping.delimiter.join(record))[:2000], "reason": reason})
            continue
        cells = {key: record[i].strip() for key, i in index.items()}
        for key, value in mapping.defaults.items():
            if not cells.get(key):
                cells[key] = value
        try:
            _add_row(versions, cells, mapping)
        except _RowError as err:
            column = mapping.columns.get(err.field or "", err.field)
            quarantine.append({"file": name, "line": line, "field": column,
                               "raw": mapping.delimiter.join(record)[:2000], "reason": err.reason})
    return _batch(versions, quarantine, name, data, rows_read)


def _add_row(versions: dict[tuple[str, str], _Version], cells: dict[str, str], mapping: CsvMapping) -> None:
    def get(key: str, default: str = "") -> str:
        value = cells.get(key)
        return _mapped(value, key, mapping) if value else default

    case_id = get("case_id", "")
    if not case_id:
        raise _RowError("case_id", "missing case id")
    version_text = get("version", "")
    version = 1
    if version_text:
        number = _number(version_text)
        if number is None or number != int(number) or not 0 <= number < 2**31:
            raise _RowError("version", f"version {version_text!r} is not a whole number")
        version = int(number)
    report_id = get("report_id", "") or (f"{case_id}#v{version}" if version_text else case_id)
    case_key = f"{mapping.case_prefix}{case_id}"
    if len(case_key) > MAX_CASE_KEY:
        raise _RowError("case_id", f"case id of {len(case_id)} characters: the store holds case ids of at most "
                                   f"{MAX_CASE_KEY - len(mapping.case_prefix)} characters (with the prefix "
                                   f"{mapping.case_prefix!r}); the row is quarantined, never cut")
    if len(report_id) > MAX_REPORT_ID:
        field = "report_id" if get("report_id", "") else "case_id"
        raise _RowError(field, f"report id of {len(report_id)} characters: the store holds report ids of at "
                               f"most {MAX_REPORT_ID}; the row is quarantined, never cut")
    dates = {key: _date(get(key, ""), key, mapping)
             for key in ("received_date", "initial_received_date", "event_date")}
    received = dates["received_date"]
    if received is not None and received > latest_possible_date():
        raise _RowError("received_date", f"receipt date {received} is in the future")
    drugs = _split(cells.get("drug", ""), "drug", mapping)
    events = _split(cells.get("event", ""), "event", mapping)
    if not drugs and not events:
        raise _RowError("drug", "neither a drug nor an event")
    roles = [_role(r, mapping)
             for r in _aligned(_split(cells.get("role", ""), "role", mapping) or ["PS"], len(drugs), "role")]
    drug_cols = {key: _aligned(_split(cells.get(key, ""), key, mapping, keep_empty=True), len(drugs), key)
                 for key in ("active_ingredient", "route", "dose_text", "drug_start_date", "drug_end_date",
                             "indication")}
    starts = [_date(v, "drug_start_date", mapping) for v in drug_cols["drug_start_date"]]
    ends = [_date(v, "drug_end_date", mapping) for v in drug_cols["drug_end_date"]]
    event_cols = {key: _aligned(_split(cells.get(key, ""), key, mapping, keep_empty=True), len(events), key)
                  for key in ("meddra_code", "event_outcome")}
    codes, event_outcomes = event_cols["meddra_code"], event_cols["event_outcome"]
    outcomes = _outcomes(get("serious", ""), get("outcomes", ""))

    key = (case_key, report_id)
    target = versions.get(key)
    if target is None:
        sex = get("sex", "")
        target = versions[key] = _Version(case={
            "case_key": case_key, "report_id": report_id, "version": version,
            "initial_or_followup": None, "received_date": dates["received_date"],
            "initial_received_date": dates["initial_received_date"], "event_date": None,
            "age_years": _scaled(get("age", ""), get("age_unit", "") or "years", AGE_UNITS, 0, 150),
            "age_group": get("age_group", "")[:16] or None,
            "sex": (SEXES.get(sex.upper(), "UNK") if sex else None),
            "weight_kg": _scaled(get("weight", ""), get("weight_unit", "") or "kg", WEIGHT_UNITS, 0.001, 700),
            "reporter_country": get("reporter_country", "").upper()[:64] or None,
            "occurrence_country": get("occurrence_country", "").upper()[:64] or None,
            "report_type": get("report_type", "")[:16] or None,
            "outcomes": outcomes,
        })
    elif outcomes:
        target.case["outcomes"] = [c for c in OUTCOMES if c in set(target.case["outcomes"]) | set(outcomes)]
    if dates["event_date"]:
        target.event_dates.append(dates["event_date"])
    for i, name in enumerate(drugs):
        drug_key = (name, roles[i])
        drug = target.drugs.get(drug_key)
        if drug is None:
            drug = target.drugs[drug_key] = {
                "seq": len(target.drugs) + 1, "role": roles[i], "drugname": name,
                "active_ingredient": drug_cols["active_ingredient"][i] or None,
                "route": drug_cols["route"][i][:100] or None, "dose_text": drug_cols["dose_text"][i] or None,
                "start_date": starts[i], "end_date": ends[i]}
        if drug_cols["indication"][i]:
            target.indications[(drug["seq"], drug_cols["indication"][i])] = None
    for i, term in enumerate(events):
        if term not in target.events:
            target.events[term] = {"pt_verbatim": term, "meddra_code": codes[i][:16] or None,
                                   "outcome": event_outcomes[i][:32] or None}


def _batch(versions: dict[tuple[str, str], _Version], quarantine: list[dict[str, Any]], name: str,
           data: bytes, rows_read: int) -> Batch:
    version_rows: list[dict[str, Any]] = []
    drug_rows: list[dict[str, Any]] = []
    reaction_rows: list[dict[str, Any]] = []
    indication_rows: list[dict[str, Any]] = []
    for (case_key, report_id), v in versions.items():
        keys = {"case_key": case_key, "report_id": report_id}
        v.case["event_date"] = min(v.event_dates) if v.event_dates else None
        version_rows.append(v.case)
        suspects = 0
        for drug in v.drugs.values():
            if drug["role"] == "S":  # generic "suspect": the first is primary, later ones secondary
                suspects += 1
                drug["role"] = "PS" if suspects == 1 else "SS"
            drug_rows.append({**keys, **drug})
        reaction_rows.extend({**keys, **event} for event in v.events.values())
        indication_rows.extend({**keys, "drug_seq": seq, "term": term} for seq, term in v.indications)
    return Batch(
        kind="csv", name=name, sha256=hashlib.sha256(data).hexdigest(),
        versions=_frame(version_rows, VERSION_COLUMNS), drugs=_frame(drug_rows, DRUG_COLUMNS),
        reactions=_frame(reaction_rows, REACTION_COLUMNS),
        indications=_frame(indication_rows, INDICATION_COLUMNS),
        quarantine=_frame(quarantine, QUARANTINE_COLUMNS), rows_read=rows_read,
    )


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = pd.DataFrame(rows, columns=columns).astype(object)
    return frame.where(frame.notna(), None)


def parse_csv(path: str | Path, mapping: CsvMapping | str | Path) -> Batch:
    """Parse one CSV file with a mapping (a CsvMapping or the path of a mapping file)."""
    if not isinstance(mapping, CsvMapping):
        mapping = load_mapping(mapping)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    return parse_csv_bytes(data, str(path), mapping)


def iter_csv(paths: Iterable[str | Path], mapping: CsvMapping | str | Path) -> Iterator[Batch]:
    if not isinstance(mapping, CsvMapping):
        mapping = load_mapping(mapping)
    for path in paths:
        yield parse_csv(path, mapping)
