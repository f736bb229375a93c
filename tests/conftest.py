"""Shared fixtures: a fresh real PostgreSQL database per test session, a SQLite one for smoke runs.

The PostgreSQL server is the machine's (127.0.0.1:5432, trust auth); PV_TEST_ADMIN_URL overrides it. Each
pytest session creates its own database (so parallel runs never collide) and drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from pv import db
from pv.models import Base
from pv.settings import get_settings

ADMIN_URL = os.environ.get("PV_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the shared data folder beside the checkout (read only)
REAL_DATA = SHARED / "data" / "real"
REFERENCE = SHARED / "reference"


def _sqlalchemy_url(dbname: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a new, migrated PostgreSQL database for this test session."""
    name = f"pv_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _sqlalchemy_url(name)
    db.upgrade(url)
    try:
        yield url
    finally:
        db.dispose_engines()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_pg_url() -> Iterator[str]:
    """URL of a new, empty (not migrated) PostgreSQL database, dropped after the test."""
    name = f"pv_test_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _sqlalchemy_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_all(engine) -> None:  # type: ignore[no-untyped-def]
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))


@pytest.fixture
def pg_engine(pg_url: str):  # type: ignore[no-untyped-def]
    """The migrated engine, emptied after each test."""
    engine = db.get_engine(pg_url)
    yield engine
    _truncate_all(engine)


@pytest.fixture
def session(pg_engine) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """A session on the real PostgreSQL test database; the caller commits as a service caller would."""
    s = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pv.sqlite3'}"


@pytest.fixture
def sqlite_session(sqlite_url: str) -> Iterator[Session]:
    s = sessionmaker(bind=db.get_engine(sqlite_url), expire_on_commit=False)()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pv_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str, pg_engine):  # type: ignore[no-untyped-def]
    """Environment for CLI tests: PV_DATABASE_URL on the test database, var dir in tmp_path."""
    monkeypatch.setenv("PV_DATABASE_URL", pg_url)
    monkeypatch.setenv("PV_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PV_CONFIG_DIR", str(REPO / "config"))
    monkeypatch.delenv("PV_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield pg_url
    get_settings.cache_clear()


GAP_LABELS = REPO / "tests" / "data" / "labels_gap.yaml"


@pytest.fixture
def gap_approvals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Products judged in FDA and NMPA only (config/products.yaml without its EMA approvals), as in the test
    registry of tests/data/labels_gap.yaml."""
    from pv.signals import labels

    approvals = {p: {j: d for j, d in a.items() if j != "EMA"} for p, a in labels.product_approvals().items()}
    monkeypatch.setattr(labels, "product_approvals", lambda products=None: approvals)


@pytest.fixture
def gap_registry(pg_engine, gap_approvals) -> None:  # type: ignore[no-untyped-def]
    """The test label registry of the feedback-loop tests (tests/data/labels_gap.yaml: FDA and NMPA, the T-cell
    malignancy gap before April 2024), products judged in FDA and NMPA only. Not label facts: see the file."""
    from pv.signals import labels

    s = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        assert labels.seed_labels(s, GAP_LABELS) > 0
        s.commit()
    finally:
        s.close()
