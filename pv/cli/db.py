"""``pv db``: schema management."""

from __future__ import annotations

import typer

# The database layer (SQLAlchemy, Alembic) and the settings are imported inside the commands, so that
# ``pv --help`` and the help of every command start without them.

app = typer.Typer(help="Case store schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision (default: latest).")) -> None:
    """Apply pending migrations to the configured database (PV_DATABASE_URL)."""
    from pv import db
    from pv.settings import get_settings

    url = get_settings().database_url
    db.upgrade(url, revision)
    typer.echo(f"database at {db.make_engine(url).url.render_as_string(hide_password=True)} is up to date")


@app.command()
def current() -> None:
    """Print the schema revision of the configured database."""
    from pv import db
    from pv.settings import get_settings

    engine = db.make_engine(get_settings().database_url)
    revs = db.current_revision(engine)
    typer.echo(", ".join(sorted(revs)) or "(empty)")
