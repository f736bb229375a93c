"""``pv ingest``: load report files into the case store (FAERS/AERS, E2B(R3) XML, CSV with a mapping).

Each file is parsed into a :class:`~pv.ingest.batch.Batch` and written with
:func:`~pv.ingest.store.load_batch` in its own transaction, so a file that fails leaves the others loaded.
The command prints one summary row per file and the totals, and exits 1 when a file was refused (nothing of it loaded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

# The parsers, the case store and the settings (pandas, SQLAlchemy, pydantic) are imported inside the functions
# that use them, so that ``pv --help`` and the help of every command start without them.
if TYPE_CHECKING:
    from pv.ingest.batch import Batch
    from pv.ingest.store import LoadSummary

    Parser = Callable[[Path, Callable[[str], None]], Batch]

app = typer.Typer(help="Load report files into the case store.", no_args_is_help=True)


@dataclass(frozen=True)
class FileResult:
    path: str
    kind: str | None = None
    quarter: str | None = None
    rows_read: int = 0
    summary: LoadSummary | None = None
    error: str | None = None


def ingest_files(paths: Sequence[Path], parse: Parser, *, parse_stages: int = 1,
                 console: Console | None = None) -> list[FileResult]:
    """Parse and load each path in its own transaction; print a table per file and the totals.

    ``parse(path, step)`` returns a Batch and may call ``step(stage)`` up to ``parse_stages`` times (for the
    progress bar). A file that fails (unreadable, refused by a limit, rejected by the database, a mapping
    error: :func:`pv.ingest.drop.file_failure`) is reported with a one-line reason and the others still load.
    """
    from pv.db import session_scope
    from pv.ingest.drop import file_failure
    from pv.ingest.store import LOAD_STAGES, load_batch
    from pv.settings import get_settings

    console = console or Console(width=None if _terminal() else 160)
    url = get_settings().database_url
    results: list[FileResult] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                  disable=not console.is_terminal) as progress:
        for path in paths:
            task = progress.add_task(path.name, total=parse_stages + len(LOAD_STAGES), stage="parsing")

            def step(stage: str, task: TaskID = task) -> None:
                progress.update(task, advance=1, stage=stage)

            try:
                batch = parse(path, step)
                progress.update(task, completed=parse_stages, stage="loading")
                with session_scope(url) as session:
                    summary = load_batch(session, batch, progress=step)
            except Exception as exc:  # the file's own failure is reported, and the other files go on
                reason = file_failure(exc)
                if reason is None:
                    raise  # the database is unreachable: every file would fail the same way
                results.append(FileResult(str(path), error=reason))
                continue
            finally:
                progress.remove_task(task)
            results.append(FileResult(str(path), batch.kind, batch.quarter, batch.rows_read, summary))
    print_results(results, console)
    return results


def _terminal() -> bool:
    return Console().is_terminal


def print_results(results: Sequence[FileResult], console: Console) -> None:
    table = Table(title="Ingest summary")
    for col in ("file", "kind", "quarter", "rows read", "versions", "cases added", "cases updated",
                "cases deleted", "quarantined", "status"):
        table.add_column(col, justify="left" if col in ("file", "kind", "quarter", "status") else "right")
    totals = [0] * 6
    for r in results:
        s = r.summary
        if s is None:
            table.add_row(Path(r.path).name, "", "", "", "", "", "", "", "", "refused")
            continue
        status = "already loaded" if s.skipped_duplicate_file else "replaced" if s.replaced else "loaded"
        values = [r.rows_read if not s.skipped_duplicate_file else 0, s.versions_loaded, s.cases_added,
                  s.cases_updated, s.cases_deleted, s.rows_quarantined]
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        table.add_row(Path(r.path).name, r.kind or "", r.quarter or "", *(str(v) for v in values), status)
    failed = sum(1 for r in results if r.summary is None)
    skipped = sum(1 for r in results if r.summary is not None and r.summary.skipped_duplicate_file)
    table.add_row("total", "", "", *(str(v) for v in totals), "", style="bold")
    console.print(table)
    console.print(f"{len(results) - failed - skipped} loaded, {skipped} already loaded, {failed} refused",
                  style="bold", soft_wrap=True)
    for r in results:
        if r.error:
            console.print(f"refused: {r.error}", style="red", soft_wrap=True)
        for rep in r.summary.replaced if r.summary is not None else ():
            console.print(
                f"replaced: {Path(r.path).name} is a redelivery of {rep['quarter']}: what "
                f"{Path(rep['replaced_file']).name} loaded was replaced ({rep['versions_before']} versions before, "
                f"{rep['versions_now']} now: {rep['only_before']} only before, {rep['only_now']} only now; "
                f"{rep['reactions_before']} reactions before, {rep['reactions_now']} now; quarantined "
                f"{rep['rows_quarantined_before']} before, {rep['rows_quarantined_now']} now)", soft_wrap=True)


def exit_code(results: Sequence[FileResult]) -> int:
    return 1 if any(r.summary is None for r in results) else 0


@app.command("faers")
def faers(paths: list[Path] = typer.Argument(..., help="Quarter zips or extracted folders (FAERS or AERS).")
          ) -> None:
    """Load FAERS quarterly ASCII or legacy AERS extracts (zip or folder), deduplicating across quarters."""
    from pv.ingest.faers import PARSE_STAGES, parse_quarter

    results = ingest_files(paths, lambda p, step: parse_quarter(p, progress=step),
                           parse_stages=len(PARSE_STAGES))
    if exit_code(results):
        raise typer.Exit(1)


@app.command("e2b")
def e2b(paths: list[Path] = typer.Argument(..., help="E2B(R3) XML files, or folders searched for *.xml.")
        ) -> None:
    """Load ICH E2B(R3) ICSR XML files (a single ICSR or an MCCI batch of them per file)."""
    from pv.ingest.e2b import e2b_files, parse_e2b

    results = ingest_files(e2b_files(paths), lambda p, _step: parse_e2b(p))
    if exit_code(results):
        raise typer.Exit(1)


@app.command("csv")
def csv(paths: list[Path] = typer.Argument(..., help="CSV files laid out as the mapping describes."),
        mapping: Path = typer.Option(..., "--mapping", "-m",
                                     help="Column mapping, e.g. config/mappings/caers.yaml.")) -> None:
    """Load CSV report files whose columns a mapping file names (one row per case-drug-event or per case)."""
    from pv.ingest.csv import load_mapping, parse_csv

    column_mapping = load_mapping(mapping)
    results = ingest_files(paths, lambda p, _step: parse_csv(p, column_mapping))
    if exit_code(results):
        raise typer.Exit(1)
