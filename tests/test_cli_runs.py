"""``pv analyze``, ``pv runs``, ``pv reanalyze`` on the embedded default (tasks in process) and with Redis."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from pv.cli import main
from pv.settings import get_settings
from tests.conftest import REPO
from tests.runs_data import fast_config, make_store
from workers.app import app, configure


def _pv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def embedded(pv_env: str):  # type: ignore[no-untyped-def]
    configure(app)
    assert app.conf.task_always_eager
    yield pv_env


def test_analyze_list_show_embedded(
    embedded: str, session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(session)
    session.commit()
    fast = str(fast_config(tmp_path))
    code, out, err = _pv(capsys, "analyze", "--as-of", "2024-03-31", "--config", fast)
    assert code == 0, err
    run_id = int(out.strip())
    code, again, _ = _pv(capsys, "analyze", "--as-of", "2024-03-31", "--wait", "--config", fast)
    assert code == 0 and int(again.strip()) == run_id  # the same run is not computed twice
    code, out, _ = _pv(capsys, "runs", "list", "--format", "json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [run_id]
    row = rows[0]
    assert row["status"] == "succeeded" and row["as_of"] == "2024-03-31"
    assert row["pairs"] > 0 and len(row["config_hash"]) == 64
    assert row["started_at"] <= row["finished_at"]
    code, out, _ = _pv(capsys, "runs", "show", str(run_id), "--format", "json")
    shown = json.loads(out)
    assert {k: shown[k] for k in ("id", "status", "as_of", "pairs", "config_hash")} == {
        k: row[k] for k in ("id", "status", "as_of", "pairs", "config_hash")
    }
    # each table has its prior, or the reason it has none (the hand-made store's PT table is too small and
    # homogeneous: its fit ends on the edge of the parameter space)
    not_fitted = shown["parameters"]["mgps_not_fitted"]
    assert set(shown["hyperparameters"]) | set(not_fitted) == {"pt:crude", "group:crude"}  # no strata here
    assert all(set(h) == {"alpha1", "beta1", "alpha2", "beta2", "p"} for h in shown["hyperparameters"].values())
    assert "degenerate" in not_fitted["pt:crude"]
    code, out, _ = _pv(capsys, "runs", "list")
    assert code == 0 and "succeeded" in out and "2024-03-31" in out


def test_analyze_with_another_configuration_is_another_run(
    embedded: str, session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(session)
    session.commit()
    fast = fast_config(tmp_path)
    cfg = tmp_path / "analysis.yaml"
    cfg.write_text(fast.read_text().replace("roles: [PS, SS]", "roles: [PS]"))
    _, first, _ = _pv(capsys, "analyze", "--as-of", "2024-06-30", "--config", str(fast))
    code, second, err = _pv(capsys, "analyze", "--as-of", "2024-06-30", "--config", str(cfg))
    assert code == 0, err
    assert int(first) != int(second)
    _, out, _ = _pv(capsys, "runs", "show", second.strip(), "--format", "json")
    assert json.loads(out)["status"] == "succeeded"


def test_reanalyze_every_quarter(
    embedded: str, session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(session)
    session.commit()
    fast = str(fast_config(tmp_path))
    code, out, err = _pv(capsys, "reanalyze", "--from", "2023-06-01", "--to", "2023-12-31", "--every", "quarter",
                         "--config", fast)
    assert code == 0, err
    ids = [int(x) for x in out.split()]
    assert len(ids) == 3
    _, out, _ = _pv(capsys, "runs", "list", "--format", "json")
    runs = {r["id"]: r for r in json.loads(out)}
    assert [runs[i]["as_of"] for i in ids] == ["2023-06-30", "2023-09-30", "2023-12-31"]
    assert all(runs[i]["status"] == "succeeded" for i in ids)
    # replaying the same series computes nothing new
    _, again, _ = _pv(capsys, "reanalyze", "--from", "2023-06-01", "--to", "2023-12-31", "--config", fast)
    assert [int(x) for x in again.split()] == ids


def test_cli_errors_are_clear(embedded: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _pv(capsys, "analyze", "--as-of", "2024-13-01")
    assert code == 1 and "not a date" in err and "--as-of" in err
    code, _, err = _pv(capsys, "runs", "show", "999")
    assert code == 1 and "run 999 does not exist" in err
    code, _, err = _pv(capsys, "analyze", "--config", "/nonexistent/analysis.yaml")
    assert code == 1 and "configuration file not found" in err
    code, _, err = _pv(capsys, "worker")
    assert code == 1 and "no broker configured" in err


def test_failed_run_is_reported_and_exit_status_1(
    embedded: str, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pv.analysis import stages

    make_store(session)
    session.commit()

    def broken(*_a, **_k):  # type: ignore[no-untyped-def]
        raise ValueError("the prior exploded")

    monkeypatch.setattr(stages, "fit_prior", broken)
    code, out, err = _pv(capsys, "analyze", "--as-of", "2024-06-30", "--config", str(fast_config(tmp_path)))
    assert code == 1
    assert "failed: MGPS fit failed: ValueError: the prior exploded" in err
    _, out, _ = _pv(capsys, "runs", "list", "--format", "json")
    (row,) = json.loads(out)
    assert row["status"] == "failed" and row["error"] == "MGPS fit failed: ValueError: the prior exploded"


def test_pv_analyze_with_redis_and_a_worker(pv_env: str, session: Session, tmp_path: Path) -> None:
    """The real command line against Redis: ``pv worker`` in the background, ``pv analyze --wait``."""
    make_store(session)
    session.commit()
    env = {**os.environ, "PV_BROKER_URL": "redis://127.0.0.1:6379/13",
           "PV_TASK_QUEUE": f"pv-cli-{os.getpid()}-{dt.datetime.now().microsecond}"}
    pv = [sys.executable, "-c", "from pv.cli import main; main()"]
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([*pv, "worker", "--concurrency", "1"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        done = subprocess.run([*pv, "analyze", "--as-of", "2024-06-30", "--wait", "--timeout", "180", "--config",
                               str(fast_config(tmp_path))], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        run_id = int(done.stdout.strip())
        shown = subprocess.run([*pv, "runs", "show", str(run_id), "--format", "json"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        assert json.loads(shown.stdout)["status"] == "succeeded"
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        log.close()
    get_settings.cache_clear()
