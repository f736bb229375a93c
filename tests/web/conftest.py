"""Fixtures of the review-service tests: the app on the real PostgreSQL test database, one user per role with
an API token, and a small registry of signals on a hand-made case store (the run is requested, not computed:
the signals come from synthetic results, their cases from the store)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.analysis import runs as run_service
from pv.analysis.config import AnalysisConfig
from pv.models import Signal
from pv.settings import Settings
from pv.signals.evaluation import evaluate_run
from pv.signals.labels import ensure_seeded
from pv.signals.rules import RuleSet
from pv.web.app import create_app
from tests.conftest import REPO
from tests.runs_data import fast_config, make_store
from tests.signals.helpers import frame, strong_row

D = dt.date
TISA = "tisagenlecleucel"
AXI = "axicabtagene ciloleucel"
AS_OF = D(2024, 3, 31)
PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "assessor", "approver", "admin")
HOSTILE = "<script>alert('pv')</script>"


@dataclass
class Person:
    name: str
    role: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small costs: the production costs (64 MiB, 3 passes) take a second a hash on a busy test
    machine. ``test_accounts`` checks the production parameters on their own."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", lambda: hasher)


@pytest.fixture
def web_settings(pg_url: str, pg_engine, tmp_path: Path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(database_url=pg_url, var_dir=tmp_path / "var", config_dir=REPO / "config",
                    secret_key="test-secret-key", base_url="http://testserver")


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as c:
        yield c


@pytest.fixture
def people(session: Session) -> dict[str, Person]:
    """One active user per role (named after it), each with an API token; plus a second approver."""
    out = {}
    admin = users.add_user(session, "admin", "admin", PASSWORD, actor=None, via="cli")
    for role in ROLES:
        user = admin if role == "admin" else users.add_user(session, role, role, PASSWORD, actor=admin, via="cli")
        out[role] = Person(user.name, role, users.create_token(session, user.name, actor=admin, via="cli")[1])
    second = users.add_user(session, "approver2", "approver", PASSWORD, actor=admin, via="cli")
    out["approver2"] = Person(second.name, "approver", users.create_token(session, second.name, actor=admin,
                                                                          via="cli")[1])
    session.commit()
    return out


@dataclass
class Registry:
    run_id: int
    tcl: int  # tisagenlecleucel / t-cell lymphoma (pt), new
    group: int  # tisagenlecleucel / malignancy_t_cell (group), new
    hostile: int  # axicabtagene ciloleucel / an event named like a script, new


@pytest.fixture
def registry(session: Session, tmp_path: Path, gap_registry: None) -> Registry:
    """A hand-made case store, a run requested as of 2024-03-31 and the signals of synthetic results for it,
    judged against the test label registry with the T-cell malignancy gap (tests/data/labels_gap.yaml)."""
    make_store(session, n_background=60)  # the background only has to exist: the signals' cases are fixed
    ensure_seeded(session)  # (a no-op: the test registry is seeded)
    run, _ = run_service.request_run(session, AS_OF, cfg=AnalysisConfig.load(fast_config(tmp_path)),
                                     config_dir=REPO / "config")
    session.commit()
    rules = RuleSet.load()  # signals opened at their first run (the opening rule is tested in tests/signals)
    rules = rules.model_copy(update={"opening": rules.opening.model_copy(update={"persistence": 1})})
    evaluate_run(session, run_id=run.id, as_of=AS_OF, rules=rules, results=frame(
        strong_row(TISA, "t-cell lymphoma", n=12, eb05=3.0),
        strong_row(TISA, "malignancy_t_cell", level="group", n=12, eb05=2.8),
        strong_row(AXI, HOSTILE, n=4, eb05=2.2),
    ))
    session.commit()

    def sid(product: str, event: str) -> int:
        return session.scalars(select(Signal.id).where(Signal.product == product, Signal.event == event)).one()

    return Registry(run.id, sid(TISA, "t-cell lymphoma"), sid(TISA, "malignancy_t_cell"), sid(AXI, HOSTILE))


def stop_server(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """Stop a `pv serve` process as Ctrl-C would (killed if it has not ended within 20 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
