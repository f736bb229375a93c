"""The weekly cycle after an analysis run: signal evaluation (which queues the alerts), the weekly report, then
sending the alerts (a task of the workers).

The run is loaded once and handed, with its results, to the registry. The alerts of a run link its report, whose
file name is known before it is written (:func:`pv.report.render.report_files`), so the cycle evaluates the
signals and queues the alerts, writes the report, then sends the alerts.

Services: they receive the caller's Session and do not commit. Each step is idempotent so that a redelivered
task does no harm: a run the registry has evaluated is not evaluated again, alerts are queued once per (change,
recipient), and the report of a run is rewritten in place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pv.alerts.service import queue_alerts
from pv.analysis.results import results_frame
from pv.analysis.runs import succeeded_run
from pv.report.build import build_report_data
from pv.report.render import ReportFiles, report_files
from pv.report.render import write_report as render_report
from pv.settings import get_settings
from pv.signals.evaluation import evaluate_run, is_evaluated
from pv.signals.evidence import cohort_incidence


def reports_dir() -> Path:
    """Where the weekly cycle writes its reports: <var_dir>/reports."""
    return get_settings().var_dir / "reports"


@dataclass(frozen=True)
class Evaluation:
    """What a run's signal evaluation did: the registry's changes and the alerts queued for them, or why it did
    nothing (``skipped``)."""

    run_id: int
    changes: int = 0
    alerts_queued: int = 0
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def evaluate_signals(session: Session, run_id: int) -> Evaluation:
    """Evaluate a succeeded run in the signal registry, with the cohort incidence as evidence, and queue the
    alerts for what changed (linking the run's report). A run evaluated before is skipped."""
    run = succeeded_run(session, run_id, "signal evaluation")
    if is_evaluated(session, run.id):
        return Evaluation(run.id, skipped="already evaluated")
    changes = evaluate_run(session, run_id=run.id, as_of=run.as_of, results=results_frame(session, run.id),
                           incidence=cohort_incidence)
    report = report_files(reports_dir(), run.as_of, run.id).html
    queued = queue_alerts(session, changes, report_path=str(report))
    return Evaluation(run.id, changes=len(changes), alerts_queued=queued)


def write_report(session: Session, run_id: int) -> ReportFiles:
    """Write the weekly report (HTML and PDF) of a succeeded run into :func:`reports_dir`; rewritten if present."""
    return render_report(build_report_data(session, run_id), reports_dir())
