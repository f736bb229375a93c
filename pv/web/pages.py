"""The pages, rendered on the server (Jinja2, autoescaped; no script). Signed in with a session cookie; every
form carries the session's CSRF token."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from pv.accounts import roles
from pv.accounts import users as user_service
from pv.analysis.runs import get_run
from pv.errors import (
    AuthenticationError,
    InputError,
    InvalidTransitionError,
    LoginThrottledError,
    NotFoundError,
    PermissionDeniedError,
)
from pv.models.users import User
from pv.report.render import report_files
from pv.signals import lifecycle, review
from pv.signals.cases import case_listing
from pv.signals.queries import QUEUE_REASONS, SignalFilter, find_signals
from pv.web.deps import check_csrf, csrf_token, db_session, new_session, page_user

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined))

router = APIRouter(include_in_schema=False)

DbSession = Annotated[Session, Depends(db_session)]
PageUser = Annotated[User, Depends(page_user)]

#: Cases listed on a signal's page (the CSV export has them all).
CASES_SHOWN = 500

#: Queue filters of the page form: name -> kind.
FILTERS = {"status": "text", "product": "text", "event": "text", "group": "text", "jurisdiction": "text",
           "changed_since": "date", "min_eb05": "number", "min_n": "number", "min_priority": "number",
           "unlabelled": "flag", "flagged": "flag", "all": "flag"}


def render(request: Request, name: str, context: Mapping[str, Any], status_code: int = 200,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    ctx = {"csrf": csrf_token(request), "user": None, "roles": roles, **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=dict(headers or {}))


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/signals"
    return target


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/signals", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/signals") -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", {"next": safe_next(next), "error": None, "name": ""})


@router.post("/login")
def login(request: Request, session: DbSession, name: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/signals") -> Response:  # noqa: A002
    check_csrf(request, csrf_token)
    target = safe_next(next)
    try:
        user = user_service.authenticate(session, name, password)
    except LoginThrottledError as exc:
        session.commit()
        return render(request, "login.html", {"next": target, "error": str(exc), "name": name}, status_code=429,
                      headers={"Retry-After": str(exc.retry_after)})
    except AuthenticationError as exc:
        session.commit()  # the failure counts
        return render(request, "login.html", {"next": target, "error": str(exc), "name": name}, status_code=401)
    session.commit()
    new_session(request, user)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, user: PageUser, session: DbSession,
           csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    check_csrf(request, csrf_token)
    user_service.end_sessions(session, user)
    session.commit()
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def page_filters(params: Mapping[str, str]) -> tuple[SignalFilter, dict[str, str]]:
    """The queue filters of the page's form (blank fields ignored); InputError names a bad value."""
    values = {k: params.get(k, "").strip() for k in FILTERS}

    def number(key: str) -> float | None:
        if not values[key]:
            return None
        try:
            return float(values[key])
        except ValueError:
            raise InputError(f"not a number: {values[key]!r}", field=key) from None

    since = None
    if values["changed_since"]:
        try:
            since = dt.date.fromisoformat(values["changed_since"])
        except ValueError:
            raise InputError(f"not a date (YYYY-MM-DD): {values['changed_since']!r}", field="changed_since") from None
    flag = {k: values[k].lower() in ("1", "on", "true", "yes") for k in ("unlabelled", "flagged", "all")}
    f = SignalFilter(all_findings=flag["all"], status=values["status"] or None, product=values["product"] or None,
                     flagged=True if flag["flagged"] else None, unlabelled=flag["unlabelled"],
                     jurisdiction=values["jurisdiction"] or None, changed_since=since, event=values["event"] or None,
                     group=values["group"] or None, min_eb05=number("min_eb05"), min_n=number("min_n"),
                     min_priority=number("min_priority"))
    return f, values


@router.get("/signals")
def queue(request: Request, user: PageUser, session: DbSession) -> HTMLResponse:
    settings = request.app.state.settings
    error = None
    try:
        filters, values = page_filters(request.query_params)
        found = find_signals(session, filters)
    except InputError as exc:
        error, found, values = str(exc), [], {k: request.query_params.get(k, "") for k in FILTERS}
    ids = [f.signal.id for f in found]
    assignments = review.assignments_of(session, ids)
    today = dt.date.today()
    rows = []
    for f in found:
        rows.append({**f.as_dict(), "assignment": assignments.get(f.signal.id),
                     "validation": review.validation_due(f.signal, settings.validation_due_days, today)})
    counts = Counter(r for f in found for r in f.needs_decision)
    overdue = sum(1 for r in rows if r["validation"]["overdue"])
    query = urlencode({k: v for k, v in values.items() if v})
    return render(request, "queue.html", {
        "user": user, "rows": rows, "values": values, "error": error, "statuses": lifecycle.STATES,
        "counts": [(r, counts.get(r, 0)) for r in QUEUE_REASONS], "overdue": overdue, "query": query,
    }, status_code=422 if error else 200)


def _signal_page(request: Request, session: Session, user: User, signal_id: int, *, error: str | None = None,
                 status_code: int = 200) -> HTMLResponse:
    settings = request.app.state.settings
    detail = review.review_detail(session, signal_id, due_days=settings.validation_due_days, actor=user)
    listing = case_listing(session, signal_id)
    flash = request.session.pop("flash", None)
    return render(request, "signal.html", {"user": user, "s": detail, "listing": listing, "error": error,
                                           "flash": flash, "shown": listing.rows[:CASES_SHOWN]},
                  status_code=status_code)


@router.get("/signals/{signal_id}")
def signal_page(signal_id: int, request: Request, user: PageUser, session: DbSession) -> HTMLResponse:
    return _signal_page(request, session, user, signal_id)


@router.get("/signals/{signal_id}/cases.csv")
def cases_csv(signal_id: int, user: PageUser, session: DbSession) -> Response:
    listing = case_listing(session, signal_id)
    name = f"signal-{signal_id}-cases-run-{listing.run_id}.csv"
    return Response(listing.to_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/signals/{signal_id}/transition")
def transition(signal_id: int, request: Request, user: PageUser, session: DbSession,
               to: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
               csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    try:
        sig = review.transition(session, signal_id, to, reason, actor=user, via="web")
    except (InvalidTransitionError, PermissionDeniedError, InputError) as exc:
        session.rollback()
        code = 409 if isinstance(exc, InvalidTransitionError) else 403 if isinstance(
            exc, PermissionDeniedError) else 422
        return _signal_page(request, session, user, signal_id, error=str(exc), status_code=code)
    session.commit()
    request.session["flash"] = f"signal {sig.id} is now {sig.status}"
    return RedirectResponse(f"/signals/{signal_id}", status_code=303)


@router.post("/signals/{signal_id}/comment")
def comment(signal_id: int, request: Request, user: PageUser, session: DbSession,
            text: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    try:
        review.add_comment(session, signal_id, text, actor=user, via="web")
    except (PermissionDeniedError, InputError) as exc:
        session.rollback()
        code = 403 if isinstance(exc, PermissionDeniedError) else 422
        return _signal_page(request, session, user, signal_id, error=str(exc), status_code=code)
    session.commit()
    request.session["flash"] = "comment added"
    return RedirectResponse(f"/signals/{signal_id}#comments", status_code=303)


@router.get("/runs/{run_id}/report")
def run_report(run_id: int, request: Request, user: PageUser, session: DbSession,
               format: str = "html") -> Response:  # noqa: A002
    """The weekly report of a run, as the cycle wrote it (the alert digests link here): HTML, or ``?format=pdf``.
    The HTML holds its figures (data URIs): the page needs nothing else."""
    if format not in ("html", "pdf"):
        raise InputError(f"unknown format {format!r}; expected html or pdf", field="format")
    run = get_run(session, run_id)
    files = report_files(Path(request.app.state.settings.var_dir) / "reports", run.as_of, run.id)
    path = files.pdf if format == "pdf" else files.html
    if not path.is_file():
        raise NotFoundError(f"run {run_id} has no weekly report yet (the cycle writes it after the evaluation)")
    return FileResponse(path, media_type="application/pdf" if format == "pdf" else "text/html; charset=utf-8")


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(request, "error.html", {"status": status_code, "message": message}, status_code=status_code)


__all__ = ["error_page", "router", "safe_next", "templates"]
