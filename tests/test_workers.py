"""Analysis runs on a real Celery worker process, through the machine's Redis, on the test PostgreSQL database.

Each test uses its own queue on Redis database 13 (never db 0, never flushed), and starts workers with
``celery -A workers.app worker`` (or ``tests.faulty_worker`` for fault injection) as subprocesses.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.analysis import runs as service
from pv.analysis import stages
from pv.analysis.config import AnalysisConfig
from pv.analysis.results import results_frame
from pv.models import Run, RunCount, RunResult
from pv.settings import get_settings
from tests.conftest import REPO
from tests.runs_data import fast_config, make_store
from workers.app import app, configure

REDIS_URL = "redis://127.0.0.1:6379/13"
AS_OF = dt.date(2024, 6, 30)
CONFIG_DIR = REPO / "config"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, pg_url: str, pg_engine, tmp_path: Path) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Environment of a Redis-backed deployment with a queue of its own; the app is reconfigured for it."""
    redis.Redis.from_url(REDIS_URL).ping()
    env = {
        "PV_DATABASE_URL": pg_url,
        "PV_BROKER_URL": REDIS_URL,
        "PV_TASK_QUEUE": f"pv-test-{uuid.uuid4().hex[:8]}",
        "PV_VISIBILITY_TIMEOUT": "4",
        "PV_CONFIG_DIR": str(CONFIG_DIR),
        "PV_VAR_DIR": str(tmp_path / "var"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    configure(app)
    yield env
    for k in env:
        monkeypatch.delenv(k)
    get_settings.cache_clear()
    configure(app)


class Worker:
    def __init__(self, env: dict[str, str], module: str = "workers.app", fault: str | None = None,
                 log: Path | None = None) -> None:
        full = {**os.environ, **env}
        if fault:
            full["PV_TEST_FAULT"] = fault
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", module, "worker", "-Q", env["PV_TASK_QUEUE"], "-c", "1",
             "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: nothing is acknowledged or cleaned up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers(broker: dict[str, str], tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def _start(workers: list[Worker], env: dict[str, str], tmp_path: Path, **kw: str) -> Worker:
    w = Worker(env, log=tmp_path / f"worker{len(workers)}.log", **kw)
    workers.append(w)
    return w


def _wait_status(session: Session, run_id: int, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        run = session.get(Run, run_id)
        assert run is not None
        if run.status in ("succeeded", "failed"):
            session.commit()
            return run
        session.commit()
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {run.status} after {timeout} s")


def _in_process(session: Session, config: Path | None = None) -> pd.DataFrame:
    """The same analysis computed in this process (a different shard count, hence a distinct run)."""
    cfg = AnalysisConfig.load(config or CONFIG_DIR / "analysis.yaml").model_copy(update={"shards": 1})
    run, _ = service.request_run(session, AS_OF, cfg, config_dir=CONFIG_DIR)
    stages.execute_run(session, run.id)
    session.commit()
    return results_frame(session, run.id)


def _store(session: Session) -> None:
    make_store(session)
    session.commit()


def test_run_on_a_worker_equals_in_process_and_is_computed_once(
    session: Session, broker: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    from workers.tasks import submit_run

    _store(session)
    _start(workers, broker, tmp_path)
    run_id, dispatched = submit_run(AS_OF)
    again, dispatched_again = submit_run(AS_OF)  # requested twice while queued or running
    assert dispatched and not dispatched_again and again == run_id
    run = _wait_status(session, run_id)
    assert run.status == "succeeded", run.error
    on_worker = results_frame(session, run_id)
    assert len(on_worker) == run.n_pairs + int(on_worker.stratified.sum())
    assert not on_worker.duplicated(["level", "stratified", "product", "event"]).any()
    pd.testing.assert_frame_equal(on_worker, _in_process(session))
    started = run.started_at
    third, dispatched_third = submit_run(AS_OF)  # after it succeeded: found, not recomputed
    assert third == run_id and not dispatched_third
    session.expire_all()
    assert session.get(Run, run_id).started_at == started  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(Run).where(Run.as_of == AS_OF)) == 2


def test_failing_shard_fails_the_run_with_a_clear_message(
    session: Session, broker: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    from workers.tasks import submit_run

    _store(session)
    _start(workers, broker, tmp_path, module="tests.faulty_worker", fault="fail-shard:1")
    fast = str(fast_config(tmp_path))
    run_id, _ = submit_run(AS_OF, fast)
    run = _wait_status(session, run_id)
    assert run.status == "failed"
    assert run.error == "shard 1 failed: RuntimeError: injected failure in shard 1"
    assert run.finished_at is not None
    # no partial results are left behind, and finalisation never ran
    assert session.scalar(select(func.count()).select_from(RunResult).where(RunResult.run_id == run_id)) == 0
    # requesting it again recomputes it (here on a healthy worker)
    workers[0].stop()
    _start(workers, broker, tmp_path)
    again, dispatched = submit_run(AS_OF, fast)
    assert again == run_id and dispatched
    assert _wait_status(session, run_id).status == "succeeded"


def test_worker_killed_mid_run_and_restarted_leaves_one_complete_run(
    session: Session, broker: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    from workers.tasks import submit_run

    _store(session)
    first = _start(workers, broker, tmp_path, module="tests.faulty_worker", fault="slow-shard:1.5")
    fast = fast_config(tmp_path)
    run_id, _ = submit_run(AS_OF, str(fast))
    # wait until some shards are written and others are not, then SIGKILL the worker
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        written = session.scalar(
            select(func.count(func.distinct(RunResult.shard))).where(RunResult.run_id == run_id)
        )
        session.commit()
        if written and written >= 1:
            break
        time.sleep(0.1)
    assert written and written < 4
    first.kill()
    run = session.get(Run, run_id)
    assert run is not None and run.status == "running"
    session.commit()
    # a new worker picks up the unacknowledged shard (visibility timeout 4 s) and the run completes
    _start(workers, broker, tmp_path)
    run = _wait_status(session, run_id, timeout=150)
    assert run.status == "succeeded", run.error
    results = results_frame(session, run_id)
    assert not results.duplicated(["level", "stratified", "product", "event"]).any()
    assert session.scalar(select(func.count()).select_from(RunCount).where(RunCount.run_id == run_id)) == 0
    pd.testing.assert_frame_equal(results, _in_process(session, fast))
