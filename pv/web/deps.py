"""What the routes depend on: a database session per request, the authenticated user (API token or signed
session cookie) and the CSRF check of forms.

The session is opened here, handed to the services, rolled back if the request fails and closed at the end; the
routes that change something commit (the services never do).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.errors import AuthenticationError
from pv.models.users import User

bearer = HTTPBearer(auto_error=False, description="An API token made by `pv users token NAME`.")

CSRF_FIELD = "csrf_token"


def db_session(request: Request) -> Iterator[Session]:
    """One session per request (from the app's session factory)."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def api_user(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
             session: Session = Depends(db_session)) -> User:
    """The active user of the request's bearer token (401 without a valid one)."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("an API token is required: Authorization: Bearer <token>")
    user = users.user_for_token(session, credentials.credentials)
    if session.dirty:  # the token's last use, written at most every few minutes
        session.commit()
    return user


def page_user(request: Request, session: Session = Depends(db_session)) -> User:
    """The active user of the request's session cookie (the pages redirect to sign-in without one)."""
    data = request.session
    return users.user_for_session(session, data.get("uid"), data.get("epoch"))


def csrf_token(request: Request) -> str:
    """The CSRF token of the browser session (made on first use; the session cookie carries it, signed)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse (403) a form whose CSRF token is missing or is not the session's."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not expected or not submitted or not hmac.compare_digest(
            expected.encode(), submitted.encode()):
        raise HTTPException(status_code=403, detail="the form's CSRF token is missing or wrong: reload the page")


def new_session(request: Request, user: User) -> None:
    """Start the browser session of a signed-in user: a new CSRF token, the user and their session epoch."""
    request.session.clear()
    request.session.update({"uid": user.id, "epoch": user.session_epoch, "csrf": secrets.token_urlsafe(32)})


__all__ = ["AuthenticationError", "CSRF_FIELD", "api_user", "bearer", "check_csrf", "csrf_token", "db_session",
           "new_session", "page_user"]
