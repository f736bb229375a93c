"""Analysis runs as records: requesting one, reading it, recording its failure and timings.

A run is (as-of date, data scope, configuration snapshot); its stages (:mod:`pv.analysis.stages`) compute it.
Services receive the caller's Session and do not commit; the caller (a Celery task, the CLI, a test) does.
"""

from __future__ import annotations

import datetime as dt
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


SCOPES = ("all", *SOURCES)  # a run's data scope: every source, or one


def request_run(
    session: Session,
    as_of: dt.date,
    cfg: AnalysisConfig | None = None,
    *,
    scope: str = "all",
    config_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[Run, bool]:
    """The run for (as_of, scope, configuration): an existing one, or a new queued one.

    Returns (run, should_compute): should_compute is False when the same run is already queued, running or
    succeeded (it is computed once); a failed run is reset to queued and computed again.
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
        existing.status = "queued"
        existing.error = None
        existing.started_at = None
        existing.finished_at = None
        existing.code_version = code_version()
        session.flush()
        return existing, True
    return existing, False


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
    }
