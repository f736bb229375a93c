"""Celery tasks of pv. Thin: ids and plain values in, one database session per task, a service call, small
dicts out. No DataFrame ever goes through the broker: a run's stages share data through the database.

Run pipeline (:func:`run_pipeline`)::

    build_counts(run) -> fit_prior(run) -> chord([shard(run, 0) ... shard(run, k-1)], finalise(run))

Tasks that touch the database derive from :class:`DbTask`: it opens one session per task, hands it to the task
body as its first argument and commits when the body returns (rolls back when it raises), so a task body is a
service call. The stage tasks are idempotent (each replaces what an interrupted attempt left, in one
transaction) and so are ``acks_late`` with ``reject_on_worker_lost``: a worker killed mid-stage has the stage
redelivered and the run still ends complete, with no duplicate rows. When a stage fails for good (any error but
a retryable database OperationalError, or retries exhausted) its run is marked failed with the stage and the
error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from celery import Task, chain, chord, uuid
from celery.canvas import Signature
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pv import cycle
from pv.analysis import runs as run_service
from pv.analysis import stages
from pv.analysis.config import AnalysisConfig
from pv.db import session_scope
from pv.errors import InputError, PvError
from pv.ingest import drop
from pv.periods import Every, as_of_dates
from pv.settings import get_settings
from workers.alerts import register as register_alerts
from workers.app import app

# canvases name their app: other Celery apps made in the same process (tests) must not become theirs

log = logging.getLogger(__name__)

RETRYABLE = (OperationalError,)


class PvTask(Task):
    """Base task: exponential backoff retries for retryable errors only."""

    abstract = True
    autoretry_for = RETRYABLE
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 5


class DbTask(PvTask):
    """A task in one database transaction: the body gets a new Session as its first argument; the session is
    committed when the body returns and rolled back when it raises (a retry starts afresh).

    Callers pass the other arguments only (``build_counts.si(run_id)``): Celery's argument check, which would
    count the session, is off (``typing = False``).
    """

    abstract = True
    typing = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with session_scope() as session:
            return self.run(session, *args, **kwargs)


class RunStageTask(DbTask):
    """A stage of an analysis run: idempotent, hence acknowledged late; marks its run failed on failure."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    stage = "stage"

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        run_id = args[0] if args else kwargs.get("run_id")
        where = self.stage
        if self.stage == "shard":
            shard = args[1] if len(args) > 1 else kwargs.get("shard")
            where = f"shard {shard}"
        message = f"{where} failed: {type(exc).__name__}: {exc}"
        log.error("run %s: %s", run_id, message)
        try:
            with session_scope() as session:  # the task's own transaction was rolled back
                run_service.fail_run(session, int(run_id), message)
        except Exception:  # the failure is already logged; never mask the task's own error
            log.exception("run %s: could not record the failure", run_id)


def _stage(name: str, stage: str) -> dict[str, Any]:
    return {"name": name, "base": RunStageTask, "stage": stage}


@app.task(**_stage("pv.run.build_counts", "counting"))
def build_counts(session: Session, run_id: int) -> dict[str, Any]:
    return stages.build_counts(session, run_id).as_dict()


@app.task(**_stage("pv.run.fit_prior", "MGPS fit"))
def fit_prior(session: Session, run_id: int) -> dict[str, Any]:
    return stages.fit_prior(session, run_id).as_dict()


@app.task(**_stage("pv.run.shard", "shard"))
def compute_shard(session: Session, run_id: int, shard: int) -> dict[str, Any]:
    return stages.compute_shard(session, run_id, shard).as_dict()


@app.task(**_stage("pv.run.finalise", "finalisation"))
def finalise(session: Session, _shard_results: Any, run_id: int) -> dict[str, Any]:
    return stages.finalise_run(session, run_id).as_dict()


def run_pipeline(run_id: int, shards: int) -> Signature:
    """The canvas computing one run: counts, the MGPS prior, a chord of shards, finalisation."""
    return chain(
        build_counts.si(run_id),
        fit_prior.si(run_id),
        chord([compute_shard.si(run_id, k) for k in range(shards)], finalise.s(run_id=run_id), app=app),
        app=app,
    )


def request_run(
    as_of: dt.date, config_file: str | None = None, scope: str = "all", parameters: dict[str, Any] | None = None
) -> tuple[int, bool]:
    """Create (or find) the run for (as_of, scope, configuration); returns (run id, should_compute)."""
    cfg = AnalysisConfig.load(config_file) if config_file else None
    owner = run_service.process_owner() if app.conf.task_always_eager else None  # embedded: this process
    with session_scope() as session:
        run, should = run_service.request_run(session, as_of, cfg, scope=scope, parameters=parameters,
                                              owner=owner)
        return run.id, should


def submit_run(
    as_of: dt.date, config_file: str | None = None, scope: str = "all",
    follow: Callable[[int], Signature] | None = None,
) -> tuple[int, bool]:
    """Request a run and, unless the same run exists already, dispatch its pipeline (then ``follow(run_id)``).

    Embedded mode runs the whole canvas in this process before returning; a failure is recorded on the run
    (read its status). Returns (run id, dispatched).
    """
    run_id, should = request_run(as_of, config_file, scope)
    if not should:
        return run_id, False
    dispatch_run(run_id, follow)
    return run_id, True


def retry_run(run_id: int, force: bool = False) -> None:
    """An operator's retry of a failed or abandoned run (:func:`pv.analysis.runs.retry_run`): reset and
    dispatched again (embedded: computed now)."""
    owner = run_service.process_owner() if app.conf.task_always_eager else None
    with session_scope() as session:
        run_service.retry_run(session, run_id, force=force, owner=owner)
    dispatch_run(run_id)


def dispatch_run(run_id: int, follow: Callable[[int], Signature] | None = None) -> None:
    """Send a queued run's pipeline (then ``follow(run_id)``) to the workers, or compute it now (embedded).

    A broker that refuses the message fails the run with the reason (no worker would ever see it, and the
    next request computes it again) and raises.
    """
    with session_scope() as session:
        shards = run_service.get_run(session, run_id).shards
    canvas = run_pipeline(run_id, shards)
    if follow is not None:
        canvas = chain(canvas, follow(run_id), app=app)
    try:
        canvas.apply_async()
    except Exception as exc:
        if not app.conf.task_always_eager:  # the broker refused the message: no worker will ever see the run
            message = f"could not send the run to the workers: {type(exc).__name__}: {' '.join(str(exc).split())}"
            with session_scope() as session:
                run_service.fail_run(session, run_id, message)
            raise PvError(f"run {run_id}: {message} (PV_BROKER_URL; the next request computes it)") from exc
        # embedded: the stage that failed has recorded the failure on the run
        log.exception("run %s failed", run_id)


@app.task(name="pv.analyze", base=PvTask)
def analyze(as_of: str | None = None, config_file: str | None = None, scope: str = "all") -> dict[str, Any]:
    """Request and dispatch one run (as_of ISO date, default today)."""
    day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    run_id, dispatched = submit_run(day, config_file, scope)
    return {"run_id": run_id, "dispatched": dispatched}


@app.task(name="pv.reanalyze", base=PvTask)
def reanalyze(start: str, end: str, every: str = "quarter", config_file: str | None = None,
              scope: str = "all") -> dict[str, Any]:
    """A run at every as-of date of the series with one configuration, each dispatched on its own (a failed
    date does not stop the others; runs already computed are not computed again)."""
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    # a backwards range is an empty series here (the CLI refuses it before dispatch)
    dates = as_of_dates(first, last, cast(Every, every)) if first <= last else []
    run_ids, dispatched = [], 0
    for day in dates:
        run_id, sent = submit_run(day, config_file, scope)
        run_ids.append(run_id)
        dispatched += int(sent)
    return {"run_ids": run_ids, "dispatched": dispatched}


def drop_folder() -> Path:
    return get_settings().var_dir / "drop"


@app.task(name="pv.ingest.file", base=PvTask, acks_late=True, reject_on_worker_lost=True)
def ingest_file(path: str, kind: str | None = None, archive: bool = False,
                folder: str | None = None) -> dict[str, Any]:
    """Load one report file (idempotent: the store skips a file it has loaded before, by sha256).

    With ``archive`` (a drop folder: ``folder``, default :func:`drop_folder`) the file then moves to its done/
    folder, or to failed/ when unreadable.
    """
    file = Path(path)
    where = Path(folder) if folder else drop_folder()
    try:
        with session_scope() as session:
            summary = drop.ingest(session, file, kind)
    except Exception as exc:  # the file's own failure: nothing of it loaded; the other files go on
        reason = drop.file_failure(exc)
        if reason is None or not archive:
            raise  # the service's failure (database unreachable): retried, the file stays in the drop folder
        log.warning("refused %s: %s", file, reason)
        drop.archive(file, where, error=reason)
        return {"file": path, "error": reason}
    if archive:
        drop.archive(file, where)
    return summary


@app.task(name="pv.signals.evaluate", base=DbTask, acks_late=True, reject_on_worker_lost=True)
def evaluate_signals(session: Session, run_id: int) -> dict[str, Any]:
    """Evaluate a succeeded run in the signal registry and queue the alerts of what changed."""
    return cycle.evaluate_signals(session, run_id).as_dict()


# the alerts task (workers/alerts.py: retries with backoff for retryable SMTP errors only), on this app
send_alerts = register_alerts(app)


@app.task(name="pv.report.weekly", base=DbTask, acks_late=True, reject_on_worker_lost=True)
def weekly_report(session: Session, run_id: int) -> dict[str, Any]:
    """Write the weekly report (HTML and PDF) of a succeeded run under <var_dir>/reports."""
    files = cycle.write_report(session, run_id)
    return {"run_id": run_id, "html": str(files.html), "pdf": str(files.pdf)}


def cycle_follow_ups(run_id: int, last_task_id: str | None = None) -> Signature:
    """What follows a weekly run: signal evaluation (which queues the alerts), the report, sending the alerts.

    ``last_task_id``: the task id given to the last step, so that a caller can wait for the cycle to end.
    """
    send = send_alerts.si() if last_task_id is None else send_alerts.si().set(task_id=last_task_id)
    return chain(evaluate_signals.si(run_id), weekly_report.si(run_id), send, app=app)


@app.task(name="pv.weekly_cycle", base=PvTask)
def weekly_cycle(as_of: str | None = None, config_file: str | None = None,
                 folder: str | None = None) -> dict[str, Any]:
    """The weekly cycle: ingest new files from the drop folder (``folder``, default :func:`drop_folder`), run
    as of today (or ``as_of``), then signals, report, alerts.

    A date before the last run the registry evaluated is refused before anything is done
    (:func:`pv.cycle.check_as_of`): the task logs why and returns it as ``refused`` (a replay of past cut-offs,
    e.g. ``make demo`` run again, then leaves the store as it is). The ingestion tasks run first (in name order);
    the run is requested by :func:`start_cycle_run` once they are done, so that it sees the new data.
    """
    day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    try:
        with session_scope() as session:
            cycle.check_as_of(session, day)
    except InputError as exc:
        log.warning("weekly cycle as of %s refused: %s", day, exc)
        return {"files": [], "as_of": day.isoformat(), "refused": str(exc)}
    where = Path(folder) if folder else drop_folder()
    files = [str(p) for p in drop.pending(where)]
    canvas = chain(*[ingest_file.si(f, None, True, str(where)) for f in files],
                   start_cycle_run.si(day.isoformat(), config_file), app=app)
    canvas.apply_async()
    return {"files": files, "as_of": day.isoformat()}


def start_cycle(as_of: dt.date, config_file: str | None = None) -> dict[str, Any]:
    """Request the cycle's run and dispatch it with its follow-ups (:func:`cycle_follow_ups`).

    A run that exists already is not computed again; when it has succeeded (computed by ``pv analyze``, or by
    an earlier cycle) its follow-ups are dispatched now: the registry skips a run it has evaluated, the report
    is rewritten and pending alerts are sent. A run still queued or running for another request gets no
    follow-ups here (``follow_ups`` None). Returns run_id, dispatched (the run is computed by this cycle) and
    follow_ups: the task id of the last follow-up, to wait for.
    """
    last = uuid()
    run_id, dispatched = submit_run(as_of, config_file, follow=lambda run: cycle_follow_ups(run, last))
    if not dispatched:
        with session_scope() as session:
            status = run_service.get_run(session, run_id).status
        if status != "succeeded":
            return {"run_id": run_id, "dispatched": False, "follow_ups": None}
        dispatch_follow_ups(run_id, last)
    return {"run_id": run_id, "dispatched": dispatched, "follow_ups": last}


def dispatch_follow_ups(run_id: int, last_task_id: str | None = None) -> None:
    """Dispatch the follow-ups of a succeeded run (embedded: run them now; a failure is logged, as a failing
    run stage's is)."""
    try:
        cycle_follow_ups(run_id, last_task_id).apply_async()
    except Exception:
        if not app.conf.task_always_eager:
            raise
        log.exception("run %s: the weekly cycle's follow-ups failed", run_id)


@app.task(name="pv.weekly_cycle.run", base=PvTask)
def start_cycle_run(as_of: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    return start_cycle(day, config_file)
