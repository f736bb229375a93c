"""Celery task sending the pending alert emails (one digest per run and recipient), retried with exponential
backoff for retryable errors only.

The task is thin: one session, one :func:`pv.alerts.send_pending` pass, a small dict out. When some alerts
failed with a retryable error (connection refused, timeout, SMTP 4xx) it raises :class:`AlertsRetryLater`,
the only exception Celery retries automatically (backoff 30 s, 60 s, 120 s ... jittered, at most 30 min);
permanent failures (SMTP 5xx) are recorded on their outbox rows by the service and the task returns
normally. The service's attempt counter (``max_attempts``) bounds the retries of each alert, whoever runs
them (this task, the schedule, ``pv alerts send``); an alert still pending when Celery gives up is sent by the
next run.

Run eagerly (the embedded default, no broker) the task does not retry in process (an eager retry would
hammer the server with no delay): it returns with the alerts still pending, due again after the service's
own backoff.

``register(app)`` puts the task on a Celery app: workers/tasks.py registers it once on the shared app
(``workers.tasks.send_alerts``); tests register it on apps of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.exc import OperationalError

from pv import db
from pv.alerts.service import DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, send_pending
from pv.alerts.transport import transport_from_settings
from pv.errors import PvError
from pv.settings import get_settings

TASK_NAME = "pv.alerts.send_pending"


class AlertsRetryLater(PvError):
    """Some alerts failed with a retryable error and are still pending: the task retries with backoff."""


TASK_OPTIONS: dict[str, Any] = {
    "name": TASK_NAME,
    "autoretry_for": (AlertsRetryLater, OperationalError),  # OperationalError: the database went away
    "retry_backoff": 30,  # seconds before the first retry, doubled each time (jittered)
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": DEFAULT_MAX_ATTEMPTS,
}


def send_alerts(
    max_attempts: int = DEFAULT_MAX_ATTEMPTS, database_url: str | None = None, *, raise_retryable: bool = True
) -> dict[str, Any]:
    """Send every due pending alert once; a small summary dict out.

    ``raise_retryable``: raise AlertsRetryLater when some alerts must be tried again, and leave the spacing
    of attempts to Celery (no service-side backoff); otherwise return with them pending, due after the
    service's backoff.
    """
    settings = get_settings()
    backoff = dt.timedelta(0) if raise_retryable else DEFAULT_BACKOFF
    with db.session_scope(database_url or settings.database_url) as session:
        summary = send_pending(
            session, transport_from_settings(settings), max_attempts=max_attempts, backoff=backoff
        )
    if summary.retry_later and raise_retryable:
        first = "; ".join(summary.errors[:3])
        raise AlertsRetryLater(f"{summary.retry_later} alert(s) to retry ({first})")
    return summary.as_dict()


def register(app: Any, **overrides: Any) -> Any:
    """Register the task on a Celery app with the retry policy above (``overrides`` change it); return it."""

    def send_alerts_task(self: Any, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> dict[str, Any]:
        return send_alerts(max_attempts, raise_retryable=not self.request.is_eager)

    send_alerts_task.__doc__ = send_alerts.__doc__
    return app.task(bind=True, shared=False, **{**TASK_OPTIONS, **overrides})(send_alerts_task)

