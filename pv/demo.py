"""``make demo``: the main job end to end on the embedded default (SQLite under ./var, tasks in process)."""

from __future__ import annotations

from pv import db
from pv.settings import get_settings


def main() -> None:
    settings = get_settings()
    db.get_engine(settings.database_url)
    print(f"case store ready at {settings.database_url}")


if __name__ == "__main__":
    main()
