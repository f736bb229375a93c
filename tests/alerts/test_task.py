"""The Celery task (workers/alerts.py): retries retryable failures with backoff, returns on permanent ones."""

from __future__ import annotations

import pytest
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.alerts import queue_alerts
from pv.alerts.routing import AlertRouting
from pv.models.alerts import AlertOutbox
from pv.settings import get_settings
from tests.alerts.conftest import SMTPServer, make_change
from workers.alerts import TASK_NAME, AlertsRetryLater, register


@pytest.fixture
def task(pv_env: str, monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPServer):  # type: ignore[no-untyped-def]
    """The task on an eager Celery app (as in the embedded default), SMTP pointing at the test server."""
    app = Celery("pv-alerts-test", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    monkeypatch.setenv("PV_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("PV_SMTP_PORT", str(smtp_server.port))
    get_settings.cache_clear()
    return register(app)


def _queue(session: Session, routing: AlertRouting) -> None:
    queue_alerts(session, [make_change()], routing=routing)
    session.commit()


def test_task_options() -> None:
    app = Celery("x")
    t = register(app)
    assert t.name == TASK_NAME
    assert t.autoretry_for == (AlertsRetryLater,)
    assert t.retry_backoff == 30 and t.retry_jitter is True and t.max_retries == 5


def test_task_sends(task, session: Session, small_routing: AlertRouting, smtp_server: SMTPServer) -> None:  # type: ignore[no-untyped-def]
    _queue(session, small_routing)
    result = task.apply().get()
    assert (result["sent"], result["failed"], result["retry_later"]) == (2, 0, 0)
    assert len(smtp_server.handler.messages) == 2
    assert task.apply().get()["attempted"] == 0


def test_task_retries_temporary_refusals_until_the_attempts_run_out(
    task, session: Session, small_routing: AlertRouting, smtp_server: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    _queue(session, small_routing)
    smtp_server.handler.refuse = "421 4.7.0 Too many connections, slow down"
    result = task.apply(kwargs={"max_attempts": 3})
    # three runs (the first and two Celery retries); the third records the rows as failed and returns
    assert result.successful(), result.traceback
    assert (result.get()["failed"], result.get()["retry_later"]) == (2, 0)
    assert smtp_server.handler.rcpt_attempts == 6
    rows = session.scalars(select(AlertOutbox)).all()
    assert {(r.status, r.attempts) for r in rows} == {("failed", 3)}


def test_task_gives_up_without_losing_the_alerts_when_celery_retries_run_out(
    task, session: Session, small_routing: AlertRouting, smtp_server: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    _queue(session, small_routing)
    smtp_server.handler.refuse = "451 4.3.0 Try again later"
    task.max_retries = 1
    result = task.apply(kwargs={"max_attempts": 5})
    assert result.failed() and isinstance(result.result, AlertsRetryLater)
    assert "2 alert(s) to retry" in str(result.result)
    rows = session.scalars(select(AlertOutbox)).all()
    assert {(r.status, r.attempts) for r in rows} == {("pending", 2)}  # still queued for the next run
    smtp_server.handler.refuse = None
    assert task.apply().get()["sent"] == 2


def test_task_does_not_retry_permanent_refusals(
    task, session: Session, small_routing: AlertRouting, smtp_server: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    _queue(session, small_routing)
    smtp_server.handler.refuse = "550 5.1.1 No such user"
    result = task.apply()
    assert result.successful() and result.get()["failed"] == 2
    assert smtp_server.handler.rcpt_attempts == 2
