"""The configuration ships inside the package (issue 14, point 12): pv runs from any directory, and
`pv config init DIR` writes an editable copy."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pv.cli import main
from pv.settings import DEFAULT_CONFIG_DIR, Settings
from tests.conftest import REPO


def test_the_default_configuration_is_the_packaged_one() -> None:
    assert DEFAULT_CONFIG_DIR == (REPO / "pv" / "defaults").resolve()
    assert (REPO / "config").resolve() == DEFAULT_CONFIG_DIR  # the repository's config/ is a link to it
    assert Settings(_env_file=None).config_dir == DEFAULT_CONFIG_DIR  # type: ignore[call-arg]


def test_config_init_writes_an_editable_copy_and_never_overwrites(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "conf"
    main(["config", "init", str(target)])
    out = capsys.readouterr().out
    assert out.startswith("wrote 12 files to ") and f"export PV_CONFIG_DIR={target.resolve()}" in out
    compare = filecmp.dircmp(DEFAULT_CONFIG_DIR, target)
    assert not compare.left_only and not compare.right_only and not compare.diff_files
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "init", str(target)])
    assert exit_info.value.code == 1
    assert "never overwrites a configuration" in capsys.readouterr().err


def test_pv_runs_from_any_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PV_CONFIG_DIR"}
    env.update(PV_DATABASE_URL=f"sqlite:///{tmp_path / 'pv.sqlite3'}", PV_VAR_DIR=str(tmp_path))
    env.pop("PV_BROKER_URL", None)
    done = subprocess.run([sys.executable, "-m", "pv", "labels", "compare", "Yescarta", "--format", "json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"axicabtagene ciloleucel"' in done.stdout
