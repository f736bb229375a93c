"""What follows a run in the weekly cycle: signal evaluation with alert queueing, and the weekly report.

Services: they receive the caller's Session and do not commit. Each step is idempotent so that a redelivered
task does no harm: a run already evaluated by the signal registry is not evaluated again, alerts are queued
once per (change, recipient) by the alerts service, and the report of a run is rewritten in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pv.analysis.runs import RunFailedError, get_run, results_frame
from pv.errors import NotFoundError
from pv.settings import get_settings


def report_dir(run_id: int) -> Path:
    """Where the weekly report of a run is written: <var_dir>/reports/run-<id>/."""
    return get_settings().var_dir / "reports" / f"run-{run_id}"


def evaluate_signals(session: Session, run_id: int) -> dict[str, Any]:
    """Evaluate a succeeded run in the signal registry and queue the alerts for what changed.

    A run the registry has evaluated before is skipped (runs are evaluated once each, in as-of order).
    """
    from pv.alerts.service import queue_alerts
    from pv.signals.registry import evaluate_run, rules_for_run

    run = get_run(session, run_id)
    if run.status != "succeeded":
        raise RunFailedError(f"run {run_id} is {run.status}: only a succeeded run can be evaluated")
    try:
        rules_for_run(session, run_id)
        return {"run_id": run_id, "skipped": "already evaluated"}
    except NotFoundError:
        pass
    changes = evaluate_run(session, run_id=run_id, as_of=run.as_of, results=results_frame(session, run_id))
    queued = queue_alerts(session, changes, report_path=str(report_dir(run_id) / "report.html"))
    return {"run_id": run_id, "changes": len(changes), "alerts_queued": queued}
