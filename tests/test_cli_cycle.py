"""``pv cycle``: the weekly cycle from the command line, on the real FAERS sample.

Embedded (no broker) on a SQLite store in the var dir, as ``make demo`` runs; and once through a real Celery
worker on Redis and the PostgreSQL test database. The detection rules judge every product (``detection.products:
all``) and open a finding at its first run (``opening.persistence: 1``) so that the real quarter, which holds no
CAR-T report, opens signals and sends alerts (with the shipped persistence of 2 one quarter only tracks them).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv import db
from pv.analysis import stages
from pv.models import Case, Run
from pv.models.alerts import AlertOutbox
from pv.models.signals import Signal, SignalAudit, SignalRuleSnapshot
from pv.settings import get_settings
from tests.conftest import REAL_DATA, REPO
from tests.signals.test_cli import run as cli
from tests.test_workers import Worker
from workers.app import app, configure

SAMPLE = REAL_DATA / "faers_ascii_2017q2.zip"
REDIS_URL = "redis://127.0.0.1:6379/13"


def _config(tmp_path: Path) -> Path:
    """The shipped configuration, with signals judged for every product and opened at their first run."""
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    rules = yaml.safe_load((config / "signals.yaml").read_text())
    rules["detection"]["products"] = "all"
    rules["opening"]["persistence"] = 1
    (config / "signals.yaml").write_text(yaml.safe_dump(rules))
    return config


@pytest.fixture
def embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The embedded default: no broker, the SQLite store in the var dir."""
    var = tmp_path / "var"
    var.mkdir()
    url = f"sqlite:///{var / 'pv.sqlite3'}"
    monkeypatch.setenv("PV_DATABASE_URL", url)
    monkeypatch.setenv("PV_VAR_DIR", str(var))
    monkeypatch.setenv("PV_CONFIG_DIR", str(_config(tmp_path)))
    monkeypatch.delenv("PV_BROKER_URL", raising=False)
    get_settings.cache_clear()
    configure(app)
    assert app.conf.task_always_eager
    yield url
    get_settings.cache_clear()
    db.dispose_engines()


def _store(url: str) -> Session:
    return Session(db.get_engine(url), expire_on_commit=False)


def _count(session: Session, model: type, *where) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _check_first_cycle(result: dict, session: Session, var: Path, incoming: Path) -> int:
    """What the first cycle of the sample reports agrees with the store, the outbox and the files."""
    assert [Path(f["file"]).name for f in result["ingested"]] == ["broken.zip", "faers_ascii_2017q2.zip"]
    broken, faers = result["ingested"]
    assert "error" in broken and (incoming / "failed" / "broken.zip").exists()
    assert (faers["kind"], faers["quarter"], faers["cases_added"]) == ("faers", "2017Q2", 100)
    assert result["cases_added"] == 100 and (incoming / "done" / SAMPLE.name).exists()
    assert _count(session, Case) == 100

    run = session.execute(select(Run)).scalar_one()
    assert result["run"] == {"id": run.id, "as_of": "2017-06-30", "status": "succeeded", "cases": run.n_cases,
                             "pairs": run.n_pairs, "error": None, "computed_now": True}
    assert run.n_cases == 100 and run.n_pairs and run.n_pairs > 100
    # the registry's changes: every signal was created and opened by this run (persistence 1, every case new, no
    # label known for these products), and nothing else happened to them
    signals = _count(session, Signal)
    assert signals > 0 and (result["evaluated"], result["evaluated_now"]) == (True, True)
    audit = Counter(session.scalars(select(SignalAudit.action).where(SignalAudit.run_id == run.id)))
    assert result["changes"] == dict(audit) == {"created": signals, "opened": signals}
    # one digest per recipient of the cycle (the catch-all route at least), each sent as an .eml file
    rows = session.execute(select(AlertOutbox.change_key, AlertOutbox.recipient)
                           .where(AlertOutbox.run_id == run.id)).all()
    queued = len(rows)
    assert queued >= 1 and {key for key, _ in rows} == {f"digest:{run.id}"}
    assert "safety-officers@example.org" in {r for _, r in rows} and len({r for _, r in rows}) == queued
    assert result["alerts"] == {"queued": queued, "sent": queued, "pending": 0, "failed": 0}
    assert len(list((var / "outbox").glob("*.eml"))) == queued
    report = var / "reports" / f"weekly-report-2017-06-30-run{run.id}.html"
    assert result["report"] == {"html": str(report), "pdf": str(report.with_suffix(".pdf"))}
    assert report.exists() and report.with_suffix(".pdf").stat().st_size > 1000
    return run.id


def _drop_sample(incoming: Path) -> None:
    incoming.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE, incoming / SAMPLE.name)
    (incoming / "broken.zip").write_bytes(b"this is not a zip")


def test_cycle_ingests_runs_evaluates_reports_and_alerts_once_per_date(  # type: ignore[no-untyped-def]
    embedded_sqlite: str, tmp_path: Path, capsys
) -> None:
    var = tmp_path / "var"
    incoming = tmp_path / "incoming"
    _drop_sample(incoming)
    code, out, err = cli(capsys, "cycle", "--as-of", "2017-06-30", "--drop", str(incoming), "--format", "json")
    assert code == 0, err
    with _store(embedded_sqlite) as session:
        run_id = _check_first_cycle(json.loads(out), session, var, incoming)
        signals, alerts = _count(session, Signal), _count(session, AlertOutbox)

    # the same date again (default drop folder, empty): the same run, not evaluated twice, no alert again
    code, out, err = cli(capsys, "cycle", "--as-of", "2017-06-30")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"drop folder {var / 'drop'}: 0 file(s), 0 cases added"
    assert lines[1].startswith(f"run {run_id} as of 2017-06-30: succeeded (computed before), 100 cases, ")
    assert lines[2] == f"signal registry: run {run_id} was evaluated before; nothing new"
    assert lines[3] == f"alerts: 0 queued; the run's alerts: {alerts} sent, 0 pending, 0 failed"
    assert lines[4] == f"report: {var / 'reports' / f'weekly-report-2017-06-30-run{run_id}.html'} and .pdf"
    with _store(embedded_sqlite) as session:
        assert (_count(session, Run), _count(session, SignalRuleSnapshot)) == (1, 1)
        assert (_count(session, Signal), _count(session, AlertOutbox)) == (signals, alerts)

    # an earlier date is refused before anything is done: the file waiting in the drop folder stays there
    (var / "drop").mkdir()
    shutil.copy(SAMPLE, var / "drop" / "faers_again.zip")
    code, out, err = cli(capsys, "cycle", "--as-of", "2017-03-31")
    assert code == 1 and out == ""
    assert err.startswith("pv: error: as-of 2017-03-31 is before the last run the signal registry evaluated "
                          "(2017-06-30): runs are evaluated in as-of order")
    assert (var / "drop" / "faers_again.zip").exists() and not (var / "drop" / "done").exists()
    with _store(embedded_sqlite) as session:
        assert _count(session, Run) == 1

    code, _, err = cli(capsys, "cycle", "--drop", str(tmp_path / "nowhere"))
    assert code == 1 and "drop folder not found" in err

    # a run computed by pv analyze is evaluated, reported and alerted by the cycle of its date
    code, out, err = cli(capsys, "analyze", "--as-of", "2017-09-30")
    assert code == 0, err
    later = int(out.strip())
    code, out, err = cli(capsys, "cycle", "--as-of", "2017-09-30", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert [(Path(f["file"]).name, f["skipped_duplicate_file"]) for f in result["ingested"]] == [
        ("faers_again.zip", True)]  # the same quarter under another name: loaded once
    assert (result["run"]["id"], result["run"]["computed_now"], result["evaluated_now"]) == (later, False, True)
    assert result["report"]["html"].endswith(f"weekly-report-2017-09-30-run{later}.html")
    with _store(embedded_sqlite) as session:
        assert _count(session, SignalRuleSnapshot, SignalRuleSnapshot.run_id == later) == 1
        assert result["changes"] == dict(Counter(session.scalars(
            select(SignalAudit.action).where(SignalAudit.run_id == later))))


def test_cycle_exits_1_with_the_reason_when_the_run_fails(  # type: ignore[no-untyped-def]
    embedded_sqlite: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = stages.compute_shard

    def failing_shard(session, run_id, shard):  # type: ignore[no-untyped-def]
        if shard == 2:
            raise RuntimeError("disk full while writing shard 2")
        return original(session, run_id, shard)

    monkeypatch.setattr(stages, "compute_shard", failing_shard)
    _drop_sample(tmp_path / "var" / "drop")
    code, out, err = cli(capsys, "cycle", "--as-of", "2017-06-30", "--format", "json")
    assert code == 1
    result = json.loads(out)
    assert result["cases_added"] == 100 and result["run"]["status"] == "failed"
    assert (result["evaluated"], result["changes"], result["report"]) == (False, {}, None)
    assert err.strip().endswith(f"pv: error: run {result['run']['id']} failed: shard 2 failed: RuntimeError: "
                                "disk full while writing shard 2")


@pytest.mark.timeout(300)
def test_cycle_through_a_worker_on_redis(  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, pg_url: str, pg_engine, session: Session, tmp_path: Path, capsys
) -> None:
    redis.Redis.from_url(REDIS_URL).ping()
    env = {"PV_DATABASE_URL": pg_url, "PV_BROKER_URL": REDIS_URL, "PV_TASK_QUEUE": f"pv-test-{uuid.uuid4().hex[:8]}",
           "PV_CONFIG_DIR": str(_config(tmp_path)), "PV_VAR_DIR": str(tmp_path / "var")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    configure(app)
    worker = Worker(env, log=tmp_path / "worker.log")
    try:
        incoming = tmp_path / "incoming"
        _drop_sample(incoming)
        code, out, err = cli(capsys, "cycle", "--as-of", "2017-06-30", "--drop", str(incoming), "--format", "json",
                             "--timeout", "240")
        assert code == 0, err + (tmp_path / "worker.log").read_text()[-3000:]
        _check_first_cycle(json.loads(out), session, tmp_path / "var", incoming)
        session.commit()
        # again: nothing to ingest, the run found, its evaluation not repeated
        code, out, err = cli(capsys, "cycle", "--as-of", "2017-06-30", "--format", "json", "--timeout", "240")
        assert code == 0, err
        again = json.loads(out)
        assert (again["ingested"], again["run"]["computed_now"], again["evaluated_now"]) == ([], False, False)
        assert _count(session, SignalRuleSnapshot) == 1
    finally:
        worker.stop()
        for k in env:
            monkeypatch.delenv(k)
        get_settings.cache_clear()
        configure(app)
