"""``pv disproportionality``: every measure for every product x event pair of a case-level CSV table."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pv.cli.csv_text import csv_bytes, write_csv
from pv.cli.options import Format, ProcessEnd
from pv.errors import InputError, UnreadableFileError

# pandas and the statistics (NumPy, SciPy) are imported inside the functions that use them, so that ``pv --help``
# and the help of every command start without them.
if TYPE_CHECKING:
    import pandas as pd


def read_case_rows(path: Path, columns: list[str], categorical: Sequence[str] = ()) -> pd.DataFrame:
    """Read the named columns of a case-level CSV as text (empty cells are missing).

    Arrow's CSV reader reads a well-formed file several times faster than pandas' own; a file it rejects (rows of
    uneven length, text that is not UTF-8...) is read again by pandas, which decides as it always did what it
    can read. The ``categorical`` columns come as pandas categories of the same texts (in the order Arrow first
    met them), built from Arrow's dictionary encoding without a Python text per row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pa_csv

    # Arrow first, pandas only once the file is read (the command may be loading pandas in another thread
    # meanwhile); a file Arrow cannot read, or that lacks a column, is for pandas to judge as before.
    coded: dict[str, pa.DictionaryArray] = {}
    try:
        table = pa_csv.read_csv(
            path, parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                include_columns=columns, column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True))
        coded = {col: pc.dictionary_encode(table.column(col).combine_chunks()) for col in categorical}
    except (pa.ArrowException, OSError):
        table = None
    import pandas as pd

    if table is not None:
        data: dict[str, object] = {}
        for col in columns:
            if col in coded:
                labels = pd.Index(coded[col].dictionary.to_numpy(zero_copy_only=False), dtype=object)
                data[col] = pd.Categorical.from_codes(coded[col].indices.fill_null(-1).to_numpy(),
                                                      categories=labels)
            else:
                data[col] = table.column(col).to_pandas()
        return pd.DataFrame(data)
    try:
        header = pd.read_csv(path, nrows=0)
    except FileNotFoundError as exc:
        raise UnreadableFileError("no such file", file=str(path)) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise UnreadableFileError(f"not a readable CSV file ({exc})", file=str(path)) from exc
    for col in columns:
        if col not in header.columns:
            raise InputError(f"no column {col!r}; the columns are {', '.join(map(str, header.columns))}",
                             file=str(path), line=1, field=col)
    try:
        rows = pd.read_csv(path, usecols=columns, dtype=dict.fromkeys(columns, str), keep_default_na=False,
                           na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableFileError(f"not a readable CSV file ({exc})", file=str(path)) from exc
    return rows.astype(dict.fromkeys(categorical, "category")) if categorical else rows


def _load_statistics() -> None:
    """Import the statistics (pandas, NumPy, SciPy); an error is left for the import that uses them to raise."""
    try:
        import pv.stats  # noqa: F401
    except BaseException:  # noqa: S110 - raised again, with its traceback, where the command imports pv.stats
        pass


def _json_value(v: object) -> object:
    if hasattr(v, "item"):  # a NumPy scalar: the Python number it holds
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return v


def command(
    file: Path = typer.Argument(..., help="Case-level CSV: one row per case x product x event."),
    id_col: str = typer.Option("id", "--id", help="Case id column."),
    product_col: str = typer.Option("var1", "--product", help="Product column."),
    event_col: str = typer.Option("var2", "--event", help="Event (PT) column."),
    strata: list[str] = typer.Option([], "--strata", help="Stratification column (repeatable)."),
    output_format: Format = typer.Option(Format.csv, "--format", help="csv, json or table."),
    min_count: int = typer.Option(1, "--min-count", min=1, help="Report only pairs with at least N cases."),
    fisher: bool = typer.Option(False, "--fisher", help="Add a one-sided Fisher exact p-value column."),
    all_columns: bool = typer.Option(False, "--all-columns", help="Add the 2x2 cells and signal flags."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """PRR, ROR, IC and EBGM (MGPS) for every product x event pair of a case-level table.

    Counts are distinct cases; the MGPS prior is fitted on all pairs (see docs/methods.md). When the prior
    cannot be fitted or is degenerate, EBGM, EB05 and EB95 are left empty and stderr says why.
    """
    # pandas and SciPy load in another thread while Arrow, which leaves the GIL, reads the file
    loading = threading.Thread(target=_load_statistics, name="pv-load-statistics", daemon=True)
    loading.start()
    columns = list(dict.fromkeys([id_col, product_col, event_col, *strata]))
    try:
        # the case ids, products and events as categories (strata stay texts): counted by their codes, and the
        # products and events of the result written by theirs
        rows = read_case_rows(file, columns, categorical=[c for c in columns[:3] if c not in strata])
    finally:
        loading.join()
    from pv.stats import RESULT_COLUMNS, disproportionality

    table = disproportionality(rows, id_col=id_col, product_col=product_col, event_col=event_col,
                               strata=strata or None, min_count=min_count, fisher=fisher)
    fit = dict(table.attrs)
    if fit["reason"]:
        sys.stderr.write(f"pv disproportionality: EBGM, EB05 and EB95 withheld: {fit['reason']}\n")
    if fit["quantiles_not_converged"]:
        sys.stderr.write(f"pv disproportionality: EB05/EB95 left empty for {fit['quantiles_not_converged']} "
                         "pair(s) whose posterior quantiles did not converge\n")
    if not all_columns:
        table = table[RESULT_COLUMNS + (["fisher_p"] if fisher else [])]
    if output_format is Format.csv:  # the text ends with its line separator
        if output is not None:
            with output.open("wb") as fh:
                write_csv(table, fh)
        elif hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()
            try:
                write_csv(table, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            except BrokenPipeError:  # the reader has gone (| head): the rest is for no one; status 0 as before
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        else:  # a text stream only (e.g. replaced by a test)
            sys.stdout.write(csv_bytes(table).decode())
        ProcessEnd.at_once = True  # nothing is left open: no need for Python to tear pandas and SciPy down
        return
    table = table.astype({"product": str, "event": str})
    if output_format is Format.json:
        records = [{k: _json_value(v) for k, v in zip(table.columns, row, strict=True)}
                   for row in table.itertuples(index=False, name=None)]
        doc = {"hyperparameters": fit["hyperparameters"], "loglik": _json_value(fit["loglik"]),
               "converged": fit["converged"], "at_bound": fit["at_bound"], "reason": fit["reason"],
               "quantiles_not_converged": fit["quantiles_not_converged"], "strata": strata, "pairs": records}
        text = json.dumps(doc, indent=None, allow_nan=False)
    else:
        text = table.to_string(index=False)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    ProcessEnd.at_once = True
