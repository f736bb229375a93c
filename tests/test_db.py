"""Schema migrations on the real PostgreSQL and on SQLite."""

from sqlalchemy import inspect

from pv import db
from pv.models import Base


def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_postgres_schema_matches_models(pg_engine) -> None:  # type: ignore[no-untyped-def]
    assert _tables(pg_engine) == set(Base.metadata.tables)
    assert db.current_revision(pg_engine) == db.head_revisions()


def test_sqlite_migrated_automatically_on_first_use(sqlite_url: str) -> None:
    engine = db.get_engine(sqlite_url)
    assert _tables(engine) == set(Base.metadata.tables)
    assert db.current_revision(engine) == db.head_revisions()


def test_migrations_match_models_no_pending_autogenerate(sqlite_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.get_engine(sqlite_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_database_url_is_printed_without_its_password() -> None:
    """What make demo and the setup problems print (issue 14, point 11)."""
    from pv.db import shown_url

    assert shown_url("postgresql+psycopg://pv:s3cret@db:5432/pv") == "postgresql+psycopg://pv:***@db:5432/pv"
    assert shown_url("sqlite:///var/pv.sqlite3") == "sqlite:///var/pv.sqlite3"
