"""FAERS quarterly ASCII and legacy AERS extracts: one quarter's zip or extracted folder -> :class:`Batch`.

Members are found by file name anywhere in the zip or folder, in any case and nesting: ``DEMOyyQq.txt``,
``DRUG``, ``REAC``, ``OUTC``, ``RPSR``, ``THER``, ``INDI`` (``.TXT`` and ``_new`` variants too) and
``DELETE*.txt`` (case ids to remove, one per line). The layout is told from the DEMO header: ``primaryid``
means current FAERS (case key ``caseid``, report id ``primaryid``, version ``caseversion``); ``isr`` means
legacy AERS (case key ``case``, report id ``isr``). AERS has no case version number: every AERS version gets
version 1, so the store's ordering falls through to its tie-breaks, the receipt date (``fda_dt``) and then
the higher ``isr``.

Conversions: dates YYYYMMDD, YYYYMM (first of the month) or YYYY (1 January); ages to years from ``age_cod``
(DEC x10, YR, MON /12, WK x7/365.25, DY /365.25, HR /8766; blank or unknown unit -> no age; ages outside 0-150
years dropped); weights to kg from ``wt_cod`` (KG, LBS, GMS); sex ``F``/``M``, other codes ``UNK``.

Malformed rows go to ``batch.quarantine`` (file, line, field, raw text, reason) and the rest loads: wrong
field count, non-numeric id, impossible date, unknown role or outcome code, duplicate report id, and rows of
DRUG/REAC/OUTC/RPSR/THER/INDI that point at a report missing from DEMO (or quarantined there). A path that is
not a zip or folder, has no DEMO file, has a member whose header lacks its key columns, or a member that would
inflate past :class:`ZipLimits` raises :class:`UnreadableFileError`.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pv.errors import UnreadableFileError
from pv.ingest.batch import (
    DRUG_COLUMNS,
    INDICATION_COLUMNS,
    QUARANTINE_COLUMNS,
    REACTION_COLUMNS,
    VERSION_COLUMNS,
    Batch,
    latest_possible_date,
)
from pv.ingest.delimited import (
    RAW_LIMIT,
    STRING,
    Table,
    clean,
    date_objects,
    is_digits,
    parse_partial_dates,
    raw_text,
    read_table,
    text,
)

KINDS = ("DEMO", "DRUG", "REAC", "OUTC", "RPSR", "THER", "INDI")
REQUIRED = ("DRUG", "REAC")  # with DEMO: a quarter without them is an incomplete delivery, refused
_MEMBER = re.compile(r"^(DEMO|DRUG|REAC|OUTC|RPSR|THER|INDI)(\d{2}Q[1-4])?(_new)?\.txt$", re.IGNORECASE)
_DELETE = re.compile(r"^DELETE.*\.txt$", re.IGNORECASE)
_QUARTER_IN_MEMBER = re.compile(r"(\d{2})Q([1-4])", re.IGNORECASE)
_QUARTER_IN_PATH = re.compile(r"(\d{4})[_-]?Q([1-4])", re.IGNORECASE)

AGE_UNITS = {"DEC": 10.0, "YR": 1.0, "YRS": 1.0, "MON": 1 / 12, "WK": 7 / 365.25, "DY": 1 / 365.25,
             "HR": 1 / 8766.0}
WEIGHT_UNITS = {"KG": 1.0, "KGS": 1.0, "LBS": 0.45359237, "LB": 0.45359237, "GMS": 0.001, "G": 0.001}
AGE_GROUPS = {"N": "neonate", "I": "infant", "C": "child", "T": "adolescent", "A": "adult", "E": "elderly"}
ROLES = {"PS", "SS", "C", "I"}
OUTCOMES = {"DE", "LT", "HO", "DS", "CA", "RI", "OT"}
INT32_MAX = 2**31 - 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Layout:
    kind: str  # faers / aers
    report: str  # report id column in every file
    case: str  # case key column in DEMO


FAERS = _Layout("faers", "primaryid", "caseid")
AERS = _Layout("aers", "isr", "case")


@dataclass(frozen=True)
class ZipLimits:
    """What a quarter's zip may inflate to: each member read at most ``max_member_bytes`` uncompressed, and at
    most ``max_ratio`` times its compressed size (members under 1 MiB are not held to the ratio). A member over
    either limit refuses the file before anything is inflated, so memory stays bounded whatever the input: the
    zip reader never returns more than a member's declared size (a member that inflates past it fails its
    check), and the declared size is what is checked here."""

    max_member_bytes: int = 2 << 30
    max_ratio: float = 200.0

    @classmethod
    def from_settings(cls) -> ZipLimits:
        from pv.settings import get_settings

        settings = get_settings()
        return cls(settings.ingest_max_member_bytes, settings.ingest_max_ratio)

    def check(self, info: zipfile.ZipInfo, path: Path) -> None:
        size, packed = info.file_size, info.compress_size
        if size > self.max_member_bytes:
            raise UnreadableFileError(
                f"member {info.filename} inflates to {size:,} bytes, over the limit of {self.max_member_bytes:,} "
                "(PV_INGEST_MAX_MEMBER_BYTES); refused without inflating it", file=str(path))
        if size > 1 << 20 and size > self.max_ratio * max(packed, 1):
            raise UnreadableFileError(
                f"member {info.filename} inflates {size / max(packed, 1):,.0f} times (from {packed:,} to "
                f"{size:,} bytes), over the limit of {self.max_ratio:g} (PV_INGEST_MAX_RATIO): a zip bomb or a "
                "damaged zip; refused without inflating it", file=str(path))


class _Source:
    """The members of a quarter (zip or folder) by kind, read lazily."""

    def __init__(self, path: Path, limits: ZipLimits | None = None) -> None:
        self.path = path
        self.members: dict[str, str] = {}
        self.deletes: list[str] = []
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in sorted(path.rglob("*")) if p.is_file()]
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
                names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, OSError) as exc:
                raise UnreadableFileError(f"not a zip file or folder ({exc})", file=str(path)) from exc
        else:
            raise UnreadableFileError("no such file or folder", file=str(path))
        for name in sorted(names):
            base = name.rsplit("/", 1)[-1]
            m = _MEMBER.match(base)
            if m:
                kind = m.group(1).upper()
                if kind in self.members:
                    raise UnreadableFileError(
                        f"two {kind} files: {self.members[kind]} and {name}", file=str(path))
                self.members[kind] = name
            elif _DELETE.match(base):
                self.deletes.append(name)
        if "DEMO" not in self.members:
            raise UnreadableFileError("no DEMO file (not a FAERS/AERS quarterly extract)", file=str(path))
        for kind in REQUIRED:
            if kind not in self.members:
                raise UnreadableFileError(
                    f"no {kind} file: an incomplete delivery (every case would load without its "
                    f"{'drugs' if kind == 'DRUG' else 'reactions'}, for good); refused whole, ask for the complete "
                    "quarter", file=str(path))
        if self._zip is not None:
            limits = limits or ZipLimits.from_settings()
            for name in [*self.members.values(), *self.deletes]:  # the members that will be read
                limits.check(self._zip.getinfo(name), path)

    def read(self, name: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            raise UnreadableFileError(f"cannot read member {name}: {exc}", file=str(self.path)) from exc

    def sha256(self) -> str:
        h = hashlib.sha256()
        if self._zip is not None:
            with self.path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            return h.hexdigest()
        for name in sorted([*self.members.values(), *self.deletes]):
            h.update(name.lower().encode() + b"\0")
            h.update(hashlib.sha256(self.read(name)).digest())
        return h.hexdigest()

    def quarter(self) -> str | None:
        m = _QUARTER_IN_MEMBER.search(self.members["DEMO"].rsplit("/", 1)[-1])
        if m:
            return f"20{m.group(1)}Q{m.group(2)}"
        m = _QUARTER_IN_PATH.search(self.path.name)
        return f"{m.group(1)}Q{m.group(2)}" if m else None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


class _Quarantine:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.frames: list[pd.DataFrame] = []

    def extend(self, rows: list[dict[str, object]]) -> None:
        self.rows.extend(rows)

    def take(self, table: Table, frame: pd.DataFrame, mask: pd.Series, field: str | None,
             reason: str | Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
        """Quarantine ``frame[mask]`` (``reason`` a text or a function of the bad rows); return the rest."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return frame
        bad = frame[mask]
        reasons = reason(bad).astype(object) if callable(reason) else reason
        self.frames.append(pd.DataFrame({
            "file": table.member, "line": bad["_line"].astype("int64"), "field": field,
            "raw": raw_text(bad, table.header), "reason": reasons,
        }))
        return frame[~mask].copy()

    def frame(self) -> pd.DataFrame:
        parts = [f for f in self.frames if not f.empty]
        if self.rows:
            parts.append(pd.DataFrame(self.rows))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
        out = pd.concat(parts, ignore_index=True)[QUARANTINE_COLUMNS]
        return out.sort_values(["file", "line"], kind="stable").reset_index(drop=True)


def _require(table: Table, columns: list[str], source: Path) -> None:
    for col in columns:
        if col not in table.header:
            raise UnreadableFileError(
                f"header lacks column {col!r} (found: {', '.join(table.header[:30])})",
                file=f"{source}:{table.member}", line=1, field=col)


def _first(table: Table, *names: str) -> str | None:
    for name in names:
        if name in table.header:
            return name
    return None


def _col(frame: pd.DataFrame, name: str | None) -> pd.Series:
    if name is None or name not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype=STRING)
    return clean(frame[name])


def _code(series: pd.Series) -> pd.Series:
    return text(series).str.strip().str.upper()


def _key(*parts: pd.Series) -> pd.Series:
    """A composite string key (report id + drug seq) for fast joins."""
    out = text(parts[0])
    for part in parts[1:]:
        out = out + "#" + text(part)
    return out.astype(object)


def _ids(q: _Quarantine, table: Table, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for col in columns:
        ok = is_digits(frame[col])
        frame = q.take(table, frame, ~ok, col, "non-numeric id")
        stripped = frame[col].str.strip().str.lstrip("0")
        frame[col] = stripped.where((stripped != "").astype(bool), "0")
    return frame


def _known(q: _Quarantine, table: Table, frame: pd.DataFrame, col: str, known: pd.Index) -> pd.DataFrame:
    # pyarrow's is_in directly: pandas' isin on Arrow strings converts the value set one by one
    values = pa.array(known.to_numpy(dtype=object), type=pa.string())
    found = pc.is_in(pa.array(text(frame[col])), value_set=values).to_numpy(zero_copy_only=False)
    return q.take(table, frame, pd.Series(~found, index=frame.index), col,
                  "report not in DEMO (unknown or quarantined report)")


def _date_reason(col: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda bad: "impossible date: " + text(bad[col]).str.slice(0, 40)


def _dates(q: _Quarantine, table: Table, frame: pd.DataFrame,
           columns: list[str | None]) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for col in columns:
        if col is None or col not in frame.columns:
            continue
        out[col], impossible = parse_partial_dates(frame[col])
        frame = q.take(table, frame, impossible, col, _date_reason(col))
    for col in out:
        out[col] = out[col].reindex(frame.index)
    out["_frame"] = frame  # type: ignore[assignment]
    return out


def _number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(text(series).str.strip().str.replace(",", ".", regex=False),
                         errors="coerce").astype("float64")


def _ages(age: pd.Series, unit: pd.Series) -> pd.Series:
    value = _number(age)
    factor = _code(unit).map(AGE_UNITS).astype("float64")
    years = (value * factor).round(4)
    years = years.where((years >= 0) & (years <= 150))
    return years.astype(object).where(years.notna(), None)


def _weights(wt: pd.Series, unit: pd.Series) -> pd.Series:
    value = _number(wt)
    factor = _code(unit).map(WEIGHT_UNITS).astype("float64")
    kg = (value * factor).round(3)
    kg = kg.where((kg > 0) & (kg <= 700))
    return kg.astype(object).where(kg.notna(), None)


def _sex(series: pd.Series) -> pd.Series:
    s = _code(series)
    out = s.where(s.isin(["F", "M"]), "UNK")
    return out.where((s != "").astype(bool), None).astype(object)


def _upper(series: pd.Series, limit: int) -> pd.Series:
    s = series.str.upper().str.slice(0, limit)
    return s.where(s.notna(), None).astype(object)


def _parse_demo(q: _Quarantine, table: Table, source: Path) -> tuple[_Layout, pd.DataFrame]:
    if "primaryid" in table.header:
        layout = FAERS
        _require(table, ["primaryid", "caseid", "caseversion", "fda_dt"], source)
    elif "isr" in table.header:
        layout = AERS
        _require(table, ["isr", "case", "fda_dt"], source)
    else:
        raise UnreadableFileError("DEMO header has neither primaryid (FAERS) nor isr (legacy AERS)",
                                  file=f"{source}:{table.member}", line=1)
    frame = table.frame
    id_cols = [layout.report, layout.case] + (["caseversion"] if layout is FAERS else [])
    frame = _ids(q, table, frame, id_cols)
    if _first(table, "sex", "gndr_cod") is None:
        raise UnreadableFileError(
            f"DEMO header lacks the sex column ({'sex' if layout is FAERS else 'gndr_cod'}): every case would be "
            f"loaded with an unknown sex (found: {', '.join(table.header[:30])})",
            file=f"{source}:{table.member}", line=1, field="sex")
    if layout is FAERS:
        too_big = frame["caseversion"].str.len().gt(9)
        frame = q.take(table, frame, too_big, "caseversion", "caseversion out of range")
    frame = q.take(table, frame, frame[layout.report].str.len().gt(100), layout.report, "id too long")
    frame = q.take(table, frame, frame[layout.case].str.len().gt(100), layout.case, "id too long")
    init_col = "init_fda_dt" if layout is FAERS else None
    parsed = _dates(q, table, frame, ["fda_dt", "event_dt", init_col])
    frame = parsed.pop("_frame")  # type: ignore[assignment]
    if "fda_dt" in parsed:
        latest = latest_possible_date()
        future = parsed["fda_dt"].map(lambda d: d is not None and d > latest).astype(bool)
        frame = q.take(table, frame, future.reindex(frame.index, fill_value=False), "fda_dt",
                       "receipt date (fda_dt) in the future")
    dup = frame[layout.report].duplicated(keep="first")
    frame = q.take(table, frame, dup, layout.report, "duplicate report id in DEMO")

    def dates(col: str | None) -> pd.Series:
        if col is None or col not in parsed:
            return pd.Series(None, index=frame.index, dtype=object)
        return parsed[col].reindex(frame.index)

    if layout is FAERS:
        version = pd.to_numeric(frame["caseversion"]).astype("int64")
    else:
        version = pd.Series(1, index=frame.index, dtype="int64")
    i_f = _col(frame, _first(table, "i_f_code", "i_f_cod")).str.upper().str.slice(0, 1)
    age_grp = _col(frame, _first(table, "age_grp")).str.upper().map(AGE_GROUPS)
    versions = pd.DataFrame({
        "case_key": frame[layout.case].astype(object),
        "report_id": frame[layout.report].astype(object),
        "version": version,
        "initial_or_followup": i_f.where(i_f.isin(["I", "F"]), None).astype(object),
        "received_date": dates("fda_dt"),
        "initial_received_date": dates(init_col),
        "event_date": dates("event_dt"),
        "age_years": _ages(_col(frame, "age"), _col(frame, "age_cod")),
        "age_group": age_grp.where(age_grp.notna(), None).astype(object),
        "sex": _sex(_col(frame, _first(table, "sex", "gndr_cod"))),
        "weight_kg": _weights(_col(frame, "wt"), _col(frame, "wt_cod")),
        "reporter_country": _upper(_col(frame, _first(table, "reporter_country")), 64),
        "occurrence_country": _upper(_col(frame, _first(table, "occr_country")), 64),
        "report_type": _upper(_col(frame, _first(table, "rept_cod")), 16),
    })
    return layout, versions.reset_index(drop=True)


def _case_keys(report: pd.Series, case_of: pd.Series) -> np.ndarray:
    """The case key of each (known) report id, by a hash lookup in Arrow."""
    values = pa.array(case_of.index.to_numpy(dtype=object), type=pa.string())
    found = pc.index_in(pa.array(text(report)), value_set=values)
    if found.null_count:
        return report.astype(object).map(case_of).to_numpy(dtype=object)
    return case_of.to_numpy(dtype=object)[found.to_numpy(zero_copy_only=False)]


def _child(q: _Quarantine, table: Table, source: Path, layout: _Layout, known: pd.Index,
           required: list[str]) -> pd.DataFrame:
    _require(table, [layout.report, *required], source)
    frame = _ids(q, table, table.frame, [layout.report])
    return _known(q, table, frame, layout.report, known)


def _parse_drugs(q: _Quarantine, table: Table, source: Path, layout: _Layout, known: pd.Index,
                 case_of: pd.Series) -> pd.DataFrame:
    frame = _child(q, table, source, layout, known, ["drug_seq", "role_cod", "drugname"])
    frame = _ids(q, table, frame, ["drug_seq"])
    if layout is FAERS:
        frame = q.take(table, frame, frame["drug_seq"].str.len().gt(9), "drug_seq", "drug_seq out of range")
    frame = q.take(table, frame, ~_code(frame["role_cod"]).isin(ROLES), "role_cod",
                   lambda bad: "unknown role code: " + _code(bad["role_cod"]).str.slice(0, 20))
    name = _col(frame, "drugname")
    ingredient = _col(frame, _first(table, "prod_ai"))
    frame = q.take(table, frame, name.isna() & ingredient.isna(), "drugname", "drug without a name")
    dup = frame.duplicated([layout.report, "drug_seq"], keep="first")
    frame = q.take(table, frame, dup, "drug_seq", "duplicate drug_seq for the report")
    report = frame[layout.report]
    if layout is FAERS:
        seq = pd.to_numeric(frame["drug_seq"]).astype("int64")
    else:  # AERS drug_seq is a global id: number the drugs 1..n within each report, in file order
        seq = frame.groupby(layout.report, sort=False).cumcount().astype("int64") + 1
    drugs = pd.DataFrame({
        "case_key": _case_keys(report, case_of),
        "report_id": report.astype(object),
        "seq": seq,
        "source_seq": frame["drug_seq"].astype(object),
        "role": _code(frame["role_cod"]).astype(object),
        "drugname": _col(frame, "drugname").fillna("").astype(object),
        "active_ingredient": _col(frame, _first(table, "prod_ai")),
        "route": _col(frame, "route").str.slice(0, 100),
        "dose_text": _col(frame, "dose_vbm"),
    })
    return drugs.reset_index(drop=True)


def _parse_therapies(q: _Quarantine, table: Table, source: Path, layout: _Layout, known: pd.Index,
                     drugs: pd.DataFrame) -> pd.DataFrame:
    seq_col = "dsg_drug_seq" if layout is FAERS else "drug_seq"
    frame = _child(q, table, source, layout, known, [seq_col])
    frame = _ids(q, table, frame, [seq_col])
    drug_ids = pd.Index(_key(drugs["report_id"], drugs["source_seq"]))
    keys = _key(frame[layout.report], frame[seq_col])
    frame = q.take(table, frame, ~keys.isin(drug_ids), seq_col, "therapy for a drug not in DRUG")
    parsed = _dates(q, table, frame, ["start_dt", "end_dt"])
    frame = parsed.pop("_frame")  # type: ignore[assignment]
    ther = pd.DataFrame({
        "report_id": frame[layout.report].astype(object), "source_seq": frame[seq_col].astype(object),
        "start_date": parsed.get("start_dt", pd.Series(None, index=frame.index, dtype=object)),
        "end_date": parsed.get("end_dt", pd.Series(None, index=frame.index, dtype=object)),
    })
    if ther.empty:
        return ther
    # several therapy periods of one drug: earliest start, latest end
    ther["start_date"] = pd.to_datetime(ther["start_date"])
    ther["end_date"] = pd.to_datetime(ther["end_date"])
    out = ther.groupby(["report_id", "source_seq"], sort=False).agg(
        start_date=("start_date", "min"), end_date=("end_date", "max")).reset_index()
    for col in ("start_date", "end_date"):
        out[col] = date_objects(out[col])
    return out


def _parse_indications(q: _Quarantine, table: Table, source: Path, layout: _Layout, known: pd.Index,
                       case_of: pd.Series, drugs: pd.DataFrame) -> pd.DataFrame:
    seq_col = "indi_drug_seq" if layout is FAERS else "drug_seq"
    frame = _child(q, table, source, layout, known, [seq_col, "indi_pt"])
    term = _col(frame, "indi_pt")
    frame = q.take(table, frame, term.isna(), "indi_pt", "empty indication term")
    seq_ok = is_digits(frame[seq_col])
    stripped = text(frame[seq_col]).str.strip().str.lstrip("0")
    source_seq = stripped.where((stripped != "").astype(bool), "0").where(seq_ok, pd.NA)
    lookup = pd.Series(drugs["seq"].to_numpy(), index=_key(drugs["report_id"], drugs["source_seq"]))
    lookup = lookup[~lookup.index.duplicated()]
    keys = _key(frame[layout.report], source_seq)
    seq = pd.to_numeric(pd.Series(lookup.reindex(keys).to_numpy(), index=frame.index), errors="coerce")
    if layout is FAERS:  # keep the given seq even when DRUG lacks it
        given = pd.to_numeric(source_seq, errors="coerce")
        seq = seq.fillna(given.where(given <= INT32_MAX))
    report = frame[layout.report]
    return pd.DataFrame({
        "case_key": _case_keys(report, case_of),
        "report_id": report.astype(object),
        "drug_seq": seq.astype("Int64"),
        "term": _col(frame, "indi_pt"),
    }).reset_index(drop=True)


def _parse_reactions(q: _Quarantine, table: Table, source: Path, layout: _Layout, known: pd.Index,
                     case_of: pd.Series) -> pd.DataFrame:
    frame = _child(q, table, source, layout, known, ["pt"])
    pt = _col(frame, "pt")
    frame = q.take(table, frame, pt.isna(), "pt", "empty reaction term")
    report = frame[layout.report]
    return pd.DataFrame({
        "case_key": _case_keys(report, case_of),
        "report_id": report.astype(object),
        "pt_verbatim": _col(frame, "pt"),
        "meddra_code": None,
        "outcome": None,
    }).reset_index(drop=True)


def _parse_outcomes(q: _Quarantine, table: Table, source: Path, layout: _Layout,
                    known: pd.Index) -> pd.Series:
    code_col = _first(table, "outc_cod", "outc_code") or "outc_cod"
    frame = _child(q, table, source, layout, known, [code_col])
    frame = q.take(table, frame, ~_code(frame[code_col]).isin(OUTCOMES), code_col,
                   lambda bad: "unknown outcome code: " + _code(bad[code_col]).str.slice(0, 20))
    pairs = pd.DataFrame({"report": frame[layout.report].astype(object),
                          "code": _code(frame[code_col]).astype(object)})
    if pairs.empty:
        return pd.Series(dtype=object)
    # one bit per code, OR-ed per report, then each distinct bit set turned into its sorted list once
    order = sorted(OUTCOMES)
    bits = pairs["code"].map({c: 1 << i for i, c in enumerate(order)}).to_numpy(dtype=np.int64)
    report_codes, reports = pd.factorize(pairs["report"])
    masks = np.zeros(len(reports), dtype=np.int64)
    np.bitwise_or.at(masks, report_codes, bits)
    lists = {m: [c for i, c in enumerate(order) if m >> i & 1] for m in set(masks.tolist())}
    return pd.Series([list(lists[m]) for m in masks.tolist()], index=reports, dtype=object)


def _parse_deletions(q: _Quarantine, name: str, data: bytes) -> list[str]:
    text = data.replace(b"\x00", b"").decode("latin-1")
    keys: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip().rstrip("$").strip()
        if not value or (number == 1 and value.lower() in ("caseid", "case")):
            continue
        if value.isascii() and value.isdigit() and len(value) <= 100:
            keys.append(value.lstrip("0") or "0")
        else:
            q.extend([{"file": name, "line": number, "field": "caseid", "raw": line[:RAW_LIMIT],
                       "reason": "non-numeric id"}])
    return keys


def _nulls_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values of object columns as None; Arrow string columns stay (pd.NA), see batch.py."""
    frame = frame.copy()
    for col in frame.columns:
        s = frame[col]
        if s.dtype == object and s.isna().any():
            frame[col] = s.where(s.notna(), None)
    return frame


def parse_quarter(path: str | Path, progress: Progress | None = None, limits: ZipLimits | None = None) -> Batch:
    """Parse a FAERS or legacy AERS quarter (zip or extracted folder) into a :class:`Batch`. ``limits``: what
    the zip's members may inflate to (default: the settings)."""
    path = Path(path)
    step = progress or (lambda _stage: None)
    source = _Source(path, limits)
    try:
        q = _Quarantine()
        rows_read = 0

        def table(kind: str) -> Table | None:
            nonlocal rows_read
            name = source.members.get(kind)
            if name is None:
                return None
            data = source.read(name)
            if not data.strip(b" \t\r\n\x00"):
                if kind in ("DEMO", *REQUIRED):
                    raise UnreadableFileError(f"{name} is empty: an incomplete delivery; refused whole, ask for "
                                              "the complete quarter", file=str(path))
                return None  # an empty optional member is treated as absent
            t = read_table(data, name)
            q.extend(t.quarantine)
            rows_read += t.rows_read
            return t

        demo = table("DEMO")
        assert demo is not None
        layout, versions = _parse_demo(q, demo, path)
        step("DEMO")
        known = pd.Index(versions["report_id"])
        case_of = pd.Series(versions["case_key"].to_numpy(), index=versions["report_id"].to_numpy())

        outcomes = pd.Series(dtype=object)
        t = table("OUTC")
        if t is not None:
            outcomes = _parse_outcomes(q, t, path, layout, known)
        step("OUTC")
        outc = versions["report_id"].map(outcomes)
        versions["outcomes"] = [v if isinstance(v, list) else [] for v in outc]

        drugs = pd.DataFrame({c: pd.Series(dtype=object) for c in [*DRUG_COLUMNS, "source_seq"]})
        t = table("DRUG")
        if t is not None:
            drugs = _parse_drugs(q, t, path, layout, known, case_of)
        step("DRUG")
        t = table("THER")
        drugs["start_date"] = None
        drugs["end_date"] = None
        if t is not None:
            ther = _parse_therapies(q, t, path, layout, known, drugs)
            if not ther.empty:
                merged = drugs[["report_id", "source_seq"]].merge(
                    ther, how="left", on=["report_id", "source_seq"])
                drugs["start_date"] = merged["start_date"].astype(object).where(
                    merged["start_date"].notna(), None).to_numpy()
                drugs["end_date"] = merged["end_date"].astype(object).where(
                    merged["end_date"].notna(), None).to_numpy()
        step("THER")

        indications = pd.DataFrame({c: pd.Series(dtype=object) for c in INDICATION_COLUMNS})
        t = table("INDI")
        if t is not None:
            indications = _parse_indications(q, t, path, layout, known, case_of, drugs)
        step("INDI")

        reactions = pd.DataFrame({c: pd.Series(dtype=object) for c in REACTION_COLUMNS})
        t = table("REAC")
        if t is not None:
            reactions = _parse_reactions(q, t, path, layout, known, case_of)
        step("REAC")

        t = table("RPSR")
        if t is not None:
            _child(q, t, path, layout, known, [])
        step("RPSR")

        deleted: list[str] = []
        for name in source.deletes:
            deleted.extend(_parse_deletions(q, name, source.read(name)))
        step("DELETE")

        return Batch(
            kind=layout.kind,
            name=str(path),
            sha256=source.sha256(),
            quarter=source.quarter(),
            versions=_nulls_as_none(versions[VERSION_COLUMNS]),
            drugs=_nulls_as_none(drugs[DRUG_COLUMNS].reset_index(drop=True)),
            reactions=_nulls_as_none(reactions[REACTION_COLUMNS]),
            indications=_nulls_as_none(indications[INDICATION_COLUMNS]),
            deleted_case_keys=list(dict.fromkeys(deleted)),
            quarantine=q.frame(),
            rows_read=rows_read,
        )
    finally:
        source.close()


# the stages parse_quarter reports to ``progress`` (for progress bars)
PARSE_STAGES = ("DEMO", "OUTC", "DRUG", "THER", "INDI", "REAC", "RPSR", "DELETE")

__all__ = ["PARSE_STAGES", "parse_quarter"]
