"""Setup problems told in one line: a bad database URL, an unreachable database or broker, a read-only store or
var folder. :func:`setup_problem` names the setting at fault and the problem, with any password hidden, instead
of a traceback. Only exception types of libraries already imported are looked at (no import here)."""

from __future__ import annotations

import sys

_RESOLVE = "(check the setting; pv reads it from the environment)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _database_url() -> str:
    try:
        from pv.db import shown_url
        from pv.settings import get_settings

        return shown_url(get_settings().database_url)
    except Exception:  # noqa: BLE001 - the URL itself may be what is wrong
        return "(unreadable)"


def setup_problem(exc: BaseException) -> str | None:
    """The one-line message for a setup problem, or None when ``exc`` is not one."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None:
        if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
            return (f"PV_DATABASE_URL: not a database URL pv can use: {_first_line(exc)} (e.g. "
                    "postgresql+psycopg://user@host:5432/pv or sqlite:///var/pv.sqlite3)")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            line = _first_line(exc)
            if "readonly database" in line or "read-only" in line:
                return (f"the store {_database_url()} is read-only: {line}; this command writes to it (give the "
                        "process write access to the database file and its folder)")
            if "unable to open database file" in line:
                return (f"PV_DATABASE_URL: cannot open {_database_url()}: {line} (does its folder exist and can "
                        "this user write there? PV_VAR_DIR holds the embedded store)")
            return f"PV_DATABASE_URL: cannot use the database {_database_url()}: {line} {_RESOLVE}"
    for name in ("kombu.exceptions", "redis.exceptions"):
        mod = sys.modules.get(name)
        if mod is not None and isinstance(exc, mod.OperationalError if name == "kombu.exceptions"
                                          else mod.ConnectionError):
            return f"PV_BROKER_URL: cannot reach the broker: {_first_line(exc)} {_RESOLVE}"
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        filename = str(exc.filename)
        try:
            from pv.settings import get_settings

            settings = get_settings()
            var, database = str(settings.var_dir.resolve()), settings.database_url
        except Exception:  # noqa: BLE001
            var, database = "", ""
        from pathlib import Path

        if database.startswith("sqlite") and filename and filename in database:
            return f"PV_DATABASE_URL: cannot create or open the store's folder {filename}: {exc.strerror or exc}"
        if var and str(Path(filename).resolve()).startswith(var):
            return f"PV_VAR_DIR: cannot write {filename}: {exc.strerror or exc} (the var folder must be writable)"
        return f"cannot use {filename}: {exc.strerror or exc}"
    return None
