"""``pv analyze``, ``pv runs list|show|retry``, ``pv reanalyze``, ``pv worker``, ``pv beat``.

With a broker (PV_BROKER_URL) the work goes to ``pv worker`` processes; without one (the embedded default)
it runs in this process. Registered in pv/cli/__init__.py with ``register(app)``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from pv.cli.options import Every, iso_date
from pv.cli.options import TableOrJson as Format
from pv.errors import InputError, PvError

# The run service, the database layer, the settings and the tasks (SQLAlchemy, pandas, Celery) are imported
# inside the functions that use them, so that ``pv --help`` and the help of every command start without them.

runs_app = typer.Typer(help="Analysis runs.", no_args_is_help=True)


def _wait(run_ids: list[int], timeout: float, poll: float = 0.5) -> list[dict[str, Any]]:
    from pv.analysis import runs as run_service
    from pv.db import session_scope

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            summaries = [run_service.run_summary(run_service.get_run(session, i)) for i in run_ids]
        if all(s["status"] in ("succeeded", "failed") for s in summaries) or time.monotonic() > deadline:
            return summaries
        time.sleep(poll)


def analyze(
    as_of: str = typer.Option(None, "--as-of", help="As-of date YYYY-MM-DD (default: today)."),
    config: Path = typer.Option(None, "--config", help="Analysis configuration (default config/analysis.yaml)."),
    scope: str = typer.Option("all", "--scope", help="Data scope: all, or one source (faers, e2b, csv...)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run has finished; exit 1 if it failed."),
    timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait at most with --wait."),
) -> None:
    """Start an analysis run (or find the same one already requested) and print its id."""
    from pv.settings import get_settings
    from workers.tasks import submit_run

    day = iso_date(as_of, "--as-of") or dt.date.today()
    if config is not None and not config.exists():
        raise InputError("configuration file not found", file=str(config))
    run_id, _ = submit_run(day, str(config) if config else None, scope)
    typer.echo(run_id)
    if wait or get_settings().is_embedded:
        (summary,) = _wait([run_id], timeout) if wait else _wait([run_id], 0)
        if summary["status"] == "failed":
            raise PvError(f"run {run_id} failed: {summary['error']}")
        if wait and summary["status"] != "succeeded":
            raise PvError(f"run {run_id} still {summary['status']} after {timeout:g} s")


def reanalyze(
    start: str = typer.Option(..., "--from", help="First as-of date (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--to", help="Last as-of date (YYYY-MM-DD)."),
    every: Every = typer.Option(Every.quarter, "--every", help="Interval between as-of dates (period ends)."),
    config: Path = typer.Option(None, "--config", help="Analysis configuration."),
    scope: str = typer.Option("all", "--scope"),
    wait: bool = typer.Option(False, "--wait", help="Wait until every run has finished."),
    timeout: float = typer.Option(6 * 3600, "--timeout"),
) -> None:
    """Runs at every period end between two dates with one configuration; prints one run id per line."""
    from workers.tasks import reanalyze as reanalyze_task

    first, last = iso_date(start, "--from"), iso_date(end, "--to")
    assert first is not None and last is not None
    if last < first:
        raise InputError("--to is before --from", field="--to")
    if config is not None and not config.exists():
        raise InputError("configuration file not found", file=str(config))
    # the dispatch itself is quick (it only queues the runs): done here, in this process
    out = reanalyze_task.run(first.isoformat(), last.isoformat(), every.value,
                             str(config) if config else None, scope)
    for run_id in out["run_ids"]:
        typer.echo(run_id)
    if wait:
        failed = [s for s in _wait(out["run_ids"], timeout) if s["status"] != "succeeded"]
        if failed:
            raise PvError("; ".join(f"run {s['id']} {s['status']}: {s['error'] or ''}" for s in failed))


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("id", "status", "as_of", "scope", "cases", "pairs", "started_at", "finished_at", "config_hash"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(r[c])[:19] if c.endswith("_at") and r[c] else
                        (str(r[c])[:12] if c == "config_hash" else str(r[c] if r[c] is not None else ""))
                        for c in ("id", "status", "as_of", "scope", "cases", "pairs", "started_at",
                                  "finished_at", "config_hash")])
    Console(width=200).print(table)


@runs_app.command("list")
def list_runs(
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
    limit: int = typer.Option(None, "--limit", help="Most recent N runs."),
) -> None:
    """Every run, most recent first."""
    from pv.analysis import runs as run_service
    from pv.db import session_scope

    with session_scope() as session:
        rows = [run_service.run_summary(r) for r in run_service.list_runs(session, limit)]
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _table(rows)


@runs_app.command("retry")
def retry(
    run_id: int = typer.Argument(..., help="Run id."),
    force: bool = typer.Option(False, "--force", help="Also a run that still looks alive (its process is gone "
                                                     "but pv cannot see it, e.g. on another host)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run has finished; exit 1 if it failed."),
    timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait at most with --wait."),
) -> None:
    """Compute a failed or abandoned run again (queued or running with its process gone or its lease expired).
    A succeeded run is never recomputed."""
    from pv.settings import get_settings
    from workers.tasks import retry_run

    retry_run(run_id, force)
    if wait or get_settings().is_embedded:
        (summary,) = _wait([run_id], timeout if wait else 0)
        typer.echo(f"run {run_id}: {summary['status']}")
        if summary["status"] == "failed":
            raise PvError(f"run {run_id} failed: {summary['error']}")
        if wait and summary["status"] != "succeeded":
            raise PvError(f"run {run_id} still {summary['status']} after {timeout:g} s")
    else:
        typer.echo(f"run {run_id}: queued")


@runs_app.command("show")
def show_run(
    run_id: int = typer.Argument(..., help="Run id."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """One run: status, dates, configuration hash, counts, MGPS prior, timings, error."""
    from pv.analysis import runs as run_service
    from pv.db import session_scope

    with session_scope() as session:
        summary = run_service.run_summary(run_service.get_run(session, run_id))
    if fmt is Format.json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = json.dumps(value)
        typer.echo(f"{key:16} {'' if value is None else value}")


def _celery(args: list[str]) -> None:
    """Replace this process with celery (so signals reach the worker directly)."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", *args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def worker(
    concurrency: int = typer.Option(1, "--concurrency", "-c", help="Worker processes."),
    queues: str = typer.Option(None, "--queues", "-Q", help="Queues (default PV_TASK_QUEUE)."),
    loglevel: str = typer.Option("info", "--loglevel", "-l"),
    pool: str = typer.Option("prefork", "--pool", help="prefork, solo or threads."),
) -> None:
    """Start a Celery worker for pv's tasks (needs PV_BROKER_URL)."""
    from pv.settings import get_settings

    settings = get_settings()
    if settings.is_embedded:
        raise PvError("no broker configured (PV_BROKER_URL): tasks run in process, no worker is needed")
    _celery(["worker", "-Q", queues or settings.task_queue, "-c", str(concurrency), "-l", loglevel,
             "-P", pool, "-O", "fair"])


def beat(loglevel: str = typer.Option("info", "--loglevel", "-l")) -> None:
    """Start Celery beat: the weekly cycle at the day and time of config/schedule.yaml (needs PV_BROKER_URL)."""
    from pv.settings import get_settings

    settings = get_settings()
    if settings.is_embedded:
        raise PvError("no broker configured (PV_BROKER_URL): beat needs a broker and a worker")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    _celery(["beat", "-l", loglevel])


def register(app: typer.Typer) -> None:
    """Add the run commands to the ``pv`` app."""
    app.command("analyze")(analyze)
    app.command("reanalyze")(reanalyze)
    app.add_typer(runs_app, name="runs")
    app.command("worker")(worker)
    app.command("beat")(beat)
