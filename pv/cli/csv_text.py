"""CSV text of a DataFrame: exactly what ``DataFrame.to_csv(index=False)`` writes, several times faster.

pandas turns each float into text with NumPy, one value at a time (the shortest text that reads back as the same
number, as Python's ``repr`` writes it), and most of the time of writing a table of measures goes there. Here each
column becomes an Arrow array of texts and Arrow joins the rows. Arrow's cast of a float column gives the same
shortest digits as ``repr``, in C, and writes them as Python does for magnitudes in [1e-4, 1e10) (once the
``.0`` of a whole number is added) and at or above 1e16 or below 1e-9 (exponents of two digits or more); the
values in between, zeros and infinities go through ``repr``. Missing floats are empty, as pandas writes them. A
check on probe values at first use sends every float through ``repr`` should a pyarrow release write floats
otherwise. Integers are cast by Arrow (exact), booleans written ``True``/``False``, categories of texts by
taking each category's text by its code (no Python text per row).

A text cell that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return, and not a number) gets a leading ``'`` (:mod:`pv.export`); every other cell is as pandas writes
it. Text is written as it is when no value holds a comma, a quote or a line break (the lines, joined by Arrow, are
then taken as the bytes of its buffer); otherwise the csv module writes the rows and quotes what needs it, as
pandas does (it uses that module too). A frame with columns of other kinds (dates, categories of other than
text, nullable or 32-bit numbers) is written by pandas itself. NumPy, pandas and pyarrow are
imported in the functions: the caller has loaded them already (this module is imported by the command line).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
from typing import TYPE_CHECKING, BinaryIO

from pv.export import FORMULA_START, NUMBER, safe_cell

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

_SPECIAL = '[,"\r\n]'  # a text holding one of these goes through the csv module, which quotes as it does

# values at and around every boundary of the formats, for the check at first use
_PROBES = [0.0, -0.0, 1.0, -2.0, 0.1, 0.5, 2.0 / 3.0, 123.456, 1e-4, 1.5e-4, 9.999999999999999e-05, 1e-5, 1e-6,
           1e-7, 9.5e-10, 1e-9, 1e-10, 1.2345e-300, 5e-324, 9999999999.999998, 1e10, 12345678901.5, 1e15,
           9999999999999998.0, 1e16, 1.2345e16, 1.7976931348623157e308, 123456789012345678.0, math.inf,
           -math.inf, 30000.0, 1e9]


def _arrow_float_texts(values: np.ndarray) -> pa.Array:
    """``repr`` of each float but NaN, from Arrow's texts where they agree (see the module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pc.cast(pa.array(values), pa.string())
    size = np.abs(values)
    with np.errstate(invalid="ignore"):
        plain = (size >= 1e-4) & (size < 1e10)
        same = plain | ((size >= 1e16) & (size < math.inf)) | ((size > 0.0) & (size < 1e-9))
        whole = plain & (values == np.floor(values))
    if whole.any():
        texts = pc.if_else(pa.array(whole), pc.binary_join_element_wise(texts, ".0", ""), texts)
    other = ~same & ~np.isnan(values)
    if other.any():
        texts = pc.replace_with_mask(texts, pa.array(other),
                                     pa.array([repr(v) for v in values[other].tolist()], pa.string()))
    return texts


@functools.cache
def _arrow_agrees() -> bool:
    """Whether :func:`_arrow_float_texts` gives ``repr``'s texts on the probe values (checked once)."""
    import numpy as np

    probes = np.array(_PROBES + [-v for v in _PROBES])
    return bool(_arrow_float_texts(probes).to_pylist() == [repr(v) for v in probes.tolist()])


def _float_texts(values: np.ndarray) -> pa.Array:
    """The text pandas writes for each float: ``repr``'s, empty when missing."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if _arrow_agrees():
        texts = _arrow_float_texts(values)
    else:
        texts = pa.array([repr(v) for v in values.tolist()], pa.string())
    missing = np.isnan(values)
    if missing.any():
        texts = pc.if_else(pa.array(missing), "", texts)
    return texts


def _column_texts(column: pd.Series) -> pa.Array | None:
    """The texts of a column as pandas writes them (missing ones empty); None for a kind not handled here."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column.dtype, pd.CategoricalDtype):  # of texts: each category's text, taken by its code
        labels = column.cat.categories.to_numpy()
        if labels.dtype.kind != "O" or pd.api.types.infer_dtype(labels, skipna=False) not in ("string", "empty"):
            return None
        labels = np.array([safe_cell(str(v)) for v in labels], dtype=object)
        codes = np.asarray(column.cat.codes, dtype=np.int64)
        missing = codes < 0
        return pa.array(labels, pa.string()).take(pa.array(codes, mask=missing if missing.any() else None)) \
            .fill_null("")
    values = column.to_numpy()
    if values.dtype == np.float64:
        return _float_texts(values)
    if values.dtype.kind in "iu":
        return pc.cast(pa.array(values), pa.string())
    if values.dtype.kind == "b":
        return pc.if_else(pa.array(values), "True", "False")
    if values.dtype.kind == "O" and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        texts = pa.array(values, pa.string(), from_pandas=True).fill_null("")  # only text and missing values
        risky = pc.and_(pc.match_substring_regex(texts, "^[" + re.escape(FORMULA_START) + "]"),
                        pc.invert(pc.match_substring_regex(texts, NUMBER)))
        return pc.if_else(risky, pc.binary_join_element_wise("'", texts, ""), texts)
    return None


def _neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell made safe for a spreadsheet (:func:`pv.export.safe_cell`)."""
    import pandas as pd

    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype.kind == "O":
            out[name] = column.map(lambda v: safe_cell(v) if isinstance(v, str) else v)
    return out


def write_csv(frame: pd.DataFrame, out: BinaryIO) -> None:
    """Write ``frame.to_csv(index=False)``, encoded as UTF-8, to a binary file (see the module docstring).

    On the fast path the lines are joined by Arrow and written from its buffer as they lie there, with no
    Python text per line and no copy of the whole.
    """
    from concurrent.futures import ThreadPoolExecutor  # imported here: it loads logging, which pv --help needs not

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if frame.shape[1] == 0:
        out.write(frame.to_csv(index=False).encode())
        return
    columns: list[pa.Array] = []
    quoting = frame.shape[1] == 1  # the csv module quotes an empty field alone on its line
    series = [frame.iloc[:, i] for i in range(frame.shape[1])]
    _arrow_agrees()  # checked once, before the threads
    # Arrow's casts and NumPy's masks release the GIL: on two cores the columns are turned into text side by side
    with ThreadPoolExecutor(max_workers=min(len(series), os.cpu_count() or 1)) as pool:
        found = list(pool.map(_column_texts, series))
    for column, texts in zip(series, found, strict=True):
        if texts is None:
            out.write(_neutralised(frame).to_csv(index=False).encode())
            return
        if (column.dtype.kind == "O" or isinstance(column.dtype, pd.CategoricalDtype)) and not quoting:
            quoting = pc.any(pc.match_substring_regex(texts, _SPECIAL)).as_py() or False
        columns.append(texts)
    # pandas' defaults: os.linesep ends a line, minimal quoting
    head = io.StringIO()
    writer = csv.writer(head, lineterminator=os.linesep)
    writer.writerow(frame.columns)
    if quoting:
        writer.writerows(zip(*(c.to_pylist() for c in columns), strict=True))
        out.write(head.getvalue().encode())
        return
    out.write(head.getvalue().encode())
    if not frame.shape[0]:
        return
    columns[-1] = pc.binary_join_element_wise(columns[-1], os.linesep, "")  # each line ends with its separator
    lines = pc.binary_join_element_wise(*columns, ",")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=width)[lines.offset:lines.offset + len(lines) + 1]
    out.write(memoryview(lines.buffers()[2])[int(offsets[0]):int(offsets[-1])])


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame.to_csv(index=False)`` encoded as UTF-8 (see :func:`write_csv`)."""
    out = io.BytesIO()
    write_csv(frame, out)
    return out.getvalue()


def csv_text(frame: pd.DataFrame) -> str:
    """``frame.to_csv(index=False)``: the same text (see the module docstring)."""
    return csv_bytes(frame).decode()
