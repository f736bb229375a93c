"""Users: adding, listing, disabling; passwords (argon2), API tokens (sha256 of a random token) and sign-in with
failed attempts slowed down.

Sign-in: after :data:`FREE_ATTEMPTS` consecutive failures for a name (known or not), each further attempt is
refused unchecked until ``2 ** (failures - FREE_ATTEMPTS)`` seconds (at most :data:`MAX_DELAY`) have passed since
the last failure; a success clears the count. Unknown names cost the same argon2 verification as known ones.

Every change is recorded in the change log (:mod:`pv.accounts.audit`). The caller commits, including after a
failed sign-in (the failure count is the throttle's state).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pv.accounts import roles
from pv.accounts.audit import record_change
from pv.errors import (
    AuthenticationError,
    InputError,
    LoginThrottledError,
    NotFoundError,
    PermissionDeniedError,
)
from pv.models.users import ApiToken, LoginFailure, User

FREE_ATTEMPTS = 5
MAX_DELAY = 900  # seconds
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOKEN_PREFIX = "pv_"
#: A token's last use is written at most this often (a read through the API then costs no write).
TOKEN_USE_RESOLUTION = dt.timedelta(minutes=5)


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, the library's RFC 9106 low-memory parameters


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_name(name: str) -> str:
    """A user name: 1 to 100 characters, no control characters, no spaces at either end."""
    if not name or name != name.strip():
        raise InputError("a user name must not be empty nor start or end with a space", field="name")
    if len(name) > 100:
        raise InputError("a user name has at most 100 characters", field="name")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InputError("a user name must not contain control characters", field="name")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password has at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"a password has at most {MAX_PASSWORD} characters", field="password")
    return password


def check_role(role: str) -> str:
    if role not in roles.ROLES:
        raise InputError(f"unknown role {role!r}; roles are: {', '.join(roles.ROLES)}", field="role")
    return role


def user_as_dict(user: User) -> dict[str, object]:
    return {"id": user.id, "name": user.name, "role": user.role, "active": user.active,
            "created_at": user.created_at.isoformat(),
            "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None}


def _state(user: User) -> dict[str, object]:
    return {"name": user.name, "role": user.role, "active": user.active}


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.active.is_(True),
                                                                       User.role == "admin")) or 0


def acting_user(session: Session, name: str, permission: str) -> User:
    """The active user ``name`` who acts (``--as NAME``), holding ``permission``."""
    try:
        user = get_user(session, name)
    except NotFoundError as exc:
        raise PermissionDeniedError(str(exc)) from exc
    if not user.active:
        raise PermissionDeniedError(f"user {name!r} is disabled")
    if not roles.can(user.role, permission):
        raise PermissionDeniedError(f"user {name!r} ({user.role}) may not {permission.replace('_', ' ')}")
    return user


def administrator(session: Session, name: str | None) -> User | None:
    """Who manages users from the command line: the active administrator ``name``; while no active administrator
    exists (the first one is being added), nobody (the change log then names the system)."""
    if name is not None:
        return acting_user(session, name, roles.MANAGE_USERS)
    if active_admins(session):
        raise PermissionDeniedError("users are managed by an administrator: name an active one with --as NAME")
    return None


def add_user(session: Session, name: str, role: str, password: str, *, actor: User | None, via: str,
             reason: str = "") -> User:
    """Add a user (names are unique, regardless of case). The caller commits."""
    check_name(name)
    check_role(role)
    check_password(password)
    if actor is not None and not roles.can(actor.role, roles.MANAGE_USERS):
        raise PermissionDeniedError(f"user {actor.name!r} ({actor.role}) may not manage users")
    if session.scalars(select(User).where(func.lower(User.name) == name.lower())).first() is not None:
        raise InputError(f"a user named {name!r} exists already", field="name")
    user = User(name=name, role=role, password_hash=hash_password(password), active=True, session_epoch=0)
    session.add(user)
    session.flush()
    record_change(session, actor=actor, via=via, entity="user", entity_id=user.id, action="user_added",
                  before=None, after=_state(user), reason=reason or f"added as {role}")
    return user


def disable_user(session: Session, name: str, *, actor: User | None, via: str, reason: str = "") -> User:
    """Disable a user: no more sign-in, sessions or API tokens (the tokens are revoked). The last active
    administrator cannot be disabled. The caller commits."""
    user = get_user(session, name)
    if actor is not None and not roles.can(actor.role, roles.MANAGE_USERS):
        raise PermissionDeniedError(f"user {actor.name!r} ({actor.role}) may not manage users")
    if not user.active:
        raise InputError(f"user {name!r} is disabled already", field="name")
    if user.role == "admin" and active_admins(session) <= 1:
        raise InputError("the last active administrator cannot be disabled", field="name")
    before = _state(user)
    now = dt.datetime.now(dt.UTC)
    user.active = False
    user.disabled_at = now
    user.session_epoch += 1
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now))
    session.flush()
    record_change(session, actor=actor, via=via, entity="user", entity_id=user.id, action="user_disabled",
                  before=before, after=_state(user), reason=reason or "disabled")
    return user


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes (stored in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str, *, actor: User | None, via: str) -> tuple[ApiToken, str]:
    """A new API token for the active user ``name``: the stored row and the token, which is never stored (only
    its sha256) and so can be shown only now. The caller commits."""
    user = get_user(session, name)
    if not user.active:
        raise InputError(f"user {name!r} is disabled", field="name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_sha256=_sha256(token), prefix=token[:10])
    session.add(row)
    session.flush()
    record_change(session, actor=actor, via=via, entity="user", entity_id=user.id, action="token_created",
                  before=None, after={"token_id": row.id, "prefix": row.prefix}, reason=f"API token for {name}")
    return row, token


def user_for_token(session: Session, token: str) -> User:
    """The active user of a valid, unrevoked API token; AuthenticationError otherwise."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == _sha256(token))).first()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("invalid or revoked API token")
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise AuthenticationError("invalid or revoked API token")
    now = dt.datetime.now(dt.UTC)
    if row.last_used_at is None or now - _aware(row.last_used_at) > TOKEN_USE_RESOLUTION:
        row.last_used_at = now
    return user


def user_for_session(session: Session, user_id: object, epoch: object) -> User:
    """The active user a session cookie names, if the cookie was issued in the user's current session epoch."""
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or user.session_epoch != epoch:
        raise AuthenticationError("not signed in")
    return user


def _throttle_key(name: str) -> str:
    return name.strip().lower()[:100]


def authenticate(session: Session, name: str, password: str, *, now: dt.datetime | None = None) -> User:
    """The active user with this name and password. Raises LoginThrottledError while failed attempts for the name
    are slowed down, AuthenticationError for a wrong name or password or a disabled user. The caller commits in
    every case (the failure count is kept in the database)."""
    now = now or dt.datetime.now(dt.UTC)
    key = _throttle_key(name)
    failure = session.get(LoginFailure, key) if key else None
    if failure is not None and failure.failures >= FREE_ATTEMPTS:
        wait = min(2 ** (failure.failures - FREE_ATTEMPTS), MAX_DELAY)
        left = (_aware(failure.last_failed_at) + dt.timedelta(seconds=wait) - now).total_seconds()
        if left > 0:
            raise LoginThrottledError(f"too many failed sign-ins: try again in {int(left) + 1} s",
                                      retry_after=int(left) + 1)
    user = session.scalars(select(User).where(User.name == name)).first() if name else None
    ok = False
    try:
        ok = _hasher().verify(user.password_hash if user is not None else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active:
        if key:
            if failure is None:
                failure = LoginFailure(name=key, failures=0)
                session.add(failure)
            failure.failures += 1
            failure.last_failed_at = now
            session.flush()
        raise AuthenticationError("wrong name or password, or the account is disabled")
    if failure is not None:
        session.delete(failure)
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    session.flush()
    return user


def end_sessions(session: Session, user: User) -> None:
    """Sign the user out everywhere: every session cookie issued so far is refused. The caller commits."""
    user.session_epoch += 1
    session.flush()
