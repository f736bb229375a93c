"""The review service on the embedded default (SQLite): tokens, sign-in slowing down, the line listing and a
decision, where the database gives back naive datetimes and has no DISTINCT ON."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.analysis import runs as run_service
from pv.errors import AuthenticationError, LoginThrottledError
from pv.models import ApiToken
from pv.settings import Settings
from pv.signals.evaluation import evaluate_run
from pv.signals.labels import ensure_seeded
from pv.web.app import create_app
from tests.conftest import REPO
from tests.runs_data import make_store
from tests.signals.helpers import frame, strong_row
from tests.web.conftest import PASSWORD, TISA


def test_review_service_on_sqlite(sqlite_url: str, sqlite_session: Session, tmp_path: Path) -> None:
    s = sqlite_session
    make_store(s)
    ensure_seeded(s)
    user = users.add_user(s, "alice", "assessor", PASSWORD, actor=None, via="cli")
    row, token = users.create_token(s, "alice", actor=None, via="cli")
    run, _ = run_service.request_run(s, dt.date(2024, 3, 31), config_dir=REPO / "config")
    s.commit()
    evaluate_run(s, run_id=run.id, as_of=run.as_of, results=frame(strong_row(TISA, "t-cell lymphoma", n=12)))
    s.execute(update(ApiToken).values(last_used_at=dt.datetime(2026, 1, 1, 9, 0)))  # stored naive by SQLite
    s.commit()
    settings = Settings(database_url=sqlite_url, var_dir=tmp_path / "var", config_dir=REPO / "config")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        listing = client.get("/api/signals/1/cases", headers=auth).json()
        assert (listing["count"], listing["n_in_run"]) == (12, 12)
        r = client.post("/api/signals/1/transitions", json={"to": "refuted", "reason": "confounded"}, headers=auth)
        assert r.status_code == 200 and r.json()["status"] == "refuted"
        assert client.get("/api/signals/1", headers=auth).json()["audit"][-1]["by"] == "alice"
    s.expire_all()
    assert s.get(ApiToken, row.id).last_used_at.date() > dt.date(2026, 1, 1)  # type: ignore[union-attr]
    t0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    for i in range(users.FREE_ATTEMPTS):
        try:
            users.authenticate(s, "alice", "wrong password", now=t0 + dt.timedelta(seconds=i))
        except AuthenticationError:
            s.commit()
    try:
        users.authenticate(s, "alice", PASSWORD, now=t0 + dt.timedelta(seconds=users.FREE_ATTEMPTS - 0.5))
        raise AssertionError("not slowed down")
    except LoginThrottledError:
        pass
    assert users.authenticate(s, "alice", PASSWORD, now=t0 + dt.timedelta(seconds=60)).id == user.id
