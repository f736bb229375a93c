"""Fast table I/O for analysis runs: DataFrames in and out of the database through the caller's Session.

PostgreSQL: ``COPY ... TO STDOUT`` read by pyarrow's CSV reader, and ``COPY ... FROM STDIN`` for inserts, on
the Session's own connection (so inside its transaction). SQLite: plain SELECT / executemany.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from pv.db import backend_name


def _dbapi_connection(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _bind_literal(value: object) -> str:
    """A SQL literal for COPY statements (which take no bind parameters): only dates, numbers, strings."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    s = str(value).replace("'", "''")
    return f"'{s}'"


def read_frame(
    session: Session,
    sql: str,
    params: Mapping[str, object] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The rows of ``sql`` as a DataFrame (named ``:params`` are inlined as literals on PostgreSQL COPY)."""
    params = dict(params or {})
    if backend_name(session) == "postgresql":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        query = sql
        for name in sorted(params, key=len, reverse=True):
            query = query.replace(f":{name}", _bind_literal(params[name]))
        chunks = bytearray()
        conn = _dbapi_connection(session)
        with conn.cursor() as cur:
            with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT CSV, HEADER TRUE)") as copy:
                while block := copy.read():
                    chunks += block
        buf = io.BytesIO(chunks)
        if buf.getbuffer().nbytes == 0:
            cols = [c.name for c in cur.description] if cur.description else []
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        column_types = {}
        for col, dtype in (dtypes or {}).items():
            if dtype == "str":
                column_types[col] = pa.string()
            elif dtype == "category":
                column_types[col] = pa.dictionary(pa.int32(), pa.string())
        table = pacsv.read_csv(
            buf,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False
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
    import pyarrow as pa
    import pyarrow.csv as pacsv

    conn = _dbapi_connection(session)
    with conn.cursor() as cur:
        cur.execute(f"SELECT string_agg(line, E'\\n') FROM ({lines_sql}) q GROUP BY grp")
        blobs = [row[0] for row in cur.fetchall() if row[0]]
    data = ("\n".join(blobs) + "\n").encode("utf-8") if blobs else b""
    column_types: dict[str, Any] = {}
    for col, dtype in (dtypes or {}).items():
        if dtype == "str":
            column_types[col] = pa.string()
        elif dtype == "category":
            column_types[col] = pa.dictionary(pa.int32(), pa.string())
    if not data:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"],
        ),
    )
    return table.to_pandas()


def write_frame(
    session: Session, table: str, frame: pd.DataFrame, columns: Sequence[str] | None = None
) -> int:
    """Insert the rows of ``frame`` into ``table`` (COPY on PostgreSQL); returns the number of rows."""
    columns = list(columns or frame.columns)
    if frame.empty:
        return 0
    frame = frame[columns]
    if backend_name(session) == "postgresql":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        conn = _dbapi_connection(session)
        # NaN becomes null (written unquoted and empty: NULL); strings are quoted, so '' stays ''; doubles are
        # written in their shortest round-trip form; PostgreSQL reads inf / -inf as infinities.
        table_ = pa.Table.from_pandas(frame, preserve_index=False)
        table_ = table_.cast(pa.schema([
            pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f for f in table_.schema
        ]))
        out = pa.BufferOutputStream()
        pacsv.write_csv(table_, out, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        data = out.getvalue()
        cols = ", ".join(f'"{c}"' for c in columns)
        with conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT CSV)") as copy:
                copy.write(memoryview(data))
        return len(frame)
    records = []
    for row in frame.itertuples(index=False, name=None):
        records.append({c: _py(v) for c, v in zip(columns, row, strict=True)})
    placeholders = ", ".join(f":{c}" for c in columns)
    session.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"), records)
    return len(frame)


def _py(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        f = float(v)
        return None if math.isnan(f) else f
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
