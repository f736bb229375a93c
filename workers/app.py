"""The Celery app of pv, configured from pv settings.

- ``PV_BROKER_URL`` (redis://...) set: tasks go through Redis to ``pv worker`` processes; results are kept in
  ``PV_RESULT_BACKEND`` (default: the broker). Tasks are sent to the ``PV_TASK_QUEUE`` queue.
- Unset (the embedded default): ``task_always_eager``, every task runs in the calling process, so the demo and
  the CLI need no server.

Reliability choices (docs/operations.md, "Workers"):
- ``acks_late`` only on idempotent tasks (the run stages, which replace what an interrupted attempt left):
  a message is acknowledged after the task ends, so a worker killed mid-task has it redelivered. Other tasks
  are acknowledged on receipt.
- ``worker_prefetch_multiplier = 1``: a worker reserves one message per process; long tasks do not hold
  queued work hostage behind them.
- Redis ``visibility_timeout`` (PV_VISIBILITY_TIMEOUT, default 2 h) above the longest task: an unacknowledged
  message is redelivered only after it, so a long task is never run twice concurrently by mistake.
- Retries with exponential backoff only for retryable errors (database OperationalError: connection lost,
  server restarting, lock timeouts); every other error fails the task, and a run stage then marks its run failed.
- ``worker_process_init`` disposes pooled database connections inherited from the parent process.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_process_init

from pv.config import load_yaml
from pv.db import dispose_engines
from pv.errors import ConfigError
from pv.settings import Settings, get_settings

app = Celery("pv", include=["workers.tasks"])


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """The beat schedule from config/schedule.yaml (weekly cycle: day of week, hour and minute, UTC)."""
    path = settings.config_dir / "schedule.yaml"
    if not path.exists():
        return {}
    data = load_yaml(path) or {}
    weekly = data.get("weekly_cycle") or {}
    if not isinstance(weekly, dict):
        raise ConfigError(f"{path}: weekly_cycle must be a mapping")
    if not weekly.get("enabled", True):
        return {}
    try:
        schedule = crontab(
            minute=str(weekly.get("minute", 0)),
            hour=str(weekly.get("hour", 6)),
            day_of_week=str(weekly.get("day_of_week", "mon")),
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: weekly_cycle: {exc}") from exc
    return {"weekly-cycle": {"task": "pv.weekly_cycle", "schedule": schedule}}


def configure(celery_app: Celery, settings: Settings | None = None) -> Celery:
    """(Re)configure ``celery_app`` from ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_default_queue": settings.task_queue,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 50,  # return the memory of large count tables to the system
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.var_dir / "celerybeat-schedule"),
    }
    if settings.is_embedded:
        conf.update(
            broker_url="memory://",
            result_backend="cache+memory://",
            task_always_eager=True,
            # a failing task records its failure (on_failure marks its run failed) and stops its chain,
            # as on a worker; callers read the run's status
            task_eager_propagates=False,
            task_store_eager_result=False,
        )
    else:
        transport = {
            "visibility_timeout": settings.visibility_timeout,
            # sweep for messages of dead workers every quarter of the visibility timeout (at most every minute)
            "unacked_restore_interval": max(1, min(60, settings.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        }
        conf.update(
            broker_url=settings.broker_url,
            result_backend=settings.result_backend or settings.broker_url,
            broker_transport_options=transport,
            result_backend_transport_options=transport,
            task_always_eager=False,
        )
    celery_app.conf.update(conf)
    # drop what the app cached from an earlier configuration (queues and router, producer pool, result backend)
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)
    celery_app._local = threading.local()
    return celery_app


configure(app)


@worker_process_init.connect
def _dispose_inherited_connections(**_: Any) -> None:
    """A forked worker process must not share the parent's pooled database connections."""
    dispose_engines()
