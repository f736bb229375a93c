"""The ``pv`` command line. Each area registers its commands from its own module in this package."""

from __future__ import annotations

import sys

import typer

from pv.cli import db as db_cli
from pv.cli import disproportionality as disproportionality_cli
from pv.errors import PvError

app = typer.Typer(
    name="pv",
    help="Pharmacovigilance signal detection for CAR-T cell therapies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_cli.app, name="db")
app.command("disproportionality")(disproportionality_cli.command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: PvError becomes a one-line message on stderr and exit status 1."""
    try:
        app(args=argv, standalone_mode=False)
    except PvError as exc:
        typer.echo(f"pv: error: {exc}", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
