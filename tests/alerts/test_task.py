"""The Celery task (workers/alerts.py): retries retryable failures with backoff, returns on permanent ones.

Eagerly (the embedded default) and on a real worker consuming from the local Redis (db 13, a queue of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pv.alerts import queue_digests
from pv.alerts.routing import AlertRouting
from pv.models.alerts import AlertOutbox
from pv.settings import get_settings
from tests.alerts.conftest import SMTPServer, make_change
from workers.alerts import TASK_NAME, AlertsRetryLater, register

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def smtp_env(pv_env: str, monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPServer) -> SMTPServer:
    monkeypatch.setenv("PV_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("PV_SMTP_PORT", str(smtp_server.port))
    get_settings.cache_clear()
    return smtp_server


@pytest.fixture
def eager_task(smtp_env: SMTPServer):  # type: ignore[no-untyped-def]
    """The task on an eager Celery app, as in the embedded default."""
    app = Celery("pv-alerts-eager", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    return register(app)


def _queue(session: Session, routing: AlertRouting) -> None:
    queue_digests(session, [make_change()], routing=routing)  # 2 recipients: 2 digests
    session.commit()


def _rows(session: Session) -> list[AlertOutbox]:
    session.expire_all()
    return list(session.scalars(select(AlertOutbox).order_by(AlertOutbox.id)))


def test_task_options() -> None:
    t = register(Celery("x", set_as_current=False))
    assert t.name == TASK_NAME
    assert t.autoretry_for == (AlertsRetryLater, OperationalError)
    assert (t.retry_backoff, t.retry_backoff_max, t.retry_jitter, t.max_retries) == (30, 1800, True, 5)


def test_eager_task_sends_once(eager_task, session: Session, small_routing: AlertRouting,  # type: ignore[no-untyped-def]
                               smtp_env: SMTPServer) -> None:
    _queue(session, small_routing)
    result = eager_task.delay().get()
    assert (result["sent"], result["failed"], result["retry_later"]) == (2, 0, 0)
    assert len(smtp_env.handler.messages) == 2
    assert eager_task.delay().get()["attempted"] == 0


def test_eager_task_leaves_retryable_failures_pending_with_backoff(
    eager_task, session: Session, small_routing: AlertRouting, smtp_env: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    _queue(session, small_routing)
    smtp_env.handler.refuse = "421 4.7.0 Too many connections, slow down"
    result = eager_task.delay().get()  # no exception, no immediate in-process retry
    assert (result["retry_later"], result["failed"]) == (2, 0)
    assert smtp_env.handler.rcpt_attempts == 2
    rows = _rows(session)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 1)}
    assert all(r.next_attempt_at is not None and r.last_attempt_at is not None
               and (r.next_attempt_at - r.last_attempt_at).total_seconds() == 60 for r in rows)


def test_eager_task_does_not_retry_permanent_refusals(
    eager_task, session: Session, small_routing: AlertRouting, smtp_env: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    _queue(session, small_routing)
    smtp_env.handler.refuse = "550 5.1.1 No such user"
    assert eager_task.delay().get()["failed"] == 2
    assert smtp_env.handler.rcpt_attempts == 2
    assert {r.status for r in _rows(session)} == {"failed"}


@pytest.fixture
def worker_app(smtp_env: SMTPServer) -> Iterator[Celery]:
    """A Celery app on the local Redis (db 13) with a queue of its own, and a worker thread consuming it."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError as exc:  # the test needs the machine's Redis; say so loudly
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    app = Celery("pv-alerts-worker-test", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
    app.conf.update(task_default_queue=f"pv-alerts-test-{uuid.uuid4().hex[:8]}", result_expires=300,
                    broker_connection_retry_on_startup=True)
    app.pv_task = register(app, retry_backoff=1, retry_jitter=False, max_retries=3)  # type: ignore[attr-defined]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        yield app


def test_worker_retries_temporary_refusals_with_backoff_then_delivers(
    worker_app: Celery, session: Session, small_routing: AlertRouting, smtp_env: SMTPServer
) -> None:
    _queue(session, small_routing)
    smtp_env.handler.refuse = "451 4.3.0 Try again later"
    smtp_env.handler.refuse_first = 4  # two passes refused (2 recipients each), the third accepted
    result = worker_app.pv_task.delay().get(timeout=60)  # type: ignore[attr-defined]
    assert (result["sent"], result["failed"]) == (2, 0)
    assert smtp_env.handler.rcpt_attempts == 6 and len(smtp_env.handler.messages) == 2
    rows = _rows(session)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 3)}
    # backoff 1 s then 2 s between the attempts
    assert all(r.sent_at is not None and (r.sent_at - r.created_at).total_seconds() >= 3 for r in rows)


def test_worker_gives_up_after_max_retries_without_losing_the_alerts(
    worker_app: Celery, session: Session, small_routing: AlertRouting, smtp_env: SMTPServer
) -> None:
    _queue(session, small_routing)
    smtp_env.handler.refuse = "451 4.3.0 Try again later"
    async_result = worker_app.pv_task.delay(max_attempts=10)  # type: ignore[attr-defined]
    with pytest.raises(AlertsRetryLater, match="2 alert\\(s\\) to retry"):
        async_result.get(timeout=60)
    rows = _rows(session)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 4)}  # first run + 3 retries, still queued
    smtp_env.handler.refuse = None
    assert worker_app.pv_task.delay(max_attempts=10).get(timeout=60)["sent"] == 2  # type: ignore[attr-defined]


def test_task_on_the_shared_app_in_the_embedded_default(
    session: Session, small_routing: AlertRouting, pv_env: str
) -> None:
    """The shared app has the task (workers.tasks); without a broker it runs in process and writes .eml files."""
    from workers.app import app
    from workers.tasks import send_alerts as send_alerts_task

    shared = app.tasks[TASK_NAME]
    assert shared.autoretry_for == (AlertsRetryLater, OperationalError) and shared.max_retries == 5
    assert app.conf.task_always_eager
    _queue(session, small_routing)
    result = send_alerts_task.delay().get()
    assert (result["sent"], result["transport"]) == (2, f".eml files in {get_settings().var_dir / 'outbox'}")
    assert len(list((get_settings().var_dir / "outbox").glob("*.eml"))) == 2
