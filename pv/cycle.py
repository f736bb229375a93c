"""The weekly cycle after an analysis run: signal evaluation (which queues the alerts), the weekly report, then
sending the alerts (a task of the workers).

The run is loaded once and handed, with its results, to the registry. The alerts of a run link its report, whose
file name is known before it is written (:func:`pv.report.render.report_files`), so the cycle evaluates the
signals and queues the alerts, writes the report, then sends the alerts.

Services: they receive the caller's Session and do not commit. Each step is idempotent so that a redelivered
task does no harm: a run the registry has evaluated is not evaluated again, alert digests are queued once per
(run, recipient), and the report of a run is rewritten in place.

A cycle is refused up front (:func:`check_as_of`) when its date is before the last run the registry evaluated,
and :func:`cycle_outcome` reads what a cycle's run led to once it has ended (``pv cycle`` prints it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.alerts.service import queue_digests
from pv.analysis.results import results_frame
from pv.analysis.runs import get_run, succeeded_run
from pv.errors import InputError
from pv.models.alerts import AlertOutbox
from pv.report.build import build_report_data
from pv.report.render import ReportFiles, report_files
from pv.report.render import write_report as render_report
from pv.settings import get_settings
from pv.signals.evaluation import evaluate_run, is_evaluated, last_evaluated_as_of
from pv.signals.evidence import cohort_incidence
from pv.signals.queries import changes_of_run


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
    alert digests of what changed (one per recipient, linking the run's report). A run evaluated before is
    skipped."""
    run = succeeded_run(session, run_id, "signal evaluation")
    if is_evaluated(session, run.id):
        return Evaluation(run.id, skipped="already evaluated")
    changes = evaluate_run(session, run_id=run.id, as_of=run.as_of, results=results_frame(session, run.id),
                           incidence=cohort_incidence)
    report = report_files(reports_dir(), run.as_of, run.id).html
    queued = queue_digests(session, changes, report=report.name)
    return Evaluation(run.id, changes=len(changes), alerts_queued=queued)


def write_report(session: Session, run_id: int) -> ReportFiles:
    """Write the weekly report (HTML and PDF) of a succeeded run into :func:`reports_dir`; rewritten if present."""
    return render_report(build_report_data(session, run_id), reports_dir())


def check_as_of(session: Session, as_of: dt.date) -> None:
    """Refuse a cycle as of a date before the last run the registry evaluated (InputError naming that date):
    the registry evaluates runs in as-of order, so the cycle's run could be computed but never evaluated."""
    last = last_evaluated_as_of(session)
    if last is not None and as_of < last:
        raise InputError(
            f"as-of {as_of} is before the last run the signal registry evaluated ({last}): runs are evaluated "
            f"in as-of order, so a cycle must be as of {last} or later (pv analyze computes an earlier run "
            "without evaluating it; pv backtest replays the registry over past dates)")


@dataclass(frozen=True)
class CycleOutcome:
    """What a weekly cycle's run led to, read from the store once the cycle has ended.

    ``evaluated_now`` is False when an earlier cycle evaluated the run (a run is evaluated once): the cycle then
    changed nothing in the registry and queued no alert. ``alerts``: those queued by this cycle, then the run's
    alerts by status (sent, pending, failed). ``report``: the HTML and PDF paths, once written.
    """

    run: dict[str, Any]
    evaluated: bool
    evaluated_now: bool
    changes: dict[str, int]
    alerts: dict[str, int]
    report: dict[str, str] | None

    @property
    def complete(self) -> bool:
        """The run succeeded, the registry evaluated it and its report is written."""
        return self.run["status"] == "succeeded" and self.evaluated and self.report is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cycle_outcome(session: Session, run_id: int, *, evaluated_before: bool) -> CycleOutcome:
    """The outcome of a cycle whose run is ``run_id``; ``evaluated_before``: the registry had evaluated the run
    before the cycle started."""
    run = get_run(session, run_id)
    evaluated = is_evaluated(session, run.id)
    now = evaluated and not evaluated_before
    statuses: dict[str, int] = {status: count for status, count in session.execute(
        select(AlertOutbox.status, func.count()).where(AlertOutbox.run_id == run.id).group_by(AlertOutbox.status))}
    files = report_files(reports_dir(), run.as_of, run.id)
    return CycleOutcome(
        run={"id": run.id, "as_of": run.as_of.isoformat(), "status": run.status, "cases": run.n_cases,
             "pairs": run.n_pairs, "error": run.error},
        evaluated=evaluated,
        evaluated_now=now,
        changes=changes_of_run(session, run.id) if now else {},
        alerts={"queued": sum(statuses.values()) if now else 0,
                **{status: statuses.get(status, 0) for status in ("sent", "pending", "failed")}},
        report={"html": str(files.html), "pdf": str(files.pdf)} if files.html.exists() and files.pdf.exists()
        else None,
    )
