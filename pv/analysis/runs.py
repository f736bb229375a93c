"""Analysis runs as records: requesting one, reading it, recording its failure and timings.

A run is (as-of date, data scope, configuration snapshot); its stages (:mod:`pv.analysis.stages`) compute it.
Services receive the caller's Session and do not commit; the caller (a Celery task, the CLI, a test) does.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pv.analysis.config import AnalysisConfig
from pv.analysis.snapshot import RunSnapshot, code_version, take_snapshot
from pv.errors import InputError, NotFoundError, PvError
from pv.ingest.batch import SOURCES
from pv.models.runs import Run, RunCount, RunResult, RunTrend, utcnow


class RunFailedError(PvError):
    """A run ended in failure, or is not (yet) the succeeded run a step needs (the message says which)."""


log = logging.getLogger(__name__)
SCOPES = ("all", *SOURCES)  # a run's data scope: every source, or one


QUEUE_LEASES = 12  # a queued run no worker has claimed is abandoned after this many leases


def process_owner(pid: int | None = None) -> str:
    """This process as a run's owner: host, pid and the process's start time (so a reused pid is not it)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime, after the command name


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``owner`` names still runs: None when it is on another host (unknown here)."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    current = _start_ticks(int(pid_text))
    return current != "?" and (ticks in ("", "?") or current == ticks)


def lease(settings_seconds: int | None = None) -> dt.timedelta:
    """How long a stage's claim on a run holds (PV_RUN_LEASE)."""
    if settings_seconds is None:
        from pv.settings import get_settings

        settings_seconds = get_settings().run_lease
    return dt.timedelta(seconds=settings_seconds)


def claim(run: Run, owner: str | None = None) -> None:
    """Record that this process works on ``run`` now, for one lease (each stage renews it)."""
    run.owner = owner or process_owner()
    run.lease_expires_at = utcnow() + lease()


def stale_reason(run: Run, now: dt.datetime | None = None) -> str | None:
    """Why a queued or running run is abandoned (its owner's process is gone, or its lease expired), or None."""
    if run.status not in ("queued", "running"):
        return None
    if run.owner and owner_alive(run.owner) is False:
        return f"its process ({run.owner}) is gone"
    expires = run.lease_expires_at
    if expires is not None:
        expires = expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)  # SQLite: naive UTC
        if expires < (now or utcnow()):
            return f"its lease expired at {expires:%Y-%m-%d %H:%M:%S} UTC with no stage heard of since"
    return None


def reset_run(run: Run, reason: str, owner: str | None = None) -> None:
    """Put a failed or abandoned run back in the queue, noting why in its parameters (``recovered``)."""
    recovered = list((run.parameters or {}).get("recovered", []))
    recovered.append({"at": utcnow().isoformat(timespec="seconds"), "status": run.status, "reason": reason})
    run.parameters = {**(run.parameters or {}), "recovered": recovered}
    run.status = "queued"
    run.error = None
    run.started_at = None
    run.finished_at = None
    run.code_version = code_version()
    run.owner = owner
    run.lease_expires_at = utcnow() + lease() * (1 if owner else QUEUE_LEASES)


def request_run(
    session: Session,
    as_of: dt.date,
    cfg: AnalysisConfig | None = None,
    *,
    scope: str = "all",
    config_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    owner: str | None = None,
) -> tuple[Run, bool]:
    """The run for (as_of, scope, configuration): an existing one, or a new queued one.

    Returns (run, should_compute): should_compute is False when the same run is already queued, running or
    succeeded (it is computed once); a failed run, or a queued or running one that was abandoned
    (:func:`stale_reason`), is reset to queued and computed again. ``owner``: the process that will compute it
    (embedded: this one), so that a kill is seen at once; without one the queued run holds
    ``QUEUE_LEASES`` leases until a worker claims it.
    """
    if scope not in SCOPES:
        raise InputError(f"unknown data scope {scope!r}; scopes are: {', '.join(SCOPES)}", field="scope")
    cfg = cfg or AnalysisConfig.load(config_dir / "analysis.yaml" if config_dir else None)
    snap = take_snapshot(session, cfg, config_dir)
    digest = snap.digest
    existing = _find(session, as_of, scope, digest)
    if existing is None:
        run = Run(
            status="queued",
            as_of=as_of,
            scope=scope,
            parameters=parameters or {},
            config=snap.to_json(),
            config_hash=digest,
            code_version=code_version(),
            shards=cfg.shards,
            owner=owner,
            lease_expires_at=utcnow() + lease() * (1 if owner else QUEUE_LEASES),
        )
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
            return run, True
        except IntegrityError:
            existing = _find(session, as_of, scope, digest)
            if existing is None:
                raise
    if existing.status == "failed":
        reset_run(existing, f"failed: {existing.error}", owner)
        session.flush()
        return existing, True
    reason = stale_reason(existing)
    if reason is not None:
        log.warning("run %s was %s but %s: computing it again", existing.id, existing.status, reason)
        reset_run(existing, reason, owner)
        session.flush()
        return existing, True
    return existing, False


def retry_run(session: Session, run_id: int, *, force: bool = False, owner: str | None = None) -> Run:
    """An operator's retry (``pv runs retry``): put a failed or abandoned run back in the queue; a run that is
    still being computed only with ``force``; a succeeded run never (its results do not change)."""
    run = get_run(session, run_id, for_update=True)
    if run.status == "succeeded":
        raise InputError(f"run {run_id} succeeded: its results never change (request another run, e.g. with "
                         "another configuration, to compute again)", field="run_id")
    reason = f"failed: {run.error}" if run.status == "failed" else stale_reason(run)
    if reason is None:
        if not force:
            expires = run.lease_expires_at
            holds = f"its lease holds until {expires:%Y-%m-%d %H:%M:%S} UTC" if expires else "it has no lease"
            raise InputError(f"run {run_id} is {run.status}" + (f" by {run.owner}" if run.owner else "")
                             + f" and {holds}: it may still be computed; use --force if you know its process "
                             "is gone", field="run_id")
        reason = f"retried by an operator (--force) while {run.status}"
    reset_run(run, reason, owner)
    session.flush()
    return run


def _find(session: Session, as_of: dt.date, scope: str, digest: str) -> Run | None:
    return session.execute(
        select(Run).where(Run.as_of == as_of, Run.scope == scope, Run.config_hash == digest)
    ).scalar_one_or_none()


def get_run(session: Session, run_id: int, *, for_update: bool = False) -> Run:
    stmt = select(Run).where(Run.id == run_id)
    if for_update:  # lock the row and reload it: another task may have changed it meanwhile
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    run = session.execute(stmt).scalar_one_or_none()
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return run


def list_runs(session: Session, limit: int | None = None) -> list[Run]:
    stmt = select(Run).order_by(Run.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def fail_run(session: Session, run_id: int, message: str) -> None:
    """Mark a run failed with ``message`` (never a succeeded one)."""
    run = get_run(session, run_id)
    if run.status == "succeeded":
        return
    run.status = "failed"
    run.error = message[:4000]
    run.finished_at = utcnow()
    for table in (RunCount, RunResult, RunTrend):  # a failed run keeps no partial results
        session.execute(delete(table).where(table.run_id == run_id))
    session.flush()


def succeeded_run(session: Session, run_id: int, purpose: str) -> Run:
    """The run, which must have succeeded: else RunFailedError saying it is needed for ``purpose``."""
    run = get_run(session, run_id)
    if run.status != "succeeded":
        raise RunFailedError(f"run {run_id} is {run.status}: {purpose} needs a succeeded run")
    return run


def run_snapshot(run: Run) -> RunSnapshot:
    """The typed configuration snapshot the run was requested with."""
    return RunSnapshot.from_json(run.config, source=f"run {run.id} configuration")


def record_timing(run: Run, stage: str, seconds: float) -> None:
    timings = dict(run.timings or {})
    timings[stage] = round(seconds, 3)
    run.timings = timings


def run_summary(run: Run) -> dict[str, Any]:
    """The JSON form of a run (``pv runs list|show``)."""

    def iso(v: dt.date | dt.datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": run.id,
        "status": run.status,
        "as_of": iso(run.as_of),
        "scope": run.scope,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "cases": run.n_cases,
        "pairs": run.n_pairs,
        "config_hash": run.config_hash,
        "code_version": run.code_version,
        "shards": run.shards,
        "hyperparameters": run.hyperparameters,
        "loglik": run.loglik,
        "timings": run.timings,
        "parameters": run.parameters,
        "error": run.error,
        "owner": run.owner,
        "lease_expires_at": iso(run.lease_expires_at),
        "abandoned": stale_reason(run),
    }
