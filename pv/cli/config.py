"""``pv config init DIR``: an editable copy of the configuration shipped inside the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from pv.errors import InputError

app = typer.Typer(help="The YAML configuration (shipped inside the package; PV_CONFIG_DIR points at a copy).",
                  no_args_is_help=True)


@app.command("init")
def init(directory: Path = typer.Argument(..., help="Folder to write the copy to (must not exist, or be empty)."),
         ) -> None:
    """Write an editable copy of the shipped configuration to DIR; then set PV_CONFIG_DIR=DIR."""
    from pv.settings import DEFAULT_CONFIG_DIR

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError("exists and is not an empty folder: pv config init never overwrites a configuration",
                         file=str(directory))
    shutil.copytree(DEFAULT_CONFIG_DIR, directory, dirs_exist_ok=True)
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    typer.echo(f"wrote {len(files)} files to {directory}: {', '.join(files)}")
    typer.echo(f"use it with: export PV_CONFIG_DIR={directory.resolve()}")
