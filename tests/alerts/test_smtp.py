"""Delivery over SMTP to real local servers (aiosmtpd): success, refusals, closed ports, hanging servers."""

from __future__ import annotations

import datetime as dt
import threading
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.alerts import SMTPTransport, queue_digests, retry_failed, send_pending
from pv.alerts.routing import AlertRouting
from pv.errors import DeliveryError
from pv.models.alerts import AlertOutbox
from tests.alerts.conftest import SMTPServer, make_change

NOW = dt.timedelta(0)
HBV = make_change(signal_id=12, event="hepatitis b reactivation")  # routed to the officer only


def _rows(session: Session) -> list[AlertOutbox]:
    session.expire_all()
    return list(session.scalars(select(AlertOutbox).order_by(AlertOutbox.id)))


ICANS = make_change(kind="escalated", signal_id=14, run_id=3, product="axicabtagene ciloleucel",
                    event="immune effector cell-associated neurotoxicity syndrome", status="new",
                    priority=0.9, measures={"n": 18, "prr": 5.5, "prr_chi2": 70.4, "ror": 5.9,
                                            "ror_lower": 3.6, "ic025": 1.9, "eb05": 3.3},
                    labelled={"FDA": True}, serious_cases=17, deaths=2)


def _queue_three(session: Session, routing: AlertRouting) -> None:
    """Two cycles: run 3 (Kymriah CRS: officer and Kymriah team; Yescarta ICANS escalated: officer) and run 4
    (Kymriah HBV: officer) -- three digests, the officer's of run 3 telling of two signals."""
    assert queue_digests(session, [make_change(), ICANS], report="/srv/pv/reports/2024-W40/report.html",
                         routing=routing) == 2
    assert queue_digests(session, [make_change(signal_id=12, run_id=4, event="hepatitis b reactivation")],
                         routing=routing) == 1
    session.commit()


def test_digests_delivered_and_parsed_back(
    session: Session, small_routing: AlertRouting, smtp_server: SMTPServer
) -> None:
    _queue_three(session, small_routing)
    transport = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)
    summary = send_pending(session, transport)
    assert (summary.attempted, summary.sent, summary.failed, summary.retry_later) == (3, 3, 0, 0)
    assert summary.transport == f"SMTP 127.0.0.1:{smtp_server.port}"

    got = smtp_server.handler.messages
    assert len(got) == 3
    # at most one email per recipient per cycle
    assert sorted((rcpts[0], str(m["X-PV-Change-Key"])) for rcpts, m in got) == [
        ("kymriah@example.org", "digest:3"), ("officer@example.org", "digest:3"), ("officer@example.org", "digest:4"),
    ]
    for rcpts, msg in got:
        assert len(rcpts) == 1 and msg["To"] == rcpts[0]
        assert msg["From"] == "pv-alerts@pv.example.org"
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
    officer = next(m for r, m in got if r == ["officer@example.org"] and m["X-PV-Change-Key"] == "digest:3")
    assert officer["Subject"] == "[pv-test] 2024-09-30: 1 escalation, 1 new signal (Yescarta, Kymriah)"
    assert officer["X-PV-Signal-Ids"] == "14 11"  # most urgent first: the escalation, then the new signal
    plain = officer.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = officer.get_body(("html",)).get_content()  # type: ignore[union-attr]
    first, second = plain.index("1. ESCALATED: Yescarta (axicabtagene ciloleucel) / Immune effector"), \
        plain.index("2. NEW SIGNAL: Kymriah (tisagenlecleucel) / Cytokine release syndrome")
    assert first < second
    for line in ("Figures: n 18; EB05 3.30; PRR 5.50 (chi-square 70.40); ROR lower 95% 3.60; IC025 1.90; "
                 "serious 17; deaths 2", "On the label: FDA labelled", "Now: status new, priority 0.9",
                 "Review: pv signal show 14", "Weekly report of run 3: report.html"):
        assert line in plain, line
    assert "/srv/pv" not in plain and "/srv/pv" not in html
    assert "ESCALATED</span>: Yescarta (axicabtagene ciloleucel)" in html

    rows = _rows(session)
    outcome = [(r.status, r.attempts, r.last_error, r.transport) for r in rows]
    assert outcome == [("sent", 1, None, "smtp")] * 3
    assert {r.message_id for r in rows} == {str(m["Message-ID"]) for _, m in got}

    # a second send sends nothing, nor does queuing the cycles again
    again = send_pending(session, transport)
    assert (again.attempted, again.sent) == (0, 0)
    _queue_again = queue_digests(session, [make_change(), ICANS], routing=small_routing)
    assert _queue_again == 0 and send_pending(session, transport).attempted == 0
    assert len(smtp_server.handler.messages) == 3


def test_temporary_refusal_is_retried_then_recorded_then_delivered(
    session: Session, small_routing: AlertRouting, smtp_server: SMTPServer
) -> None:
    _queue_three(session, small_routing)
    smtp_server.handler.refuse = "451 4.3.0 Mailbox temporarily unavailable"
    transport = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)

    first = send_pending(session, transport, max_attempts=3, backoff=NOW)
    assert (first.attempted, first.sent, first.retry_later, first.failed) == (3, 0, 3, 0)
    assert not first.ok
    rows = _rows(session)
    assert [(r.status, r.attempts) for r in rows] == [("pending", 1)] * 3
    assert [(r.last_error or "").split(": ", 1)[1] for r in rows] == [
        f"recipient refused (temporary): {r.recipient}: 451 4.3.0 Mailbox temporarily unavailable"
        for r in rows
    ]

    send_pending(session, transport, max_attempts=3, backoff=NOW)
    third = send_pending(session, transport, max_attempts=3, backoff=NOW)
    assert (third.attempted, third.retry_later, third.failed) == (3, 0, 3)
    rows = _rows(session)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 3)] * 3
    assert all((r.last_error or "").startswith("attempt 3 at ") for r in rows)
    assert smtp_server.handler.rcpt_attempts == 9 and smtp_server.handler.messages == []

    # nothing more is tried for failed alerts ...
    assert send_pending(session, transport, max_attempts=3, backoff=NOW).attempted == 0
    # ... until someone queues them again: none was lost
    smtp_server.handler.refuse = None
    assert retry_failed(session) == 3
    session.commit()
    done = send_pending(session, transport, max_attempts=3, backoff=NOW)
    assert done.sent == 3 and len(smtp_server.handler.messages) == 3
    assert [r.status for r in _rows(session)] == ["sent"] * 3


def test_permanent_refusal_fails_at_once(
    session: Session, small_routing: AlertRouting, smtp_server: SMTPServer
) -> None:
    queue_digests(session, [HBV], routing=small_routing)
    session.commit()
    smtp_server.handler.refuse = "550 5.1.1 No such user here"
    summary = send_pending(session, SMTPTransport(smtp_server.host, smtp_server.port, timeout=5), backoff=NOW)
    assert (summary.attempted, summary.retry_later, summary.failed) == (1, 0, 1)
    (row,) = _rows(session)
    assert (row.status, row.attempts) == ("failed", 1)
    expected = "recipient refused (permanent): officer@example.org: 550 5.1.1 No such user here"
    assert expected in (row.last_error or "")
    assert smtp_server.handler.rcpt_attempts == 1


def test_data_refused_4xx_and_5xx(smtp_server: SMTPServer) -> None:
    transport = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "x"
    msg.set_content("x")
    smtp_server.handler.refuse_data = "452 4.3.1 Insufficient system storage"
    try:
        transport.send(msg)
    except DeliveryError as exc:
        assert exc.retryable and exc.code == 452
    else:
        raise AssertionError("452 accepted")
    smtp_server.handler.refuse_data = "554 5.6.0 Message rejected"
    try:
        transport.send(msg)
    except DeliveryError as exc:
        assert not exc.retryable and exc.code == 554 and "SMTP 554 (permanent)" in str(exc)
    else:
        raise AssertionError("554 accepted")


def test_closed_port_is_retried_with_backoff_and_never_lost(
    session: Session, small_routing: AlertRouting, closed_port: int, smtp_server: SMTPServer
) -> None:
    _queue_three(session, small_routing)
    down = SMTPTransport("127.0.0.1", closed_port, timeout=5)
    t0 = dt.datetime.now(dt.UTC)
    first = send_pending(session, down, max_attempts=4, backoff=dt.timedelta(minutes=1), now=t0)
    assert (first.attempted, first.retry_later, first.failed) == (3, 3, 0)
    rows = _rows(session)
    assert all(f"cannot reach SMTP server 127.0.0.1:{closed_port}" in (r.last_error or "") for r in rows)
    assert all(r.next_attempt_at is not None for r in rows)

    # not due yet: the next pass a few seconds later does nothing
    soon = send_pending(session, down, max_attempts=4, now=t0 + dt.timedelta(seconds=30))
    assert (soon.attempted, soon.not_due) == (0, 3)
    # second failure one minute later: next attempt 2 minutes after that (exponential)
    second = send_pending(session, down, max_attempts=4, now=t0 + dt.timedelta(minutes=1, seconds=1))
    assert second.retry_later == 3
    assert send_pending(session, down, max_attempts=4, now=t0 + dt.timedelta(minutes=2)).attempted == 0

    # the server is back (the transport now points at a live one): each alert delivered exactly once
    up = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)
    later = t0 + dt.timedelta(minutes=10)
    done = send_pending(session, up, max_attempts=4, now=later)
    assert done.sent == 3 and len(smtp_server.handler.messages) == 3
    assert [(r.status, r.attempts) for r in _rows(session)] == [("sent", 3)] * 3
    assert send_pending(session, up, max_attempts=4, now=later).attempted == 0


def test_hanging_server_times_out_and_is_retried(
    session: Session, small_routing: AlertRouting, silent_server: int
) -> None:
    queue_digests(session, [HBV], routing=small_routing)
    session.commit()
    summary = send_pending(session, SMTPTransport("127.0.0.1", silent_server, timeout=0.5), backoff=NOW)
    assert (summary.attempted, summary.retry_later) == (1, 1)
    (row,) = _rows(session)
    assert row.status == "pending" and "timed out after 0.5 s" in (row.last_error or "")


class Exploding:
    """A transport with a bug: the alert must survive it."""

    name = "broken"

    def describe(self) -> str:
        return "broken transport"

    def send(self, message: EmailMessage) -> None:
        raise RuntimeError("boom")


def test_unexpected_transport_error_is_recorded_not_raised(
    session: Session, small_routing: AlertRouting
) -> None:
    queue_digests(session, [HBV], routing=small_routing)
    session.commit()
    summary = send_pending(session, Exploding(), backoff=NOW, max_attempts=2)
    assert summary.retry_later == 1
    (row,) = _rows(session)
    assert row.status == "pending" and "unexpected RuntimeError: boom" in (row.last_error or "")
    # lowering max_attempts below what was used gives up on the row (recorded, not silently stuck)
    s = send_pending(session, Exploding(), max_attempts=1)
    assert (s.attempted, s.failed) == (0, 1)
    (row,) = _rows(session)
    assert row.status == "failed" and "gave up: 1 attempts >= 1" in (row.last_error or "")


def test_concurrent_senders_send_each_alert_once(
    pg_engine, small_routing: AlertRouting, smtp_server: SMTPServer  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    with factory() as s:
        # thirty cycles: one digest each for the officer
        changes = [make_change(run_id=i, event="hepatitis b reactivation") for i in range(100, 130)]
        assert queue_digests(s, changes, routing=small_routing) == 30
        s.commit()
    transport = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)
    sent: list[int] = []

    def worker() -> None:
        with factory() as s:
            sent.append(send_pending(s, transport).sent)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(sent) == 30
    keys = sorted(str(m["X-PV-Change-Key"]) for _, m in smtp_server.handler.messages)
    assert keys == sorted(f"digest:{i}" for i in range(100, 130))
