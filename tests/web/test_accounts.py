"""Accounts: users, argon2 passwords, hashed API tokens, sign-in slowed down after failures, the append-only
change log and comments, and the ``pv users`` commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import psycopg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.cli import main
from pv.errors import (
    AuditTrailError,
    AuthenticationError,
    InputError,
    LoginThrottledError,
    NotFoundError,
    PermissionDeniedError,
)
from pv.models import ApiToken, AuditLog, SignalComment, User
from pv.signals import review
from tests.web.conftest import PASSWORD, Registry

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def test_passwords_are_argon2id_with_the_librarys_default_costs(monkeypatch: pytest.MonkeyPatch,
                                                                session: Session) -> None:
    monkeypatch.undo()  # the production hasher, not the tests' cheap one
    user = users.add_user(session, "alice", "admin", PASSWORD, actor=None, via="cli")
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in user.password_hash
    assert users.authenticate(session, "alice", PASSWORD).id == user.id


def test_adding_users(session: Session) -> None:
    admin = users.add_user(session, "alice", "admin", PASSWORD, actor=None, via="cli", reason="first admin")
    bob = users.add_user(session, "Bob Smith", "assessor", PASSWORD, actor=admin, via="cli")
    assert (bob.name, bob.role, bob.active) == ("Bob Smith", "assessor", True)
    with pytest.raises(InputError, match="exists already"):
        users.add_user(session, "bob smith", "viewer", PASSWORD, actor=admin, via="cli")
    with pytest.raises(InputError, match="unknown role 'owner'"):
        users.add_user(session, "carol", "owner", PASSWORD, actor=admin, via="cli")
    with pytest.raises(InputError, match="at least 12"):
        users.add_user(session, "carol", "viewer", "short", actor=admin, via="cli")
    for bad in ("", " carol", "carol ", "car\nol", "x" * 101):
        with pytest.raises(InputError):
            users.add_user(session, bad, "viewer", PASSWORD, actor=admin, via="cli")
    with pytest.raises(PermissionDeniedError, match="may not manage users"):
        users.add_user(session, "carol", "viewer", PASSWORD, actor=bob, via="cli")
    log = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [(r.by, r.action, r.entity_id, r.after) for r in log] == [
        ("pv", "user_added", admin.id, {"name": "alice", "role": "admin", "active": True}),
        ("alice", "user_added", bob.id, {"name": "Bob Smith", "role": "assessor", "active": True})]
    assert log[0].reason == "first admin" and log[0].user_id is None and log[1].user_id == admin.id


def test_tokens_are_stored_hashed_and_die_with_the_user(session: Session) -> None:
    admin = users.add_user(session, "alice", "admin", PASSWORD, actor=None, via="cli")
    users.add_user(session, "bob", "viewer", PASSWORD, actor=admin, via="cli")
    row, token = users.create_token(session, "bob", actor=admin, via="cli")
    assert token.startswith("pv_") and len(token) > 40
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest() and row.prefix == token[:10]
    stored = session.execute(text("SELECT * FROM api_tokens")).all()
    assert token not in repr(stored)
    assert users.user_for_token(session, token).name == "bob"
    with pytest.raises(AuthenticationError):
        users.user_for_token(session, token + "x")
    users.disable_user(session, "bob", actor=admin, via="cli", reason="left the team")
    assert session.get(ApiToken, row.id).revoked_at is not None  # type: ignore[union-attr]
    with pytest.raises(AuthenticationError):
        users.user_for_token(session, token)
    with pytest.raises(InputError, match="disabled already"):
        users.disable_user(session, "bob", actor=admin, via="cli")
    with pytest.raises(InputError, match="is disabled"):
        users.create_token(session, "bob", actor=admin, via="cli")
    with pytest.raises(InputError, match="last active administrator"):
        users.disable_user(session, "alice", actor=admin, via="cli")
    with pytest.raises(NotFoundError):
        users.disable_user(session, "nobody", actor=admin, via="cli")
    change = session.scalars(select(AuditLog).where(AuditLog.action == "user_disabled")).one()
    assert (change.before, change.after, change.reason) == (
        {"name": "bob", "role": "viewer", "active": True}, {"name": "bob", "role": "viewer", "active": False},
        "left the team")


def test_failed_sign_ins_are_slowed_down(session: Session) -> None:
    users.add_user(session, "alice", "assessor", PASSWORD, actor=None, via="cli")
    for i in range(users.FREE_ATTEMPTS):
        with pytest.raises(AuthenticationError) as info:
            users.authenticate(session, "alice", "wrong password", now=T0 + dt.timedelta(seconds=i))
        assert not isinstance(info.value, LoginThrottledError)
    last = T0 + dt.timedelta(seconds=users.FREE_ATTEMPTS - 1)
    with pytest.raises(LoginThrottledError) as throttled:  # the right password is not even checked
        users.authenticate(session, "alice", PASSWORD, now=last + dt.timedelta(milliseconds=500))
    assert throttled.value.retry_after == 1
    with pytest.raises(AuthenticationError):  # 1 s later: checked again, wrong again; now 2 s to wait
        users.authenticate(session, "alice", "wrong password", now=last + dt.timedelta(seconds=1))
    with pytest.raises(LoginThrottledError):
        users.authenticate(session, "alice", PASSWORD, now=last + dt.timedelta(seconds=2))
    # unknown names are counted (and slowed down) alike
    for i in range(users.FREE_ATTEMPTS):
        with pytest.raises(AuthenticationError):
            users.authenticate(session, "mallory", "x", now=T0 + dt.timedelta(seconds=i))
    with pytest.raises(LoginThrottledError):
        users.authenticate(session, "Mallory", "x", now=T0 + dt.timedelta(seconds=users.FREE_ATTEMPTS - 0.5))
    user = users.authenticate(session, "alice", PASSWORD, now=last + dt.timedelta(seconds=3))
    assert user.last_login_at == last + dt.timedelta(seconds=3)
    with pytest.raises(AuthenticationError) as again:  # the count started over
        users.authenticate(session, "alice", "wrong password", now=last + dt.timedelta(seconds=3.1))
    assert not isinstance(again.value, LoginThrottledError)


def test_change_log_and_comments_are_append_only(session: Session, pg_url: str, people, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    actor = users.get_user(session, "assessor")
    review.add_comment(session, registry.tcl, "first look", actor=actor, via="api")
    session.commit()
    row = session.scalars(select(AuditLog).where(AuditLog.action == "comment")).one()
    comment = session.scalars(select(SignalComment)).one()
    for target in (row, comment):
        with pytest.raises(AuditTrailError):
            if isinstance(target, AuditLog):
                target.reason = "changed"
            else:
                target.body = "changed"
            session.flush()
        session.rollback()
        with pytest.raises(AuditTrailError):
            session.delete(target)
            session.flush()
        session.rollback()
    for stmt in (update(AuditLog).values(reason="x"), update(SignalComment).values(body="x")):
        with pytest.raises(AuditTrailError):
            session.execute(stmt)
        session.rollback()
    for raw in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM signal_comments"):
        with pytest.raises(AuditTrailError):
            session.execute(text(raw))
        session.rollback()
    # and in the database itself, whatever the client
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        for raw in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log",
                    "UPDATE signal_comments SET body = 'x'", "DELETE FROM signal_comments"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(raw)
            conn.rollback()
    session.expire_all()
    assert session.scalars(select(SignalComment.body)).one() == "first look"


def test_who_manages_users_from_the_command_line(session: Session) -> None:
    assert users.administrator(session, None) is None  # nobody yet: the first administrator is being added
    alice = users.add_user(session, "alice", "admin", PASSWORD, actor=None, via="cli")
    users.add_user(session, "bob", "assessor", PASSWORD, actor=alice, via="cli")
    with pytest.raises(PermissionDeniedError, match="--as NAME"):
        users.administrator(session, None)
    assert users.administrator(session, "alice") is alice
    with pytest.raises(PermissionDeniedError, match="may not manage users"):
        users.administrator(session, "bob")
    with pytest.raises(PermissionDeniedError, match="no user named"):
        users.administrator(session, "carol")


def _stdin(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(value))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_pv_users_commands(pv_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           session: Session) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    assert _run(["users", "add", "alice", "--role", "admin", "--password-stdin"], capsys)[:2] == (
        0, "user alice added (admin)\n")
    _stdin(monkeypatch, PASSWORD + "\n")
    code, _, err = _run(["users", "add", "bob", "--role", "assessor", "--password-stdin"], capsys)
    assert code == 1 and "name an active one with --as NAME" in err
    _stdin(monkeypatch, "short\n")
    code, _, err = _run(["users", "add", "bob", "--role", "assessor", "--password-stdin", "--as", "alice"], capsys)
    assert code == 1 and "at least 12 characters" in err
    _stdin(monkeypatch, PASSWORD + "\n")
    code, out, _ = _run(["users", "add", "bob", "--role", "assessor", "--password-stdin", "--as", "alice",
                         "--reason", "joined safety"], capsys)
    assert code == 0
    code, out, _ = _run(["users", "token", "bob", "--as", "alice"], capsys)
    token = out.strip()
    assert code == 0 and token.startswith("pv_")
    assert users.user_for_token(session, token).name == "bob"
    code, out, _ = _run(["users", "list", "--format", "json"], capsys)
    import json
    listed = json.loads(out)
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [("alice", "admin", True),
                                                                    ("bob", "assessor", True)]
    assert "password" not in out and "argon2" not in out
    code, out, _ = _run(["users", "list"], capsys)
    assert out.splitlines()[0].split() == ["name", "role", "active", "created_at", "last_login_at", "disabled_at"]
    code, out, err = _run(["users", "disable", "bob", "--as", "bob"], capsys)
    assert code == 1 and "may not manage users" in err
    assert _run(["users", "disable", "bob", "--as", "alice", "--reason", "left"], capsys)[:2] == (
        0, "user bob disabled\n")
    session.expire_all()
    with pytest.raises(AuthenticationError):
        users.user_for_token(session, token)
    log = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    assert [(r.by, r.via, r.action) for r in log] == [("pv", "cli", "user_added"), ("alice", "cli", "user_added"),
                                                      ("alice", "cli", "token_created"),
                                                      ("alice", "cli", "user_disabled")]
    assert session.scalars(select(User).where(User.name == "bob")).one().active is False
