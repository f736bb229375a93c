"""With a broker, a command that sent tasks ends cleanly (issue 14, point 12): no "Exception ignored in
AsyncResult.__del__" traceback at exit (the Redis result backend's subscriptions are closed before shutdown)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from tests.conftest import REPO

REDIS_URL = "redis://127.0.0.1:6379/13"


def test_pv_analyze_wait_with_a_broker_exits_without_a_traceback(tmp_path: Path) -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    queue = f"pv-test-{uuid.uuid4().hex[:8]}"  # no worker consumes it: the run stays queued
    env = {**os.environ, "PV_DATABASE_URL": f"sqlite:///{tmp_path / 'pv.sqlite3'}", "PV_VAR_DIR": str(tmp_path),
           "PV_BROKER_URL": REDIS_URL, "PV_TASK_QUEUE": queue}
    try:
        done = subprocess.run([sys.executable, "-m", "pv", "analyze", "--as-of", "2024-03-31", "--wait",
                               "--timeout", "1"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)
    assert done.returncode == 1
    assert done.stderr == "pv: error: run 1 still queued after 1 s\n"
