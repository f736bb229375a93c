"""The HTTP API (JSON under /api; OpenAPI at /openapi.json). Every route needs an API token
(``Authorization: Bearer``): 401 without a valid one. 403: a role without the right; 404: an unknown id; 409: a
transition the lifecycle does not allow (the answer names the allowed ones); 422: a malformed request."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from pv.accounts import users as user_service
from pv.analysis import runs as run_service
from pv.errors import InvalidTransitionError
from pv.models.users import User
from pv.signals import lifecycle, review
from pv.signals.cases import case_listing
from pv.signals.queries import SignalFilter, find_signals, findings_as_dicts, get_signal
from pv.web.deps import api_user, db_session

router = APIRouter(prefix="/api", tags=["api"])

DbSession = Annotated[Session, Depends(db_session)]
ApiUser = Annotated[User, Depends(api_user)]


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal[lifecycle.STATES] = Field(description="The target status.")  # type: ignore[valid-type]
    reason: str = Field(min_length=1, max_length=review.MAX_TEXT, description="Why (recorded in the audit trail).")


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=review.MAX_TEXT)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(description="An active assessor or approver; null unassigns.")
    due: dt.date | None = Field(default=None, description="Due date (YYYY-MM-DD).")
    reason: str = Field(default="", max_length=review.MAX_TEXT)


def signal_filter(
    all: bool = Query(False, description="Every tracked signal, not only the action queue."),  # noqa: A002
    status: str | None = Query(None, description=f"One of: {', '.join(lifecycle.STATES)}."),
    product: str | None = Query(None, description="Any spelling of a product."),
    flagged: bool | None = Query(None, description="Flagged 'label update recommended' (true) or not (false)."),
    unlabelled: bool = Query(False, description="Unlabelled in at least one judged jurisdiction."),
    jurisdiction: str | None = Query(None, description="Unlabelled in this jurisdiction (FDA, NMPA, EMA)."),
    changed_since: dt.date | None = Query(None, description="An audit entry on or after this date (UTC)."),
    event: str | None = Query(None, description="A PT or event group name."),
    group: str | None = Query(None, description="An event group, the groups within it and its PTs."),
    min_eb05: float | None = Query(None),
    min_n: float | None = Query(None),
    min_priority: float | None = Query(None),
) -> SignalFilter:
    """The triage filters of ``pv signals``, as query parameters."""
    return SignalFilter(all_findings=all, status=status or None, product=product or None, flagged=flagged,
                        unlabelled=unlabelled, jurisdiction=jurisdiction or None, changed_since=changed_since,
                        event=event or None, group=group or None, min_eb05=min_eb05, min_n=min_n,
                        min_priority=min_priority)


@router.get("/me")
def me(user: ApiUser) -> dict[str, Any]:
    """The user of the token."""
    return user_service.user_as_dict(user)


@router.get("/signals")
def signals(user: ApiUser, session: DbSession, filters: Annotated[SignalFilter, Depends(signal_filter)],
            page: int = Query(1, ge=1), per_page: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """The action queue (or, with the filters, any signals) as findings, most urgent first, a page of findings
    at a time; items as ``pv signals --format json`` prints them (one per finding, its signals as members)."""
    found = findings_as_dicts(find_signals(session, filters))
    start = (page - 1) * per_page
    return {"items": found[start:start + per_page], "total": len(found), "page": page, "per_page": per_page}


@router.get("/signals/{signal_id}")
def signal(signal_id: int, user: ApiUser, session: DbSession, request: Request) -> dict[str, Any]:
    """One signal: measures and trend, labels per jurisdiction, evidence, audit trail, comments, assignment,
    validation due date, the service's change log, and the transitions the token's user may make."""
    return review.review_detail(session, signal_id, due_days=request.app.state.settings.validation_due_days,
                                actor=user)


@router.get("/signals/{signal_id}/cases", response_model=None)
def cases(signal_id: int, user: ApiUser, session: DbSession,
          format: Literal["json", "csv"] = Query("json")) -> dict[str, Any] | Response:  # noqa: A002
    """The line listing: one row per case counted in the signal's latest run. ``?format=csv`` for CSV."""
    listing = case_listing(session, signal_id)
    if format == "csv":
        name = f"signal-{signal_id}-cases-run-{listing.run_id}.csv"
        return Response(listing.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return listing.as_dict()


@router.post("/signals/{signal_id}/transitions", response_model=None)
def transition(signal_id: int, body: Transition, user: ApiUser, session: DbSession) -> dict[str, Any] | Response:
    """Move the signal through the lifecycle (assessors: validation and assessment; approvers: the decision that
    follows an assessment, never on a signal they assessed)."""
    before = get_signal(session, signal_id).status
    try:
        sig = review.transition(session, signal_id, body.to, body.reason, actor=user, via="api")
    except InvalidTransitionError as exc:
        session.rollback()
        return JSONResponse({"detail": str(exc), "allowed": list(lifecycle.allowed_targets(before))},
                            status_code=409)
    session.commit()
    return {"id": sig.id, "from": before, "status": sig.status, "by": user.name}


@router.post("/signals/{signal_id}/comments", status_code=201)
def comment(signal_id: int, body: Comment, user: ApiUser, session: DbSession) -> dict[str, Any]:
    """Comment on the signal (no status change)."""
    c = review.add_comment(session, signal_id, body.text, actor=user, via="api")
    session.commit()
    return {"id": c.id, "signal_id": c.signal_id, "at": c.at.isoformat(), "by": c.by, "body": c.body}


@router.post("/signals/{signal_id}/assignment")
def assignment(signal_id: int, body: Assignment, user: ApiUser, session: DbSession) -> dict[str, Any]:
    """Assign the signal to a user with a due date (``{"user": null}`` unassigns)."""
    after = review.assign(session, signal_id, body.user, body.due, actor=user, via="api", reason=body.reason)
    session.commit()
    return {"signal_id": signal_id, "assignment": after}


@router.get("/runs")
def runs(user: ApiUser, session: DbSession, limit: int | None = Query(None, ge=1)) -> list[dict[str, Any]]:
    """Analysis runs, most recent first."""
    return [run_service.run_summary(r) for r in run_service.list_runs(session, limit)]
