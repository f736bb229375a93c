"""``pv serve``: the review service (pages and HTTP API) on uvicorn, on the same settings as every pv command."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", help="Server processes."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Run the review service: sign-in, the triage queue, signal pages with their cases, the JSON API
    (/api, OpenAPI at /openapi.json). Accounts: pv users."""
    import uvicorn

    from pv.db import get_engine
    from pv.settings import get_settings

    get_engine(get_settings().database_url)  # migrate once, before any server process starts
    uvicorn.run("pv.web.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, proxy_headers=True, server_header=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
