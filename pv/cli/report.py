"""``pv report weekly``: the weekly safety report of a run (HTML with figures embedded, and a PDF)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from pv.errors import NotFoundError

# SQLAlchemy, the report (matplotlib, WeasyPrint) and the settings are imported inside the functions that use
# them, so that ``pv --help`` and the help of every command start without them.

app = typer.Typer(help="Safety reports.", no_args_is_help=True)


def latest_run_id(session, as_of: dt.date | None = None) -> int:  # type: ignore[no-untyped-def]
    """The latest succeeded run (as of ``as_of`` exactly, when given)."""
    from sqlalchemy import select

    from pv.models import Run

    q = select(Run.id).where(Run.status == "succeeded")
    if as_of is not None:
        q = q.where(Run.as_of == as_of)
    run_id = session.scalar(q.order_by(Run.as_of.desc(), Run.id.desc()).limit(1))
    if run_id is None:
        where = f" as of {as_of}" if as_of else ""
        raise NotFoundError(f"no succeeded analysis run{where}: run `pv analyze` first")
    return int(run_id)


@app.command()
def weekly(
    run: int | None = typer.Option(None, "--run", help="Run id (default: the latest succeeded run)."),
    as_of: dt.datetime | None = typer.Option(None, "--as-of", formats=["%Y-%m-%d"],
                                             help="Use the latest succeeded run with this as-of date."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: <var_dir>/reports)."),
) -> None:
    """Write the weekly signal report of a run as HTML and PDF, and print their paths."""
    from pv.db import session_scope
    from pv.report.build import build_report_data
    from pv.report.render import write_report
    from pv.settings import get_settings

    if run is not None and as_of is not None:
        raise typer.BadParameter("give --run or --as-of, not both")
    out_dir = out or get_settings().var_dir / "reports"
    with session_scope() as session:
        run_id = run if run is not None else latest_run_id(session, as_of.date() if as_of else None)
        data = build_report_data(session, run_id)
    files = write_report(data, out_dir)
    typer.echo(f"report (HTML): {files.html}")
    typer.echo(f"report (PDF):  {files.pdf}")
