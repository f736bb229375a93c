"""Celery app for fault-injection tests: the real app, with one run stage altered by ``PV_TEST_FAULT``.

- ``fail-shard:K``: shard K raises RuntimeError("injected failure in shard K").
- ``slow-shard:S``: every shard sleeps S seconds before its work (so that a worker can be killed mid-run).

Started by tests/test_workers.py as ``celery -A tests.faulty_worker worker``; never used outside tests.
"""

from __future__ import annotations

import os
import time

from pv.analysis import stages
from workers.app import app

__all__ = ["app"]

_fault = os.environ.get("PV_TEST_FAULT", "")
_original = stages.compute_shard

if _fault.startswith("fail-shard:"):
    _bad = int(_fault.split(":", 1)[1])

    def _failing(session, run_id, shard):  # type: ignore[no-untyped-def]
        if shard == _bad:
            raise RuntimeError(f"injected failure in shard {shard}")
        return _original(session, run_id, shard)

    stages.compute_shard = _failing

elif _fault.startswith("slow-shard:"):
    _delay = float(_fault.split(":", 1)[1])

    def _slow(session, run_id, shard):  # type: ignore[no-untyped-def]
        time.sleep(_delay)
        return _original(session, run_id, shard)

    stages.compute_shard = _slow
