"""What follows a run in the weekly cycle: signal evaluation with alert queueing, and the weekly report.

The alerts of a run link its report, whose path is known before it is written (:func:`report_path`): the cycle
evaluates the signals (queueing the alerts), writes the report, then sends the alerts.

Services: they receive the caller's Session and do not commit. Each step is idempotent so that a redelivered
task does no harm: a run already evaluated by the signal registry is not evaluated again, alerts are queued
once per (change, recipient) by the alerts service, and the report of a run is rewritten in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pv.analysis.runs import RunFailedError, get_run
from pv.errors import NotFoundError
from pv.models.runs import Run
from pv.settings import get_settings


def report_path(run: Run) -> Path:
    """Where the weekly report (HTML) of a run is written: <var_dir>/reports/weekly-report-<as_of>-run<id>.html,
    the name :func:`pv.report.render.write_report` gives it."""
    return get_settings().var_dir / "reports" / f"weekly-report-{run.as_of.isoformat()}-run{run.id}.html"


def write_report(session: Session, run_id: int) -> dict[str, Any]:
    """Write the weekly report (HTML and PDF) of a succeeded run under <var_dir>/reports; rewritten if present."""
    from pv.report.build import build_report_data
    from pv.report.render import write_report as render

    files = render(build_report_data(session, run_id), report_path(get_run(session, run_id)).parent)
    return {"run_id": run_id, "html": str(files.html), "pdf": str(files.pdf)}


def evaluate_signals(session: Session, run_id: int) -> dict[str, Any]:
    """Evaluate a succeeded run in the signal registry and queue the alerts for what changed.

    A run the registry has evaluated before is skipped (runs are evaluated once each, in as-of order).
    """
    from pv.alerts.service import queue_alerts
    from pv.signals.registry import rules_for_run
    from pv.signals.store import evaluate_run_from_store

    run = get_run(session, run_id)
    if run.status != "succeeded":
        raise RunFailedError(f"run {run_id} is {run.status}: only a succeeded run can be evaluated")
    try:
        rules_for_run(session, run_id)
        return {"run_id": run_id, "skipped": "already evaluated"}
    except NotFoundError:
        pass
    changes = evaluate_run_from_store(session, run_id)  # with the cohort incidence evidence hook
    queued = queue_alerts(session, changes, report_path=str(report_path(run)))
    return {"run_id": run_id, "changes": len(changes), "alerts_queued": queued}
