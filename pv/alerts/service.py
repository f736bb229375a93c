"""Queue one alert digest per (run, recipient) in the outbox, and send what is pending.

``queue_digests`` builds each recipient's digest of a run's actionable changes (:mod:`pv.alerts.digest`),
renders it once and adds one outbox row per (run, recipient): ``change_key`` is ``digest:<run_id>`` and the unique
(change_key, recipient) constraint makes it idempotent (queuing the run again, after a crash or a redelivered
task, adds nothing). ``send_pending`` sends the due pending rows one by one, recording each attempt on its row:
success -> ``sent``; a retryable failure (connection refused, timeout, SMTP 4xx) -> stays ``pending`` with
``next_attempt_at`` pushed back exponentially, until ``max_attempts``; a permanent failure (SMTP 5xx) ->
``failed``. Nothing is ever sent twice by it: a row leaves ``pending`` only once, and it is locked (PostgreSQL
``FOR UPDATE SKIP LOCKED``) while it is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pv.alerts.digest import Digest, DigestItem, audit_reasons, build_digests
from pv.alerts.render import render_digest
from pv.alerts.routing import AlertRouting
from pv.alerts.transport import Transport, transport_from_settings
from pv.errors import DeliveryError, InputError
from pv.models.alerts import OUTBOX_STATUSES, AlertOutbox
from pv.settings import get_settings
from pv.signals.changes import SignalChange

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = dt.timedelta(minutes=1)
DIGEST_KIND = "digest"
#: Lines up to the 998 characters RFC 5322 allows: a subject is not folded (Python folds one that fits a line of
#: its own onto a continuation line, which readers then show with a leading space), and the plain-text part,
#: ASCII with lines of a few hundred characters, goes as it is rather than quoted-printable.
MESSAGE_POLICY = default_policy.clone(max_line_length=998)
_CHUNK = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands timestamps back naive; they are stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def digest_key(run_id: int) -> str:
    """The outbox ``change_key`` of a run's digests."""
    return f"{DIGEST_KIND}:{run_id}"


def _message_id(run_id: int, recipient: str, domain: str) -> str:
    rcpt = hashlib.sha256(recipient.casefold().encode()).hexdigest()[:10]
    return f"<pv.{DIGEST_KIND}.{run_id}.{rcpt}.{secrets.token_hex(4)}@{domain}>"


def _json_number(v: float) -> float | str:
    """JSON (and PostgreSQL's json type) has no infinity: an infinite measure (a PRR when no other product has
    the event) is recorded as the string "Infinity" or "-Infinity"."""
    return v if math.isfinite(v) else ("Infinity" if v > 0 else "-Infinity")


def _item_payload(item: DigestItem, depth: int) -> dict[str, Any]:
    data = asdict(item)
    data["measures"] = {k: _json_number(v) for k, v in item.measures.items()}
    data["kinds"] = list(item.kinds)
    data["reasons"] = [list(r) for r in item.reasons]
    data["depth"] = depth
    return data


def _payload(digest: Digest) -> dict[str, Any]:
    """The digest as JSON for the outbox record: its findings with their members."""
    return {
        "run_id": digest.run_id,
        "as_of": digest.as_of.isoformat(),
        "recipient": digest.recipient,
        "routes": list(digest.routes),
        "counts": digest.counts(),
        "signal_ids": [i.signal_id for i in digest.items],
        "findings": [{"product": f.product, "title": f.title,
                      "members": [_item_payload(m.item, m.depth) for m in f.members]}
                     for f in digest.findings],
    }


def queue_digests(
    session: Session,
    changes: Iterable[SignalChange],
    report: str | Path | None = None,
    routing: AlertRouting | None = None,
    base_url: str | None = None,
) -> int:
    """Add one outbox row per (run, recipient) with an actionable change routed to it, unless queued before;
    return how many were added.

    Recipients come from ``routing`` (default: ``<config_dir>/alerts.yaml``); the reasons from the audit trail.
    ``report``: the run's report file (only its name is shown; with ``base_url``, default ``PV_BASE_URL``, the
    email links the review pages instead). The caller commits.
    """
    routing = routing or AlertRouting.load()
    settings = get_settings()
    base_url = base_url if base_url is not None else settings.base_url
    name = Path(report).name if report is not None and "://" not in str(report) else (
        str(report) if report is not None else None)
    domain = settings.smtp_from.rsplit("@", 1)[-1].strip("> ") or "pv.localhost"
    batch = list(changes)
    for change in batch:
        if not isinstance(change, SignalChange):
            raise InputError(f"expected a SignalChange, got {type(change).__name__}", field="changes")
    # what is queued already is neither built nor inserted again (the constraint is the real guard)
    keys = sorted({digest_key(c.run_id) for c in batch})
    seen: set[tuple[str, str]] = set()
    for i in range(0, len(keys), _CHUNK):
        query = select(AlertOutbox.change_key, AlertOutbox.recipient).where(
            AlertOutbox.change_key.in_(keys[i : i + _CHUNK]))
        seen.update((k, r) for k, r in session.execute(query))
    digests = build_digests(batch, routing, audit_reasons(session, batch))
    values: list[dict[str, Any]] = []
    for digest in digests:
        key = digest_key(digest.run_id)
        if (key, digest.recipient) in seen:
            continue
        rendered = render_digest(digest, groups=routing.event_groups, products=routing.products,
                                 base_url=base_url, report=name, subject_prefix=routing.subject_prefix,
                                 max_findings=routing.max_findings)
        lead = digest.findings[0].lead
        now = _now()
        values.append({
            "change_key": key,
            "recipient": digest.recipient,
            "kind": DIGEST_KIND,
            "signal_id": lead.signal_id,  # the most urgent signal of the digest
            "run_id": digest.run_id,
            "product": lead.product,
            "event": lead.event,
            "level": lead.level,
            "payload": _payload(digest),
            "subject": rendered.subject,
            "body_text": rendered.text,
            "body_html": rendered.html,
            "report_path": report_link(base_url, digest.run_id, name),
            "message_id": _message_id(digest.run_id, digest.recipient, domain),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        })
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = 0
    for i in range(0, len(values), _CHUNK):
        stmt = (
            insert(AlertOutbox)
            .on_conflict_do_nothing(index_elements=["change_key", "recipient"])
            .returning(AlertOutbox.id)
        )
        # rows a concurrent queuer inserted first are skipped and not returned
        added += len(session.execute(stmt, values[i : i + _CHUNK]).all())
    session.flush()
    return added


def report_link(base_url: str | None, run_id: int, name: str | None) -> str | None:
    """What the outbox records of the report: its review page, or its file name (never a server path)."""
    return f"{base_url}/runs/{run_id}/report" if base_url else name


def build_message(row: AlertOutbox, from_addr: str | None = None) -> EmailMessage:
    """The email of one outbox row: plain text and HTML alternatives, the row's fixed Message-ID, and headers
    naming the run and its signals (X-PV-Change-Key, X-PV-Run-Id, X-PV-Signal-Ids)."""
    msg = EmailMessage(policy=MESSAGE_POLICY)
    msg["Subject"] = row.subject
    msg["From"] = from_addr or get_settings().smtp_from
    msg["To"] = row.recipient
    msg["Date"] = format_datetime(_now())
    msg["Message-ID"] = row.message_id
    msg["X-PV-Change-Key"] = row.change_key
    msg["X-PV-Run-Id"] = str(row.run_id)
    if row.kind == DIGEST_KIND:
        ids = (row.payload or {}).get("signal_ids") or [row.signal_id]
        msg["X-PV-Signal-Ids"] = " ".join(str(i) for i in ids)
    else:  # a per-change alert queued before the digests
        msg["X-PV-Signal-Id"] = str(row.signal_id)
    msg.set_content(row.body_text)
    msg.add_alternative(row.body_html, subtype="html")
    return msg


@dataclass
class SendSummary:
    """What one ``send_pending`` pass did."""

    transport: str
    dry_run: bool = False
    attempted: int = 0
    sent: int = 0
    retry_later: int = 0  # retryable failure, still pending
    failed: int = 0  # became failed in this pass
    would_send: int = 0  # dry run: due pending rows
    not_due: int = 0  # pending, waiting for their next attempt
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.retry_later == 0 and self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _due(now: dt.datetime, max_attempts: int):  # type: ignore[no-untyped-def]
    return (
        select(AlertOutbox)
        .where(AlertOutbox.status == "pending")
        .where(AlertOutbox.attempts < max_attempts)
        .where((AlertOutbox.next_attempt_at.is_(None)) | (AlertOutbox.next_attempt_at <= now))
        .order_by(AlertOutbox.id)
    )


def send_pending(
    session: Session,
    transport: Transport | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: dt.timedelta = DEFAULT_BACKOFF,
    dry_run: bool = False,
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> SendSummary:
    """Send every due pending alert once; record each outcome on its row. Never raises for delivery errors.

    Unlike most services this one COMMITS after each message, so that a message sent is recorded as sent even
    if the process dies just after. A retryable failure leaves the row pending, due again after
    ``backoff * 2**(attempts-1)``; after ``max_attempts`` attempts, or on a permanent failure, the row is
    ``failed`` (``pv alerts retry`` queues it again). ``dry_run`` only counts what would be sent.
    """
    if max_attempts < 1:
        raise InputError("max_attempts must be at least 1", field="max_attempts")
    transport = transport or transport_from_settings()
    summary = SendSummary(transport=transport.describe(), dry_run=dry_run)
    now = now or _now()
    from_addr = get_settings().smtp_from
    pending = select(AlertOutbox.id, AlertOutbox.next_attempt_at).where(AlertOutbox.status == "pending")
    for _id, next_at in session.execute(pending):
        next_at = _aware(next_at)
        if next_at is not None and next_at > now:
            summary.not_due += 1
    if dry_run:
        summary.would_send = len(session.scalars(_due(now, max_attempts)).all())
        return summary
    _fail_exhausted(session, max_attempts, summary)
    tried: set[int] = set()
    while limit is None or summary.attempted < limit:
        query = _due(now, max_attempts)
        if tried:
            query = query.where(AlertOutbox.id.not_in(tried))
        row = session.scalars(query.limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            break
        tried.add(row.id)
        _attempt(session, row, transport, from_addr, max_attempts, backoff, summary)
        session.commit()
    return summary


def _fail_exhausted(session: Session, max_attempts: int, summary: SendSummary) -> None:
    """Pending rows that already used up their attempts (max_attempts was lowered) become failed."""
    rows = session.scalars(
        select(AlertOutbox)
        .where(AlertOutbox.status == "pending", AlertOutbox.attempts >= max_attempts)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.status = "failed"
        row.updated_at = _now()
        note = f"[gave up: {row.attempts} attempts >= {max_attempts}]"
        row.last_error = f"{row.last_error or ''} {note}".strip()
        summary.failed += 1
    if rows:
        session.commit()


def _attempt(
    session: Session,
    row: AlertOutbox,
    transport: Transport,
    from_addr: str,
    max_attempts: int,
    backoff: dt.timedelta,
    summary: SendSummary,
) -> None:
    started = _now()
    row.attempts += 1
    row.last_attempt_at = started
    row.updated_at = started
    row.transport = transport.name
    summary.attempted += 1
    try:
        transport.send(build_message(row, from_addr))
    except DeliveryError as exc:
        error, retryable = exc.reason, exc.retryable
    except Exception as exc:  # a transport bug must not lose the alert: record it, retry later
        log.exception("alert %s: unexpected error from %s", row.id, transport.name)
        error, retryable = f"unexpected {type(exc).__name__}: {exc}", True
    else:
        row.status = "sent"
        row.sent_at = _now()
        row.next_attempt_at = None
        row.last_error = None
        summary.sent += 1
        return
    row.last_error = f"attempt {row.attempts} at {started.isoformat(timespec='seconds')}: {error}"
    summary.errors.append(f"alert {row.id} to {row.recipient}: {error}")
    if retryable and row.attempts < max_attempts:
        row.next_attempt_at = started + backoff * (2 ** (row.attempts - 1))
        summary.retry_later += 1
        log.warning("alert %s to %s: %s (retry later)", row.id, row.recipient, error)
    else:
        row.status = "failed"
        row.next_attempt_at = None
        summary.failed += 1
        log.error("alert %s to %s failed: %s", row.id, row.recipient, error)


def list_alerts(session: Session, status: str | None = None, limit: int | None = None) -> list[AlertOutbox]:
    """Outbox rows, newest first, optionally of one status."""
    query = select(AlertOutbox).order_by(AlertOutbox.id.desc())
    if status is not None:
        if status not in OUTBOX_STATUSES:
            known = ", ".join(OUTBOX_STATUSES)
            raise InputError(f"unknown status {status!r} (one of {known})", field="status")
        query = query.where(AlertOutbox.status == status)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def retry_failed(session: Session, ids: Iterable[int] | None = None) -> int:
    """Put failed rows (all, or those in ``ids``) back to pending with a fresh attempt budget.

    The caller commits."""
    query = select(AlertOutbox).where(AlertOutbox.status == "failed")
    wanted = list(ids) if ids is not None else None
    if wanted is not None:
        query = query.where(AlertOutbox.id.in_(wanted))
    rows = session.scalars(query).all()
    for row in rows:
        row.status = "pending"
        row.attempts = 0
        row.next_attempt_at = None
        row.updated_at = _now()
    session.flush()
    return len(rows)


def outbox_row_dict(row: AlertOutbox) -> dict[str, Any]:
    """A row for listings (JSON): everything but the bodies and the payload; ``signals``: how many signals the
    email tells of (``signal_id``, ``product``, ``event``, ``level``: its most urgent one)."""

    def iso(value: dt.datetime | None) -> str | None:
        value = _aware(value)
        return value.isoformat(timespec="seconds") if value else None

    return {
        "id": row.id,
        "change_key": row.change_key,
        "recipient": row.recipient,
        "kind": row.kind,
        "signal_id": row.signal_id,
        "run_id": row.run_id,
        "product": row.product,
        "event": row.event,
        "level": row.level,
        "signals": len((row.payload or {}).get("signal_ids") or []) if row.kind == DIGEST_KIND else 1,
        "subject": row.subject,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "message_id": row.message_id,
        "transport": row.transport,
        "report_path": row.report_path,
        "created_at": iso(row.created_at),
        "last_attempt_at": iso(row.last_attempt_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "sent_at": iso(row.sent_at),
    }
