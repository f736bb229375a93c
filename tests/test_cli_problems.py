"""Setup problems are one line naming the setting (issue 14, point 12): a bad database URL, an unreachable
database (its password hidden), a store folder that cannot be made."""

from __future__ import annotations

from pathlib import Path

import pytest

from pv.cli import main
from pv.settings import get_settings


@pytest.mark.parametrize("url, expected", [
    ("nonsense", "pv: error: PV_DATABASE_URL: not a database URL pv can use: Could not parse SQLAlchemy URL"),
    ("postgresql+psycopg://pv:secret@127.0.0.1:1/pv",
     "pv: error: PV_DATABASE_URL: cannot use the database postgresql+psycopg://pv:***@127.0.0.1:1/pv: "
     "connection failed"),
    ("sqlite:////proc/no-such-folder/pv.sqlite3",
     "pv: error: PV_DATABASE_URL: cannot create or open the store's folder /proc/no-such-folder"),
])
def test_a_bad_database_setting_is_one_line(url: str, expected: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PV_DATABASE_URL", url)
    monkeypatch.setenv("PV_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["store", "summary"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert "secret" not in err and "Traceback" not in err
