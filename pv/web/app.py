"""The review service's ASGI app: :func:`create_app` builds it on pv's settings (the same database as every other
command; migrated on first use), with the pages, the API, the signed session cookie and the error answers.

Errors: the services raise :mod:`pv.errors`; the API answers them as JSON ``{"detail": ...}`` with 401, 403,
404, 409 or 422, the pages as an HTML page with the same status (401 on a page: to the sign-in form instead).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pv import db
from pv.errors import (
    AuditTrailError,
    AuthenticationError,
    InputError,
    InvalidTransitionError,
    LoginThrottledError,
    NotFoundError,
    PermissionDeniedError,
    PvError,
)
from pv.settings import Settings, get_settings
from pv.web import api, pages

SESSION_COOKIE = "pv_session"
#: No script, no frames, nothing from another origin; the pages' one stylesheet is inline; images of the weekly
#: report are data URIs.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def secret_key(settings: Settings) -> str:
    """``PV_SECRET_KEY``, or the key kept in ``var_dir/secret_key`` (made, readable by its owner only, on first
    use), so that sessions outlive a restart and every server process on the machine signs alike."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.var_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


_STATUS: list[tuple[type[PvError], int]] = [
    (LoginThrottledError, 429),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (InvalidTransitionError, 409),
    (AuditTrailError, 409),
    (InputError, 422),
]


def status_of(exc: PvError) -> int:
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return 400


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The review service on ``settings`` (default: pv's settings from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(title="pv review service", version="1", docs_url=None, redoc_url=None,
                  description="Signals, their cases and the decisions on them. Token: `pv users token NAME`.")
    app.state.settings = settings
    app.state.sessionmaker = sessionmaker(bind=db.get_engine(settings.database_url), expire_on_commit=False)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_middleware(SessionMiddleware, secret_key=secret_key(settings), session_cookie=SESSION_COOKIE,
                       max_age=settings.session_max_age, same_site="lax",
                       https_only=(settings.base_url or "").startswith("https://"))
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(PvError)
    def pv_error(request: Request, exc: PvError) -> Response:
        code = status_of(exc)
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
            return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)
        if code == 401:  # to the sign-in form, and back to the page (a form posted goes back to the queue)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/signals"
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return pages.error_page(request, code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return pages.error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()]
        if _is_api(request):
            return JSONResponse({"detail": errors}, status_code=422)
        return pages.error_page(request, 422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                        for e in errors))

    return app
