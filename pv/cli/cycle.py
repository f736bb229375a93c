"""``pv cycle``: the weekly cycle now, from the command line, with what each step did.

The same steps as the Celery task ``pv.weekly_cycle`` (workers/tasks.py), through the same tasks: each new file
of the drop folder is ingested (``pv.ingest.file``, in name order), then the run as of the date is requested
and dispatched with its follow-ups (:func:`workers.tasks.start_cycle`: signal evaluation, which queues the
alerts, the report, sending the alerts). Embedded (no PV_BROKER_URL) every task runs in this process; with a
broker they run on ``pv worker`` processes and the command waits for them (``--timeout``), polling the run and
the last follow-up. Registered in pv/cli/__init__.py with ``register(app)``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pv.cli.options import TableOrJson as Format
from pv.cli.options import iso_date
from pv.errors import InputError, PvError

# The cycle's services, the database layer and the tasks (SQLAlchemy, pandas, Celery) are imported inside the
# functions that use them, so that ``pv --help`` starts without them.
if TYPE_CHECKING:
    from pv.cycle import CycleOutcome

POLL_SECONDS = 0.5


def cycle(
    as_of: str | None = typer.Option(None, "--as-of", help="As-of date YYYY-MM-DD (default: today); not "
                                     "before the last run the signal registry evaluated."),
    drop_dir: Path | None = typer.Option(None, "--drop", help="Drop folder (default: <PV_VAR_DIR>/drop); with "
                                         "a broker the workers must see it at the same path."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
    timeout: float = typer.Option(3600, "--timeout", help="With a broker: seconds to wait for the workers."),
) -> None:
    """Run the weekly cycle now: ingest the drop folder, compute the run as of the date, evaluate its signals,
    write the report and send the alerts. Exit status 1 when the run (or a later step) fails."""
    from pv import cycle as cycle_service
    from pv.db import session_scope
    from pv.ingest import drop
    from pv.settings import get_settings
    from pv.signals.evaluation import evaluated_runs
    from workers import tasks

    day = iso_date(as_of, "--as-of") or dt.date.today()
    if drop_dir is not None and not drop_dir.is_dir():
        raise InputError("drop folder not found", file=str(drop_dir))
    folder = drop_dir or tasks.drop_folder()
    with session_scope() as session:
        cycle_service.check_as_of(session, day)
        evaluated_before = evaluated_runs(session, day)
    deadline = time.monotonic() + timeout
    ingested = [_ingest(path, folder, deadline, timeout) for path in drop.pending(folder)]
    start = tasks.start_cycle(day)
    run_id = start["run_id"]
    if get_settings().is_embedded:
        if start["follow_ups"] is None:  # queued or running, and nothing computes it in this process
            raise PvError(f"run {run_id} as of {day} is being computed by another process (or was interrupted); "
                          "run the cycle again when it has ended")
    else:
        _wait(run_id, start["follow_ups"], deadline, timeout)
    with session_scope() as session:
        outcome = cycle_service.cycle_outcome(session, run_id, evaluated_before=run_id in evaluated_before)
    result = {"as_of": day.isoformat(), "drop": str(folder), "ingested": ingested,
              "cases_added": sum(f.get("cases_added", 0) for f in ingested),
              **outcome.as_dict(), "run": {**outcome.run, "computed_now": start["dispatched"]}}
    if fmt is Format.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print(result, outcome)
    if outcome.run["status"] == "failed":
        raise PvError(f"run {run_id} failed: {outcome.run['error']}")
    if not outcome.complete:
        missing = "the signal evaluation" if not outcome.evaluated else "the report"
        raise PvError(f"run {run_id} is {outcome.run['status']} but the cycle did not complete: {missing} is "
                      "missing (its error is logged above)")


def _ingest(path: Path, folder: Path, deadline: float, timeout: float) -> dict[str, Any]:
    """Ingest one drop-folder file through the ingest task (on a worker with a broker) and wait for it."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from workers.tasks import ingest_file

    result = ingest_file.apply_async(args=(str(path), None, True, str(folder)))
    try:
        summary: dict[str, Any] = result.get(timeout=max(deadline - time.monotonic(), 0.1))
    except CeleryTimeout as exc:
        raise PvError(f"the cycle did not end within {timeout:g} s: {path.name} is still being ingested on the "
                      "workers (they go on with it; run the cycle again later)") from exc
    return summary


def _wait(run_id: int, last_task_id: str | None, deadline: float, timeout: float) -> None:
    """With a broker: wait until the run has failed, or has succeeded and its last follow-up has ended (or is
    retrying to send alerts). A run another request had queued gets its follow-ups once it has succeeded."""
    from celery import uuid
    from celery.result import AsyncResult

    from pv.analysis.runs import get_run
    from pv.db import session_scope
    from workers import tasks

    while True:
        with session_scope() as session:
            status = get_run(session, run_id).status
        if status == "failed":
            return
        if status == "succeeded":
            if last_task_id is None:
                last_task_id = uuid()
                tasks.dispatch_follow_ups(run_id, last_task_id)
            last = AsyncResult(last_task_id, app=tasks.app)
            if last.state == "FAILURE":
                raise PvError(f"run {run_id} succeeded but the cycle's follow-ups failed: "
                              f"{type(last.result).__name__}: {last.result}")
            if last.state in ("SUCCESS", "RETRY"):  # RETRY: alerts stay pending, the worker retries them
                return
        if time.monotonic() > deadline:
            where = "its signal evaluation, report or alerts are" if status == "succeeded" else f"it is {status}"
            raise PvError(f"the cycle did not end within {timeout:g} s: run {run_id}: {where} "
                          f"still on the workers (they go on with it: see pv runs show {run_id}, pv signals, "
                          "pv alerts list)")
        time.sleep(POLL_SECONDS)


def _print(result: dict[str, Any], outcome: CycleOutcome) -> None:
    files = result["ingested"]
    typer.echo(f"drop folder {result['drop']}: {len(files)} file(s), {result['cases_added']} cases added")
    for f in files:
        name = Path(f["file"]).name
        if "error" in f:
            typer.echo(f"  {name}: not loaded, moved to failed/: {f['error']}")
        elif f.get("skipped_duplicate_file"):
            typer.echo(f"  {name}: loaded before (same content); nothing new")
        else:
            typer.echo(f"  {name}: {f['kind']} {f.get('quarter') or ''}".rstrip() + f": {f['cases_added']} cases "
                       f"added, {f['cases_updated']} updated, {f['cases_deleted']} deleted, "
                       f"{f['rows_quarantined']} rows quarantined")
    run = result["run"]
    done = "computed now" if run["computed_now"] else "computed before"
    typer.echo(f"run {run['id']} as of {run['as_of']}: {run['status']} ({done}), {run['cases'] or 0} cases, "
               f"{run['pairs'] or 0} pairs")
    if outcome.evaluated_now:
        kinds = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in outcome.changes.items())
        typer.echo(f"signal registry: {sum(outcome.changes.values())} changes" + (f" ({kinds})" if kinds else ""))
    elif outcome.evaluated:
        typer.echo(f"signal registry: run {run['id']} was evaluated before; nothing new")
    else:
        typer.echo("signal registry: not evaluated")
    a = outcome.alerts
    typer.echo(f"alerts: {a['queued']} queued; the run's alerts: {a['sent']} sent, {a['pending']} pending, "
               f"{a['failed']} failed")
    typer.echo(f"report: {outcome.report['html']} and .pdf" if outcome.report else "report: not written")


def register(app: typer.Typer) -> None:
    """Add ``cycle`` to the ``pv`` app."""
    app.command("cycle")(cycle)
