"""``pv alerts``: send, list and retry the alert emails (one digest per run and recipient) in the outbox."""

from __future__ import annotations

import json
from enum import StrEnum

import typer

from pv.cli.options import TableOrJson as Format

# The alerts service, the database layer and the settings (SQLAlchemy, pydantic) are imported inside the commands
# that use them, so that ``pv --help`` and the help of every command start without them.

app = typer.Typer(help="Alert emails about signal changes: one digest per run and recipient (the outbox).",
                  no_args_is_help=True)


class Status(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"


@app.command()
def send(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be sent; send and change nothing."
    ),
    max_attempts: int | None = typer.Option(
        None, min=1, help="Attempts before an alert fails (default 5)."
    ),  # the service's DEFAULT_MAX_ATTEMPTS, not imported here (it would load SQLAlchemy); a test holds them equal
) -> None:
    """Send the pending alerts (SMTP when PV_SMTP_HOST is set, else .eml files in <PV_VAR_DIR>/outbox).

    Exit status 1 when an attempt failed (the alert stays pending for a retry, or is marked failed).
    """
    from pv import db
    from pv.alerts.service import DEFAULT_MAX_ATTEMPTS, send_pending
    from pv.alerts.transport import transport_from_settings
    from pv.settings import get_settings

    settings = get_settings()
    transport = transport_from_settings(settings)
    with db.session_scope(settings.database_url) as session:
        summary = send_pending(session, transport, max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
                               dry_run=dry_run)
    if dry_run:
        typer.echo(
            f"dry run: {summary.would_send} alert(s) would be sent via {summary.transport}"
            f" ({summary.not_due} waiting for a retry)"
        )
        return
    typer.echo(
        f"{summary.sent} sent, {summary.retry_later} to retry, {summary.failed} failed"
        f" ({summary.not_due} waiting for a retry) via {summary.transport}"
    )
    for error in summary.errors:
        typer.echo(f"pv: alert: {error}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


@app.command("list")
def list_(
    format: Format = typer.Option(Format.table, "--format", help="table or json."),
    status: Status | None = typer.Option(None, "--status", help="Only alerts with this status."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many (newest first)."),
) -> None:
    """List the alert emails in the outbox, newest first (one digest per run and recipient)."""
    from pv import db
    from pv.alerts.service import list_alerts, outbox_row_dict
    from pv.settings import get_settings

    with db.session_scope(get_settings().database_url) as session:
        rows = [outbox_row_dict(r) for r in list_alerts(session, status.value if status else None, limit)]
    if format is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no alerts")
        return
    cols = ["id", "status", "attempts", "recipient", "run_id", "signals", "subject", "created_at", "last_error"]
    table = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: object, width: int = 60) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@app.command()
def retry(
    ids: list[int] | None = typer.Argument(None, help="Outbox ids (default: every failed alert)."),
) -> None:
    """Put failed alerts back in the queue with a fresh attempt budget (then run `pv alerts send`)."""
    from pv import db
    from pv.alerts.service import retry_failed
    from pv.settings import get_settings

    with db.session_scope(get_settings().database_url) as session:
        n = retry_failed(session, ids or None)
    typer.echo(f"{n} failed alert(s) queued again")
