"""The authorisation matrix: every route that changes something, for every role and without credentials, through
the API (bearer token) and the pages (session cookie and CSRF token); a refused request changes nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.models import AuditLog, Signal, SignalAudit, SignalComment
from pv.signals import review
from tests.web.conftest import PASSWORD, Person, Registry

#: role -> expected status of: validate (assessment), close an assessed signal (decision), comment, assign.
API_MATRIX = {
    None: (401, 401, 401, 401),
    "viewer": (403, 403, 403, 403),
    "assessor": (200, 403, 201, 200),
    "approver": (200, 200, 201, 200),
    "admin": (403, 403, 403, 403),
}
#: role -> expected status of the pages' forms: transition (validate), comment. 303: done, back to the signal.
PAGE_MATRIX = {
    None: (303, 303),  # to the sign-in form
    "viewer": (403, 403),
    "assessor": (303, 303),
    "approver": (303, 303),
    "admin": (403, 403),
}


def _assessed_by_approver2(session: Session, signal_id: int) -> None:
    actor = users.get_user(session, "approver2")
    for target in ("validated", "prioritised", "assessed"):
        review.transition(session, signal_id, target, f"to {target}", actor=actor, via="api")
    session.commit()


def _state(session: Session, registry: Registry) -> tuple:
    session.expire_all()
    return (session.get(Signal, registry.tcl).status, session.get(Signal, registry.group).status,  # type: ignore[union-attr]
            session.scalar(select(func.count()).select_from(SignalComment)),
            session.scalar(select(func.count()).select_from(SignalAudit)),
            session.scalar(select(func.count()).select_from(AuditLog)))


@pytest.mark.parametrize("role", list(API_MATRIX))
def test_api_matrix(role: str | None, client: TestClient, people: dict[str, Person], registry: Registry,
                    session: Session) -> None:
    _assessed_by_approver2(session, registry.group)
    headers = people[role].auth if role else {}
    before = _state(session, registry)
    got = (
        client.post(f"/api/signals/{registry.tcl}/transitions", json={"to": "validated", "reason": "r"},
                    headers=headers).status_code,
        client.post(f"/api/signals/{registry.group}/transitions", json={"to": "closed", "reason": "r"},
                    headers=headers).status_code,
        client.post(f"/api/signals/{registry.tcl}/comments", json={"text": "c"}, headers=headers).status_code,
        client.post(f"/api/signals/{registry.tcl}/assignment", json={"user": "assessor", "due": "2024-05-01"},
                    headers=headers).status_code,
    )
    assert got == API_MATRIX[role]
    after = _state(session, registry)
    if role in (None, "viewer", "admin"):
        assert after == before
    elif role == "assessor":
        assert after[:3] == ("validated", "assessed", before[2] + 1)
    else:
        assert after[:3] == ("validated", "closed", before[2] + 1)
    if role in ("assessor", "approver"):  # each change in the signal trail and in the change log, by the user
        rows = session.scalars(select(AuditLog).where(AuditLog.id > 0).order_by(AuditLog.id.desc())).all()
        mine = [r for r in rows if r.by == people[role].name]
        assert {r.action for r in mine} == ({"transition", "comment", "assignment"})
        assert all(r.via == "api" for r in mine)


def _sign_in(client: TestClient, name: str) -> str:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    signal_page = client.get("/signals")
    return re.search(r'name="csrf_token" value="([^"]+)"', signal_page.text).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("role", list(PAGE_MATRIX))
def test_page_matrix(role: str | None, client: TestClient, people: dict[str, Person], registry: Registry,
                     session: Session) -> None:
    if role:
        csrf = _sign_in(client, people[role].name)
    else:
        page = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    before = _state(session, registry)
    t = client.post(f"/signals/{registry.tcl}/transition", data={"to": "validated", "reason": "r", "csrf_token": csrf},
                    follow_redirects=False)
    c = client.post(f"/signals/{registry.tcl}/comment", data={"text": "c", "csrf_token": csrf},
                    follow_redirects=False)
    assert (t.status_code, c.status_code) == PAGE_MATRIX[role]
    after = _state(session, registry)
    if role is None:
        assert t.headers["location"] == "/login?next=%2Fsignals"
    if role in ("assessor", "approver"):
        assert t.headers["location"] == f"/signals/{registry.tcl}"
        assert after[0] == "validated" and after[2] == before[2] + 1
        log = session.scalars(select(AuditLog).where(AuditLog.entity == "signal")).all()
        assert {(r.by, r.via) for r in log} == {(people[role].name, "web")}
    else:
        assert after == before
