"""The ``pv`` command line. Each area registers its commands from its own module in this package."""

from __future__ import annotations

import os
import sys

import typer

from pv.cli import alerts as alerts_cli
from pv.cli import cohort as cohort_cli
from pv.cli import config as config_cli
from pv.cli import cycle as cycle_cli
from pv.cli import db as db_cli
from pv.cli import disproportionality as disproportionality_cli
from pv.cli import ingest as ingest_cli
from pv.cli import report as report_cli
from pv.cli import runs as runs_cli
from pv.cli import serve as serve_cli
from pv.cli import signals as signals_cli
from pv.cli import simulate as simulate_cli
from pv.cli import store as store_cli
from pv.cli import users as users_cli
from pv.cli.options import ProcessEnd
from pv.errors import PvError

app = typer.Typer(
    name="pv",
    help="Pharmacovigilance signal detection for CAR-T cell therapies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_cli.app, name="db")
app.add_typer(config_cli.app, name="config")
app.add_typer(ingest_cli.app, name="ingest")
app.add_typer(store_cli.app, name="store")
app.add_typer(simulate_cli.app, name="simulate")
cohort_cli.register(app, ingest_cli.app, simulate_cli.app)
app.add_typer(alerts_cli.app, name="alerts")
signals_cli.register(app)
runs_cli.register(app)
cycle_cli.register(app)
app.add_typer(report_cli.app, name="report")
app.add_typer(users_cli.app, name="users")
serve_cli.register(app)
app.command("disproportionality")(disproportionality_cli.command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: PvError becomes a one-line message on stderr and exit status 1."""
    # OpenBLAS threads speed up nothing pv computes (its matrices are tiny) and, on a busy machine, make the MGPS
    # fit several times slower: every L-BFGS-B step wakes them. One thread unless the environment says otherwise.
    # This takes effect because no command has loaded NumPy yet (the commands import it when they run).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    ProcessEnd.at_once = False
    try:
        _main(argv)
    finally:
        _release_task_results()


def _release_task_results() -> None:
    """Let go of the Celery results this process still holds while the interpreter is whole: with a Redis result
    backend an ``AsyncResult`` left to the interpreter's shutdown unsubscribes on a half torn-down process and
    prints a 19-line "Exception ignored in AsyncResult.__del__" traceback (celery/celery#6164)."""
    celery_app = getattr(sys.modules.get("workers.app"), "app", None)
    if celery_app is None or celery_app.conf.task_always_eager:
        return
    consumer = getattr(celery_app.backend, "result_consumer", None)  # the Redis backend's subscriptions
    if consumer is None or getattr(consumer, "_pubsub", None) is None:
        return
    try:
        consumer.stop()  # closes the subscription connection: nothing is left to unsubscribe at shutdown
    except Exception:  # noqa: BLE001 - the broker may be gone already
        pass
    subscribed = getattr(consumer, "subscribed_to", None)
    if isinstance(subscribed, set):
        subscribed.clear()


def _main(argv: list[str] | None) -> None:
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, without standalone mode
            sys.exit(code)
    except PvError as exc:
        typer.echo(f"pv: error: {exc}", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors, setup problems (pv.cli.problems)
        import click

        # typer >= 0.24 vendors click: its usage errors derive from typer.TyperException, not click's
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        from pv.cli.problems import setup_problem

        problem = setup_problem(exc)
        if problem is None:
            raise
        typer.echo(f"pv: error: {problem}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, when not standalone
        sys.exit(code)
    if argv is None and ProcessEnd.at_once:  # a process of its own (not main([...]) called in a test)
        _end_at_once()


def _end_at_once() -> None:
    """End the process now, as the command asked (:class:`pv.cli.options.ProcessEnd`): flush the streams, run the
    atexit handlers, and exit 0 without tearing the modules down. A stream that cannot be flushed (a closed pipe)
    leaves the ending to Python, as before."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    atexit._run_exitfuncs()
    os._exit(0)
