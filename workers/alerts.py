"""Celery task sending the pending alert emails, retried with exponential backoff for retryable errors only.

The task is thin: one session, one :func:`pv.alerts.send_pending` pass, a small dict out. When some alerts
failed with a retryable error (connection refused, timeout, SMTP 4xx) it raises :class:`AlertsRetryLater`,
the only exception Celery retries automatically, with backoff; permanent failures (SMTP 5xx) are recorded
on their outbox rows by the service and the task returns normally. The service's own attempt counter
(``max_attempts``) ends the retries even if the task is also started by the schedule meanwhile.

Registration on the shared app: ``send_alerts_task = register(app)`` (see the bottom of workers/tasks.py or
of this module once ``workers.app`` exists).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pv import db
from pv.alerts.service import DEFAULT_MAX_ATTEMPTS, send_pending
from pv.alerts.transport import transport_from_settings
from pv.errors import PvError
from pv.settings import get_settings

TASK_NAME = "pv.alerts.send_pending"


class AlertsRetryLater(PvError):
    """Some alerts failed with a retryable error and are still pending: the task retries with backoff."""


TASK_OPTIONS: dict[str, Any] = {
    "name": TASK_NAME,
    "autoretry_for": (AlertsRetryLater,),
    "retry_backoff": 30,  # 30 s, 60 s, 120 s ... (jittered), at most retry_backoff_max
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": DEFAULT_MAX_ATTEMPTS,
}


def send_alerts(max_attempts: int = DEFAULT_MAX_ATTEMPTS, database_url: str | None = None) -> dict[str, Any]:
    """Send every pending alert once; raise AlertsRetryLater if some must be tried again.

    The service's own backoff is zero here: Celery's retry countdown spaces the attempts.
    """
    settings = get_settings()
    with db.session_scope(database_url or settings.database_url) as session:
        summary = send_pending(
            session, transport_from_settings(settings), max_attempts=max_attempts, backoff=dt.timedelta(0)
        )
    if summary.retry_later:
        first = "; ".join(summary.errors[:3])
        raise AlertsRetryLater(f"{summary.retry_later} alert(s) to retry ({first})")
    return summary.as_dict()


def register(app: Any) -> Any:
    """Register :func:`send_alerts` on a Celery app with the retry policy above; return the task."""
    return app.task(**TASK_OPTIONS)(send_alerts)
