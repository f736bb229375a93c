"""Database access: engines, sessions and schema migrations.

Services receive a Session from their caller; only entry points (CLI commands, Celery tasks, tests) open one,
with :func:`session_scope`. The schema is brought up to date by Alembic, explicitly (``pv db upgrade``) or
automatically the first time an engine is made for a URL. DataFrames go in and out in bulk through
:mod:`pv.db.bulk`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from pv.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` (SQLite folders are created; SQLite gets foreign keys and WAL)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def current_revision(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


_MIGRATION_LOCK = 7_461_029_312  # pg advisory lock: one process migrates a database at a time


def _migration_engine(url: str) -> Engine:
    """An engine whose transactions hold DDL too, and lock the database for writing from their start.

    pysqlite begins a transaction only before INSERT/UPDATE/DELETE, so CREATE TABLE ran in autocommit and a
    process killed during the first upgrade left a half-made store that refused every later command. Here the
    driver's own transaction handling is off and every transaction starts with ``BEGIN IMMEDIATE``: the whole
    upgrade commits or nothing does, and a second process waits for the first. Foreign keys are off during
    migrations (a SQLite table rebuild would otherwise cascade the implicit DELETE of its DROP TABLE) and
    checked with ``PRAGMA foreign_key_check`` before the commit.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60}, poolclass=NullPool)

    def connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.close()

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Apply every pending migration to the database at ``url`` (default: the configured one), in one
    transaction (all or nothing, on both backends), one process at a time."""
    url = url or get_settings().database_url
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            if conn.dialect.name == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration to {revision} broke {len(broken)} foreign keys, e.g. "
                                       f"{broken[0]}; rolled back")
    finally:
        engine.dispose()


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url``, migrated to the latest schema on first use."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            if current_revision(engine) != head_revisions():
                upgrade(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Drop pooled connections (call in each forked worker process)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in a transaction: committed on success, rolled back on error, always closed."""
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def shown_url(url: str) -> str:
    """A database URL as it may be printed: its password replaced by ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def backend_name(session: Session) -> str:
    """'postgresql' or 'sqlite'."""
    return session.get_bind().dialect.name


__all__ = [
    "backend_name",
    "dispose_engines",
    "get_engine",
    "make_engine",
    "session_scope",
    "shown_url",
    "upgrade",
]
