"""DataFrames in and out of the database in bulk, through the caller's Session (inside its transaction).

Writing (:func:`write_frame`, :func:`temp_table`) follows one policy on both backends:

- Missing values: None, NaN, NaT and ``pd.NA`` are written as NULL. An empty string stays an empty string.
- Strings are cut to the column lengths when lengths are given (PostgreSQL enforces ``VARCHAR(n)``, SQLite
  does not; cutting on both keeps the two stores alike). A :class:`~sqlalchemy.Table` gives the lengths of
  its String columns.
- Categorical (dictionary) columns are written as their string values.
- PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)``, the CSV written by pyarrow with every non-null value
  quoted and nulls left empty and unquoted, which is exactly PostgreSQL's CSV convention for telling an
  empty string from NULL. Doubles are written in their shortest round-trip form; infinities as ``inf`` /
  ``-inf``, which PostgreSQL reads as ``Infinity`` / ``-Infinity``. Large frames go in chunks of
  :data:`COPY_CHUNK` rows within the one COPY.
- SQLite: ``executemany`` with each value converted by :func:`_python_value` (numpy scalars to Python
  values, NaN / NaT to None, datetimes in SQLAlchemy's SQLite format, dates in ISO format).

Reading (:func:`read_frame`, :func:`read_lines`): PostgreSQL ``COPY ... TO STDOUT`` (or one text blob per
group of rows) parsed by pyarrow's CSV reader; SQLite a plain SELECT.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import String, Table, text
from sqlalchemy.orm import Session

from pv.db import backend_name

#: rows per CSV chunk written into one PostgreSQL COPY
COPY_CHUNK = 200_000


def dbapi_connection(session: Session) -> Any:
    """The DBAPI connection (psycopg or sqlite3) under the session's current transaction."""
    conn = session.connection().connection.driver_connection
    assert conn is not None
    return conn


# ---------------------------------------------------------------------------------------------- reading
def _bind_literal(value: object) -> str:
    """A SQL literal for COPY statements (which take no bind parameters): only dates, numbers, strings."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    s = str(value).replace("'", "''")
    return f"'{s}'"


def _column_types(dtypes: Mapping[str, str] | None) -> dict[str, Any]:
    """pyarrow CSV column types for the ``dtypes`` that the reader handles itself ("str", "category")."""
    column_types: dict[str, Any] = {}
    for col, dtype in (dtypes or {}).items():
        if dtype == "str":
            column_types[col] = pa.string()
        elif dtype == "category":
            column_types[col] = pa.dictionary(pa.int32(), pa.string())
    return column_types


def read_frame(
    session: Session,
    sql: str,
    params: Mapping[str, object] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The rows of ``sql`` as a DataFrame (named ``:params`` are inlined as literals on PostgreSQL COPY).

    ``dtypes`` maps columns to "str", "category" or a pandas dtype to cast to.
    """
    params = dict(params or {})
    if backend_name(session) == "postgresql":
        query = sql
        for name in sorted(params, key=len, reverse=True):
            query = query.replace(f":{name}", _bind_literal(params[name]))
        chunks = bytearray()
        conn = dbapi_connection(session)
        with conn.cursor() as cur:
            with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT CSV, HEADER TRUE)") as copy:
                while block := copy.read():
                    chunks += block
        buf = io.BytesIO(chunks)
        if buf.getbuffer().nbytes == 0:
            cols = [c.name for c in cur.description] if cur.description else []
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        table = pacsv.read_csv(
            buf,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types=_column_types(dtypes), strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
        frame = table.to_pandas()
    else:
        result = session.execute(text(sql), params)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for col, dtype in (dtypes or {}).items():
        if col in frame.columns and dtype == "category" and not isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(str).astype("category")
        elif col in frame.columns and dtype not in ("str", "category"):
            frame[col] = frame[col].astype(dtype)
    return frame


def csv_text(expr: str) -> str:
    """SQL (PostgreSQL) for a CSV field of a text expression: quoted, quotes doubled; NULL as an empty field."""
    return f"""COALESCE('"' || replace({expr}, '"', '""') || '"', '')"""


def read_lines(
    session: Session,
    lines_sql: str,
    columns: Sequence[str],
    dtypes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """PostgreSQL: the rows of ``lines_sql`` (columns ``grp`` and ``line``, a CSV line of ``columns``), shipped as
    one text blob per ``grp`` (``string_agg``) instead of one message per row, then parsed by pyarrow.

    Reading millions of short rows row by row (COPY sends one message per row) costs more in the driver than
    in the server; a few hundred large messages cost next to nothing.
    """
    conn = dbapi_connection(session)
    with conn.cursor() as cur:
        cur.execute(f"SELECT string_agg(line, E'\\n') FROM ({lines_sql}) q GROUP BY grp")
        blobs = [row[0] for row in cur.fetchall() if row[0]]
    data = ("\n".join(blobs) + "\n").encode("utf-8") if blobs else b""
    if not data:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types=_column_types(dtypes), strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"],
        ),
    )
    return table.to_pandas()


# ---------------------------------------------------------------------------------------------- writing
def _table_lengths(table: Table) -> dict[str, int]:
    """The declared lengths of ``table``'s String columns."""
    return {c.name: c.type.length for c in table.columns if isinstance(c.type, String) and c.type.length}


def write_frame(
    session: Session,
    table: str | Table,
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    lengths: Mapping[str, int] | None = None,
) -> int:
    """Insert the rows of ``frame`` (``columns`` of it, default all, named as in the table) into ``table``,
    following the module's policy; returns the number of rows.

    ``table`` is a table name or a :class:`~sqlalchemy.Table`, whose String column lengths then apply (with
    ``lengths`` on top of them).
    """
    cut: dict[str, int] = {}
    if isinstance(table, Table):
        cut.update(_table_lengths(table))
        name = table.name
    else:
        name = table
    cut.update(lengths or {})
    if frame.empty:
        return 0
    columns = list(columns or frame.columns)
    frame = frame[columns]
    if backend_name(session) == "postgresql":
        _copy(session, name, frame, cut)
    else:
        _executemany(session, name, frame, cut)
    return len(frame)


def temp_table(session: Session, name: str, columns: Mapping[str, str], frame: pd.DataFrame) -> None:
    """A temporary table ``name`` with ``columns`` (name -> SQL type), filled with those columns of ``frame``
    (used to join large key sets on both backends). An earlier one of that name is dropped first."""
    session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    cols = ", ".join(f"{c} {t}" for c, t in columns.items())
    session.execute(text(f"CREATE TEMPORARY TABLE {name} ({cols})"))
    write_frame(session, name, frame, list(columns))


def drop_temp(session: Session, *names: str) -> None:
    """Drop these temporary tables (those that exist)."""
    for name in names:
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _arrow_column(values: pd.Series, length: int | None) -> pa.Array:
    """One column for COPY: pandas values as Arrow (None/NaN/NaT/NA null, categories as strings), strings cut
    to ``length``."""
    if values.dtype == object:
        arr = pa.array(values.to_numpy(), from_pandas=True)
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
    else:
        arr = pa.Array.from_pandas(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if length and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.utf8_slice_codeunits(arr, 0, length)
    return arr


def _copy(session: Session, table: str, frame: pd.DataFrame, lengths: Mapping[str, int]) -> None:
    """PostgreSQL COPY of ``frame`` as CSV written by Arrow (every non-null value quoted, nulls empty)."""
    arrays = [_arrow_column(frame[c], lengths.get(c)) for c in frame.columns]
    data = pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    conn = dbapi_connection(session)
    sql = f"COPY {table} ({_column_list(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for start in range(0, len(frame), COPY_CHUNK):
            buf = io.BytesIO()
            pacsv.write_csv(data.slice(start, COPY_CHUNK), buf, options)
            copy.write(buf.getvalue())


def _cut(values: pd.Series, length: int) -> pd.Series:
    """Text values (object, string or categorical) as str cut to ``length``; missing values left as they are."""
    if not (values.dtype == object or isinstance(values.dtype, pd.StringDtype | pd.CategoricalDtype)):
        return values
    values = values.astype(object)
    return values.where(values.isna(), values.astype(str).str.slice(0, length))


def _python_value(value: Any) -> Any:
    """A value as SQLite stores it: numpy scalars as Python values, NaN/NaT/NA as None, datetimes in
    SQLAlchemy's SQLite DateTime format (aware ones in UTC), dates in ISO format."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
        if value is pd.NaT:
            return None
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _executemany(session: Session, table: str, frame: pd.DataFrame, lengths: Mapping[str, int]) -> None:
    """SQLite: one ``executemany`` INSERT of ``frame``'s rows, values converted by :func:`_python_value`."""
    frame = frame.copy()
    for col, length in lengths.items():
        if col in frame.columns:
            frame[col] = _cut(frame[col], length)
    cols = list(frame.columns)
    sql = f"INSERT INTO {table} ({_column_list(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    rows = [tuple(_python_value(v) for v in row)
            for row in frame.astype(object).itertuples(index=False, name=None)]
    cur = dbapi_connection(session).cursor()
    try:
        cur.executemany(sql, rows)
    finally:
        cur.close()


__all__ = [
    "COPY_CHUNK",
    "csv_text",
    "dbapi_connection",
    "drop_temp",
    "read_frame",
    "read_lines",
    "temp_table",
    "write_frame",
]
