"""Reading ``$``-delimited FAERS/AERS tables fast, with a per-line field-count check.

The file is checked line by line with numpy (count of ``$`` per line) before pandas sees it: a line
whose field count differs from the header's goes to quarantine with its line number and raw text, and only
the good lines are handed to pandas' C parser (``sep='$'``, no quoting, every value a string). A data line
may carry one extra trailing ``$`` (an empty last field), with or without the header having it too. NUL
bytes are removed, CRLF line ends accepted, and the text is decoded as UTF-8, or Latin-1 when it holds no UTF-8
at all; a UTF-8 member with a few invalid bytes keeps UTF-8 and quarantines the lines holding them
(:mod:`pv.ingest.text`).

Values that cannot be parsed become quarantine rows in the caller; this module only deals with the layout.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pv.ingest.text import decode, invalid_reason, shown

RAW_LIMIT = 2000  # characters of raw text kept per quarantined row
STRING = pd.StringDtype("pyarrow")  # every parsed value is an Arrow-backed string (fast vectorised str ops)
_DIGITS = re.compile(r"\d+")


@dataclass
class Table:
    """One parsed member file: columns named by the (lower-cased) header, plus ``_line`` (1-based)."""

    member: str
    frame: pd.DataFrame
    header: list[str]
    quarantine: list[dict[str, object]] = field(default_factory=list)
    rows_read: int = 0


def _decode_choice(data: bytes) -> tuple[str, bool]:
    """The encoding of a member, and whether it is UTF-8 with some damaged lines (:mod:`pv.ingest.text`)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        _, how = decode(data)
        return ("utf-8", True) if how == "mixed" else ("latin-1", False)
    return "utf-8", False


def _blank_damaged_lines(body: bytes, member: str) -> tuple[bytes, list[dict[str, object]]]:
    """Quarantine the lines of a mixed member that are not valid UTF-8 and blank them (the line numbers of the
    others stay as they are)."""
    lines = body.split(b"\n")
    quarantine: list[dict[str, object]] = []
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", errors="surrogateescape")
            quarantine.append({"file": member, "line": i + 2, "field": None, "raw": shown(text)[:RAW_LIMIT],
                               "reason": invalid_reason(text)})
            lines[i] = b""
    return b"\n".join(lines), quarantine


def _header_names(line: str) -> list[str]:
    names = [n.strip().lower() for n in line.split("$")]
    while len(names) > 1 and names[-1] == "":
        names.pop()
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names):
        if not name or name in seen or name.startswith("_"):
            name = f"_col{i + 1}"
        seen.add(name)
        out.append(name)
    return out


def read_table(data: bytes, member: str) -> Table:
    """Parse one ``$``-delimited file with a header line into a :class:`Table` (never raises on content)."""
    data = data.replace(b"\x00", b"")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    encoding, damaged = _decode_choice(data)
    head_end = data.find(b"\n")
    if head_end < 0:
        head_end = len(data)
    header = _header_names(data[:head_end].decode(encoding, errors="replace"))
    body = data[head_end + 1:]
    if body and not body.endswith(b"\n"):
        body += b"\n"
    undecodable: list[dict[str, object]] = []
    if damaged:
        body, undecodable = _blank_damaged_lines(body, member)
    n_fields = len(header)
    empty = pd.DataFrame({c: pd.Series(dtype=STRING) for c in header})
    empty["_line"] = pd.Series(dtype="int64")
    if not body.strip(b"\n"):
        return Table(member, empty, header, undecodable, rows_read=len(undecodable))

    arr = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    dollars = np.flatnonzero(arr == 36)
    seps = np.searchsorted(dollars, ends) - np.searchsorted(dollars, starts)
    lengths = ends - starts
    trailing = (lengths > 0) & (arr[np.maximum(ends - 1, 0)] == 36)
    blank = lengths == 0
    ok = ~blank & ((seps == n_fields - 1) | ((seps == n_fields) & trailing))
    bad = np.flatnonzero(~ok & ~blank)
    line_numbers = np.arange(2, len(ends) + 2)

    quarantine: list[dict[str, object]] = list(undecodable)
    for i in bad:
        raw = body[starts[i]:ends[i]].decode(encoding)
        if not raw.strip():
            continue
        got = int(seps[i]) + 1
        quarantine.append({
            "file": member, "line": int(line_numbers[i]), "field": None, "raw": raw[:RAW_LIMIT],
            "reason": f"wrong field count: expected {n_fields}, found {got}",
        })

    if len(bad):
        # keep only the good lines: join the runs of consecutive good lines
        good_idx = np.flatnonzero(ok)
        if len(good_idx) == 0:
            return Table(member, empty, header, quarantine, rows_read=int((~blank).sum()) + len(undecodable))
        breaks = np.flatnonzero(np.diff(good_idx) != 1)
        run_first = np.r_[good_idx[0], good_idx[breaks + 1]]
        run_last = np.r_[good_idx[breaks], good_idx[-1]]
        buf = b"".join(body[starts[a]:ends[b] + 1] for a, b in zip(run_first, run_last, strict=True))
    else:
        buf = body
    expected = int(ok.sum())
    names = [*header, "_trail"]
    frame: pd.DataFrame | None = None
    if expected:
        with_trail = int((ok & (seps == n_fields)).sum())
        if with_trail in (0, expected):  # uniform lines: the Arrow reader (fast, multi-threaded)
            frame = _arrow_read(buf, names if with_trail else header, encoding)
        if frame is None or len(frame) != expected:
            frame = _pandas_read(buf, names, encoding)
        if frame is None or len(frame) != expected:
            frame = _python_split(buf.decode(encoding), names)
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
    frame = frame.drop(columns="_trail", errors="ignore")
    frame = frame.astype(STRING)
    frame["_line"] = line_numbers[ok]
    return Table(member, frame, header, quarantine, rows_read=int((~blank).sum()) + len(undecodable))


def _arrow_read(buf: bytes, names: list[str], encoding: str) -> pd.DataFrame | None:
    try:
        table = pacsv.read_csv(
            pa.py_buffer(buf),
            read_options=pacsv.ReadOptions(column_names=names, encoding=encoding, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter="$", quote_char=False, double_quote=False,
                                             escape_char=False, newlines_in_values=False,
                                             ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=[""], strings_can_be_null=True,
                quoted_strings_can_be_null=True),
        )
    except (pa.ArrowException, ValueError, UnicodeError):
        return None
    return table.to_pandas(types_mapper=lambda t: STRING if t == pa.string() else None)


def _pandas_read(buf: bytes, names: list[str], encoding: str) -> pd.DataFrame | None:
    try:
        return pd.read_csv(
            io.BytesIO(buf), sep="$", header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
            keep_default_na=False, na_values=[""], encoding=encoding, lineterminator="\n", engine="c",
            skip_blank_lines=True, index_col=False, low_memory=False,
        )
    except (pd.errors.ParserError, ValueError):
        return None


def _python_split(text: str, names: list[str]) -> pd.DataFrame:
    """Slow, exact fallback: split each non-empty line on ``$`` (lines are already known to fit)."""
    width = len(names)
    rows = []
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split("$")
        parts += [""] * (width - len(parts))
        rows.append([p if p != "" else None for p in parts[:width]])
    return pd.DataFrame(rows, columns=names, dtype=object).astype(STRING)


def text(series: pd.Series) -> pd.Series:
    """The values as Arrow strings with missing values as ''."""
    return series.astype(STRING).fillna("")


def raw_text(frame: pd.DataFrame, header: list[str]) -> pd.Series:
    """The row re-joined with ``$`` (an approximation of the raw line, for quarantine)."""
    cols = [c for c in header if c in frame.columns]
    if frame.empty or not cols:
        return pd.Series([], dtype=object, index=frame.index)
    out = text(frame[cols[0]])
    for col in cols[1:]:
        out = out + "$" + text(frame[col])
    return out.str.slice(0, RAW_LIMIT).astype(object)


def is_digits(series: pd.Series) -> pd.Series:
    """True where the (stripped) value is a non-empty run of ASCII digits."""
    return text(series).str.strip().str.fullmatch(r"[0-9]+").astype(bool)


def clean(series: pd.Series) -> pd.Series:
    """Stripped Arrow strings, empty as missing."""
    s = series.astype(STRING).str.strip()
    return s.where((s != "").fillna(False).astype(bool), pd.NA)


def parse_partial_dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """FAERS dates -> (``datetime.date`` or None, True where the value is present but impossible).

    YYYYMMDD is exact; YYYYMM becomes the first day of the month and YYYY the first of January. Years must
    be in 1900-2099. Anything else non-empty (letters, other lengths, 20171301) is impossible. Each distinct
    value is parsed once (dates repeat a lot).
    """
    codes, uniques = pd.factorize(text(series).str.strip())
    s = pd.Series(uniques, dtype=STRING).fillna("")
    present = (s != "").astype(bool).to_numpy()
    n = s.str.len().astype("int64")
    digits = s.str.fullmatch(r"[0-9]+").astype(bool)
    full = s.where(n != 4, s + "0101").where(n != 6, s + "01")
    full = full.where(digits & n.isin([4, 6, 8]), "")
    parsed = pd.to_datetime(full.astype(object), format="%Y%m%d", errors="coerce")
    years = parsed.dt.year
    valid = (parsed.notna() & (years >= 1900) & (years <= 2099)).to_numpy()
    unique_dates = np.append(date_objects(parsed.where(valid)).to_numpy(), np.array([None], dtype=object))
    unique_bad = np.append(present & ~valid, False)
    take = np.where(codes < 0, len(uniques), codes)
    return (pd.Series(unique_dates[take], index=series.index, dtype=object),
            pd.Series(unique_bad[take], index=series.index, dtype=bool))


def date_objects(series: pd.Series) -> pd.Series:
    """datetime64 values as ``datetime.date`` objects, NaT as None."""
    out = np.full(len(series), None, dtype=object)
    ok = series.notna().to_numpy()
    if ok.any():
        out[ok] = series[ok].dt.date.to_numpy()
    return pd.Series(out, index=series.index, dtype=object)
