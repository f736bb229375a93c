"""Setup faults (issue 14, point 9): a first migration is all or nothing on SQLite, two processes may migrate a
new PostgreSQL database at once, and the same file loaded twice at once on SQLite is "already loaded"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect

import pv.db
from pv import db
from tests.conftest import REAL_DATA, REPO


def test_a_first_upgrade_that_fails_midway_leaves_nothing_behind(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure (or a kill) in the middle of the first upgrade: before, the tables of the earlier migrations
    stayed, with no version recorded, and every later command failed on them."""
    url = f"sqlite:///{tmp_path / 'pv.sqlite3'}"
    make = pv.db._migration_engine

    def failing(u: str):  # type: ignore[no-untyped-def]
        engine = make(u)

        def boom(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("CREATE TABLE RUNS"):  # migration 0003
                raise RuntimeError("killed during the first upgrade")

        event.listen(engine, "before_cursor_execute", boom)
        return engine

    monkeypatch.setattr(pv.db, "_migration_engine", failing)
    with pytest.raises(RuntimeError, match="killed during the first upgrade"):
        db.upgrade(url)
    check = create_engine(url)
    assert inspect(check).get_table_names() == []  # the case store tables of 0001 are gone too
    check.dispose()
    monkeypatch.setattr(pv.db, "_migration_engine", make)
    db.upgrade(url)
    check = create_engine(url)
    assert {"case_versions", "runs", "alembic_version"} <= set(inspect(check).get_table_names())
    check.dispose()


def _at_once(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    out = []
    for p, c in zip(procs, commands, strict=True):
        stdout, stderr = p.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(c, p.returncode, stdout, stderr))
    return out


def test_two_processes_migrate_a_new_postgresql_database_at_once(scratch_pg_url: str) -> None:
    env = {**os.environ, "PV_DATABASE_URL": scratch_pg_url}
    env.pop("PV_BROKER_URL", None)
    done = _at_once([[sys.executable, "-m", "pv", "db", "upgrade"]] * 2, env)
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-2000:] for d in done]
    engine = create_engine(scratch_pg_url)
    try:
        assert db.current_revision(engine) == db.head_revisions()
    finally:
        engine.dispose()


def test_the_same_file_loaded_twice_at_once_on_sqlite_is_already_loaded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pv.sqlite3'}"
    db.upgrade(url)
    env = {**os.environ, "PV_DATABASE_URL": url, "PV_VAR_DIR": str(tmp_path)}
    env.pop("PV_BROKER_URL", None)
    quarter = shutil.copy(REAL_DATA / "faers_ascii_2017q2.zip", tmp_path / "q.zip")
    done = _at_once([[sys.executable, "-m", "pv", "ingest", "faers", str(quarter)]] * 2, env)
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-2000:] for d in done]
    totals = sorted(line.strip() for d in done for line in d.stdout.splitlines() if "already loaded," in line)
    assert totals == ["0 loaded, 1 already loaded, 0 refused", "1 loaded, 0 already loaded, 0 refused"]
