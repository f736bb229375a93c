"""``pv users add|list|disable|token``: the accounts of the review service.

While no active administrator exists, ``pv users add`` needs no ``--as`` (the first administrator is being added;
the change log names the system); afterwards every change names an active administrator with ``--as NAME``.
"""

from __future__ import annotations

import json
import sys

import typer

from pv.accounts.roles import ROLES
from pv.cli.options import Format

# The database layer and the services are imported inside the commands (``pv --help`` stays light).

app = typer.Typer(help="Accounts of the review service (pv serve): add, list, disable, API tokens.",
                  no_args_is_help=True)

AS_HELP = "The active administrator making the change (not needed while there is none)."


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def add(
    name: str = typer.Argument(..., help="User name (unique, any case)."),
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of standard input "
                                        "instead of prompting."),
    as_name: str | None = typer.Option(None, "--as", help=AS_HELP),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the change log)."),
) -> None:
    """Add a user with a role; the password (at least 12 characters) is hashed with argon2."""
    from pv.accounts import users
    from pv.db import session_scope

    users.check_name(name)
    users.check_role(role)
    password = users.check_password(_read_password(password_stdin))
    with session_scope() as session:
        actor = users.administrator(session, as_name)
        user = users.add_user(session, name, role, password, actor=actor, via="cli", reason=reason)
        typer.echo(f"user {user.name} added ({user.role})")


@app.command("list")
def list_users(fmt: Format = typer.Option(Format.table, "--format", help="table or json.")) -> None:
    """Every user, active or disabled."""
    from pv.accounts import users
    from pv.db import session_scope

    with session_scope() as session:
        rows = [users.user_as_dict(u) for u in users.list_users(session)]
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("(none)")
        return
    cols = ("name", "role", "active", "created_at", "last_login_at", "disabled_at")
    cells = [[("yes" if r[c] else "no") if c == "active" else str(r[c] or "") for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


@app.command("disable")
def disable(
    name: str = typer.Argument(..., help="User name."),
    as_name: str | None = typer.Option(None, "--as", help=AS_HELP),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the change log)."),
) -> None:
    """Disable a user: no more sign-in; their sessions end and their API tokens are revoked."""
    from pv.accounts import users
    from pv.db import session_scope

    with session_scope() as session:
        actor = users.administrator(session, as_name)
        users.disable_user(session, name, actor=actor, via="cli", reason=reason)
        typer.echo(f"user {name} disabled")


@app.command("token")
def token(
    name: str = typer.Argument(..., help="User name."),
    as_name: str | None = typer.Option(None, "--as", help=AS_HELP),
) -> None:
    """Make an API token for a user (Authorization: Bearer). It is printed once: only its hash is kept."""
    from pv.accounts import users
    from pv.db import session_scope

    with session_scope() as session:
        actor = users.administrator(session, as_name)
        _, secret = users.create_token(session, name, actor=actor, via="cli")
    typer.echo(secret)
