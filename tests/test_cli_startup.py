"""The command line starts light: ``pv --help`` and the help of every command load none of the heavy libraries.

Each check runs in a fresh interpreter (this test process has loaded them all already). How long the start takes
is measured by ``benchmarks/cli_startup.py``; here only which modules are loaded is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pv.cli import main
from tests.conftest import REPO

HEAVY = ("numpy", "pandas", "scipy", "sqlalchemy", "alembic", "matplotlib", "weasyprint", "celery", "workers")

# Calls ``--help`` of pv and of every group and command, in one interpreter, and prints for each the heavy
# modules that it loaded (a module loaded by one help would be blamed on that one).
_WALK = r"""
import contextlib, io, json, sys

from pv.cli import app, main
import typer.main

heavy = json.loads(sys.argv[1])


def loaded():
    return sorted(m for m in heavy if m in sys.modules)


def paths(command, prefix):
    yield prefix
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from paths(sub, [*prefix, name])


report = {"before": loaded(), "helps": {}}
for path in list(paths(typer.main.get_command(app), [])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*path, "--help"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    report["helps"][" ".join(path) or "pv"] = {"code": code, "usage": "Usage:" in out.getvalue(),
                                               "heavy": loaded()}
print(json.dumps(report))
"""


def test_help_of_every_command_loads_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", _WALK, json.dumps(HEAVY)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["before"] == []
    helps = report["helps"]
    assert {"pv", "signals", "store summary", "disproportionality", "db upgrade", "report weekly",
            "alerts send", "runs show", "incidence"} <= set(helps)
    for path, found in helps.items():
        assert found["code"] in (0, None) and found["usage"], path
        assert found["heavy"] == [], f"pv {path} --help loaded {found['heavy']}"


def test_python_m_pv_reports_errors_as_before(tmp_path: Path) -> None:
    """``python -m pv`` is the pv command: an error is one line ``pv: error: ...`` and exit status 1."""
    missing = tmp_path / "none.csv"
    done = subprocess.run([sys.executable, "-m", "pv", "disproportionality", str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("pv: error: ") and "no such file" in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_alerts_send_help_names_the_services_default(capsys: pytest.CaptureFixture[str]) -> None:
    """``pv alerts send`` states its default number of attempts without importing the service that defines it."""
    from pv.alerts.service import DEFAULT_MAX_ATTEMPTS

    try:
        main(["alerts", "send", "--help"])
    except SystemExit:
        pass
    assert f"(default {DEFAULT_MAX_ATTEMPTS})" in " ".join(capsys.readouterr().out.split())
