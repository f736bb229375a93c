"""Runs that recover (issue 14, point 7): a run whose process was killed, or whose lease expired, or whose broker
was down when it was sent, is computed again by the next request; `pv runs retry ID` for an operator."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from pv.analysis import runs as run_service
from pv.analysis.stages import execute_run
from pv.cli import main
from pv.errors import InputError, PvError
from pv.models.runs import utcnow
from pv.settings import get_settings
from tests.runs_data import fast_config, make_store
from workers.app import app, configure

AS_OF = dt.date(2024, 3, 31)


def _dead_owner() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return run_service.process_owner(child.pid)


@pytest.fixture
def store(session: Session, tmp_path: Path) -> Path:
    make_store(session)
    session.commit()
    return fast_config(tmp_path)


def _request(session: Session, config: Path, **kw):  # type: ignore[no-untyped-def]
    from pv.analysis.config import AnalysisConfig

    return run_service.request_run(session, AS_OF, AnalysisConfig.load(config), **kw)


def test_a_run_whose_process_is_gone_is_computed_again(session: Session, store: Path) -> None:
    run, should = _request(session, store, owner=_dead_owner())
    assert should
    run.status = "running"  # the process was killed while it computed the run
    session.commit()
    assert "is gone" in str(run_service.stale_reason(run))
    again, should = _request(session, store, owner=run_service.process_owner())
    assert should and again.id == run.id and again.status == "queued"
    (recovered,) = again.parameters["recovered"]
    assert recovered["status"] == "running" and "its process" in recovered["reason"]
    assert execute_run(session, run.id).status == "succeeded"


def test_a_run_whose_lease_expired_is_computed_again_and_a_live_one_is_not(session: Session, store: Path) -> None:
    run, _ = _request(session, store, owner=run_service.process_owner())
    session.commit()
    same, should = _request(session, store)
    assert (same.id, should) == (run.id, False)  # this process owns it and its lease holds
    run.owner = None
    run.lease_expires_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()
    again, should = _request(session, store)
    assert should and "lease expired" in again.parameters["recovered"][0]["reason"]


def test_retry_by_an_operator(session: Session, store: Path) -> None:
    run, _ = _request(session, store, owner=run_service.process_owner())
    run.status = "running"
    session.commit()
    with pytest.raises(InputError, match=rf"run {run.id} is running by .* and its lease holds until .*: it may "
                                         r"still be computed; use --force"):
        run_service.retry_run(session, run.id)
    run_service.retry_run(session, run.id, force=True)
    assert run.status == "queued"
    assert run.parameters["recovered"][-1]["reason"] == "retried by an operator (--force) while running"
    execute_run(session, run.id)
    with pytest.raises(InputError, match=rf"run {run.id} succeeded: its results never change"):
        run_service.retry_run(session, run.id)
    session.rollback()


def test_pv_runs_retry_computes_a_failed_run(pv_env: str, session: Session, store: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    configure(app)
    run, _ = _request(session, store)
    run_service.fail_run(session, run.id, "shard 0 failed: MemoryError")
    session.commit()
    main(["runs", "retry", str(run.id)])
    assert capsys.readouterr().out.strip() == f"run {run.id}: succeeded"
    session.expire_all()
    done = run_service.get_run(session, run.id)
    assert done.status == "succeeded" and done.parameters["recovered"][0]["reason"] == (
        "failed: shard 0 failed: MemoryError")


def test_a_run_the_broker_refused_fails_at_once_and_is_computed_by_the_next_request(
        pv_env: str, session: Session, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.tasks import submit_run

    monkeypatch.setenv("PV_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    configure(app)
    try:
        with pytest.raises(PvError, match=r"could not send the run to the workers: .*the next request computes"):
            submit_run(AS_OF, str(store))
        run = run_service.list_runs(session)[0]
        assert run.status == "failed" and "could not send the run to the workers" in str(run.error)
    finally:
        monkeypatch.delenv("PV_BROKER_URL")
        get_settings.cache_clear()
        configure(app)
    run_id, dispatched = submit_run(AS_OF, str(store))
    session.expire_all()
    assert (run_id, dispatched) == (run.id, True)
    assert run_service.get_run(session, run_id).status == "succeeded"
