"""The Celery app's configuration: embedded versus Redis, reliability settings, the beat schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab

from pv.errors import ConfigError
from pv.settings import Settings
from workers.app import beat_schedule, configure


def test_embedded_and_redis_configurations(tmp_path: Path) -> None:
    app = configure(Celery("t1"), Settings(config_dir=Path("config"), var_dir=tmp_path))
    assert app.conf.task_always_eager and app.conf.broker_url == "memory://"
    app = configure(Celery("t2"), Settings(broker_url="redis://127.0.0.1:6379/13", config_dir=Path("config"),
                                           var_dir=tmp_path, task_queue="q1", visibility_timeout=900))
    assert not app.conf.task_always_eager
    assert app.conf.result_backend == "redis://127.0.0.1:6379/13"  # defaults to the broker
    assert app.conf.broker_transport_options["visibility_timeout"] == 900
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_default_queue == "q1"
    assert app.conf.accept_content == ["json"]


def test_stage_tasks_are_late_acknowledged_and_retry_only_operational_errors() -> None:
    from sqlalchemy.exc import OperationalError

    from workers import tasks

    for task in (tasks.build_counts, tasks.fit_prior, tasks.compute_shard, tasks.finalise, tasks.ingest_file):
        assert task.acks_late and task.reject_on_worker_lost
        assert task.autoretry_for == (OperationalError,)
    for task in (tasks.weekly_cycle, tasks.reanalyze, tasks.analyze):
        assert not task.acks_late


def test_beat_schedule_from_config(tmp_path: Path) -> None:
    (tmp_path / "schedule.yaml").write_text("weekly_cycle: {day_of_week: wed, hour: 5, minute: 30}\n")
    entry = beat_schedule(Settings(config_dir=tmp_path))["weekly-cycle"]
    assert entry["task"] == "pv.weekly_cycle"
    assert entry["schedule"] == crontab(minute="30", hour="5", day_of_week="wed")
    (tmp_path / "schedule.yaml").write_text("weekly_cycle: {enabled: false}\n")
    assert beat_schedule(Settings(config_dir=tmp_path)) == {}
    (tmp_path / "schedule.yaml").write_text("weekly_cycle: {hour: 27}\n")
    with pytest.raises(ConfigError, match="schedule.yaml: weekly_cycle"):
        beat_schedule(Settings(config_dir=tmp_path))
    # the shipped schedule: Mondays 06:00 UTC
    shipped = beat_schedule(Settings(config_dir=Path(__file__).resolve().parents[1] / "config"))
    assert shipped["weekly-cycle"]["schedule"] == crontab(minute="0", hour="6", day_of_week="mon")


def test_reanalyze_series_of_a_backwards_range_is_empty() -> None:
    from workers import tasks

    assert tasks.reanalyze.run("2024-01-01", "2023-01-01") == {"run_ids": [], "dispatched": 0}
