"""``pv store``: what the case store holds."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from pv.cli.options import TableOrJson as Format

# The database layer, the store summary and the settings are imported inside the command, so that ``pv --help``
# and the help of every command start without them.

app = typer.Typer(help="Case store contents.", no_args_is_help=True)


@app.command()
def summary(fmt: Format = typer.Option(Format.table, "--format", help="json or table.")) -> None:
    """Counts of cases, versions, drugs, reactions, quarantined rows; cases per product and event group."""
    from pv.db import session_scope
    from pv.ingest.summary import store_summary
    from pv.settings import get_settings

    with session_scope(get_settings().database_url) as session:
        data = store_summary(session)
    if fmt is Format.json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    console = Console()
    counts = Table(title="Case store")
    counts.add_column("item")
    counts.add_column("count", justify="right")
    for key, value in data.items():
        if not isinstance(value, dict):
            counts.add_row(key, str(value))
    console.print(counts)
    for key, title in (("cases_by_product", "Cases by product (current versions)"),
                       ("cases_by_event_group", "Cases by event group (current versions)")):
        table = Table(title=title)
        table.add_column(key.split("_by_")[1].replace("_", " "))
        table.add_column("cases", justify="right")
        for name, n in data[key].items():
            table.add_row(name, str(n))
        console.print(table)
