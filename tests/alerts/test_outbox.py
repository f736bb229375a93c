"""The outbox on real PostgreSQL: idempotent queuing, .eml outbox mode, dry runs, listing, constraints."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pv.alerts import EmlTransport, list_alerts, queue_alerts, retry_failed, send_pending
from pv.alerts.routing import AlertRouting
from pv.alerts.service import outbox_row_dict
from pv.errors import InputError
from pv.models.alerts import AlertOutbox
from tests.alerts.conftest import make_change


def _count(session: Session, **where: object) -> int:
    q = select(func.count()).select_from(AlertOutbox)
    for k, v in where.items():
        q = q.where(getattr(AlertOutbox, k) == v)
    return int(session.scalar(q) or 0)


def test_queue_is_idempotent(session: Session, small_routing: AlertRouting) -> None:
    crs = make_change()  # Kymriah CRS: officer + kymriah team
    hbv = make_change(signal_id=12, event="hepatitis b reactivation")  # officer only
    assert queue_alerts(session, [crs, hbv], report_path="/srv/reports/w39/report.html",
                        routing=small_routing) == 3
    session.commit()
    assert queue_alerts(session, [crs, hbv], routing=small_routing) == 0
    assert queue_alerts(session, [hbv, crs, crs], routing=small_routing) == 0
    session.commit()
    assert _count(session) == 3
    rows = session.scalars(select(AlertOutbox).order_by(AlertOutbox.id)).all()
    assert [(r.change_key, r.recipient) for r in rows] == [
        ("opened:11:3", "officer@example.org"),
        ("opened:11:3", "kymriah@example.org"),
        ("opened:12:3", "officer@example.org"),
    ]
    first = rows[0]
    assert first.status == "pending" and first.attempts == 0 and first.last_error is None
    assert first.subject == "[pv-test] New signal: tisagenlecleucel / Cytokine release syndrome"
    assert "EB05 (EBGM):               2.19 (2.88)" in first.body_text
    assert "<td class=\"figure\">2.19 (2.88)</td>" in first.body_html
    assert first.report_path == "/srv/reports/w39/report.html"
    assert first.payload["measures"]["eb05"] == 2.19 and first.payload["key"] == "opened:11:3"
    assert first.message_id.startswith("<pv.opened.11.3.") and first.message_id.endswith("@pv.example.org>")
    assert len({r.message_id for r in rows}) == 3
    # a later run escalating the same signal is a different change: alerted again
    assert queue_alerts(session, [make_change(kind="escalated", run_id=4)], routing=small_routing) == 2
    # a change nobody is routed to queues nothing
    nobody = AlertRouting.from_mapping(
        {"routes": [{"products": ["idecabtagene vicleucel"], "recipients": ["ide@example.org"]}]},
        event_groups=small_routing.event_groups, products=_products(),
    )
    assert queue_alerts(session, [make_change(run_id=5)], routing=nobody) == 0
    session.commit()
    assert _count(session) == 5


def test_infinite_measure_is_recorded_on_postgresql(session: Session, small_routing: AlertRouting) -> None:
    """Every report of the event is for this product: PRR is infinite, which PostgreSQL's json type refuses."""
    change = make_change(measures={**make_change().measures, "prr": float("inf"), "ror_upper": float("-inf")})
    assert queue_alerts(session, [change], routing=small_routing) == 2
    session.commit()
    row = session.scalars(select(AlertOutbox)).first()
    assert row is not None
    assert row.payload["measures"]["prr"] == "Infinity" and row.payload["measures"]["ror_upper"] == "-Infinity"
    assert row.payload["measures"]["eb05"] == 2.19


def _products():  # type: ignore[no-untyped-def]
    from pv.normalise import ProductDictionary
    from tests.alerts.conftest import CONFIG

    return ProductDictionary.load(CONFIG / "products.yaml")


def test_database_refuses_duplicates_and_bad_status(session: Session, small_routing: AlertRouting) -> None:
    queue_alerts(session, [make_change()], routing=small_routing)
    session.commit()
    row = session.scalars(select(AlertOutbox).limit(1)).one()
    cols = "change_key, recipient, kind, signal_id, run_id, product, event, level, payload, subject, " \
           "body_text, body_html, message_id, status, attempts, created_at, updated_at"
    dup = text(f"INSERT INTO alert_outbox ({cols}) SELECT change_key, recipient, kind, signal_id, run_id, "
               "product, event, level, payload, subject, body_text, body_html, message_id || 'x', status, "
               f"attempts, created_at, updated_at FROM alert_outbox WHERE id = {row.id}")
    with pytest.raises(IntegrityError, match="uq_alert_outbox_change_key"):
        session.execute(dup)
    session.rollback()
    with pytest.raises(IntegrityError, match="ck_alert_outbox_status"):
        session.execute(text(f"UPDATE alert_outbox SET status = 'queued' WHERE id = {row.id}"))
    session.rollback()


def test_eml_outbox_mode_writes_each_alert_once(
    session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    transport = EmlTransport(outbox)
    queue_alerts(session, [make_change(), make_change(signal_id=12, event="hepatitis b reactivation")],
                 report_path=tmp_path / "report.html", routing=small_routing)
    session.commit()

    dry = send_pending(session, transport, dry_run=True)
    assert (dry.would_send, dry.sent, dry.attempted) == (3, 0, 0)
    assert not outbox.exists() and _count(session, status="pending") == 3

    summary = send_pending(session, transport)
    assert (summary.attempted, summary.sent, summary.failed, summary.retry_later) == (3, 3, 0, 0)
    assert summary.ok and summary.transport == f".eml files in {outbox}"
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 3
    assert not list(outbox.glob(".tmp-*"))
    msgs = [message_from_bytes(f.read_bytes(), policy=default_policy) for f in files]
    by_to = {(str(m["To"]), str(m["X-PV-Change-Key"])): m for m in msgs}
    assert set(by_to) == {("officer@example.org", "opened:11:3"), ("kymriah@example.org", "opened:11:3"),
                          ("officer@example.org", "opened:12:3")}
    m = by_to[("kymriah@example.org", "opened:11:3")]
    assert m["From"] == "pv-alerts@pv.example.org"
    assert m["Subject"] == "[pv-test] New signal: tisagenlecleucel / Cytokine release syndrome"
    assert m.get_content_type() == "multipart/alternative"
    plain = m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = m.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "ROR lower 95% bound:       2.41" in plain and f"Report: {tmp_path / 'report.html'}" in plain
    assert "<td class=\"figure\">2.41</td>" in html and (tmp_path / "report.html").as_uri() in html

    rows = session.scalars(select(AlertOutbox)).all()
    assert {(r.status, r.attempts, r.transport) for r in rows} == {("sent", 1, "eml")}
    assert all(r.sent_at is not None for r in rows)
    assert {r.message_id for r in rows} == {str(m["Message-ID"]) for m in msgs}

    # a second send sends nothing; queuing the same changes again adds nothing
    again = send_pending(session, transport)
    assert (again.attempted, again.sent) == (0, 0)
    assert queue_alerts(session, [make_change()], routing=small_routing) == 0
    session.commit()
    assert send_pending(session, transport).attempted == 0
    assert len(list(outbox.glob("*.eml"))) == 3


def test_unwritable_outbox_is_retried_then_recorded(
    session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the outbox folder should be")
    hbv = make_change(signal_id=12, event="hepatitis b reactivation")
    queue_alerts(session, [hbv], routing=small_routing)
    session.commit()
    s1 = send_pending(session, EmlTransport(blocker), backoff=dt.timedelta(0), max_attempts=2)
    assert (s1.attempted, s1.retry_later, s1.failed) == (1, 1, 0)
    assert "cannot write" in s1.errors[0]
    s2 = send_pending(session, EmlTransport(blocker), backoff=dt.timedelta(0), max_attempts=2)
    assert (s2.attempted, s2.retry_later, s2.failed) == (1, 0, 1)
    row = session.scalars(select(AlertOutbox)).one()
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error is not None and row.last_error.startswith("attempt 2 at ")

    assert retry_failed(session) == 1
    session.commit()
    ok = send_pending(session, EmlTransport(tmp_path / "elsewhere"))
    assert ok.sent == 1 and len(list((tmp_path / "elsewhere").glob("*.eml"))) == 1


def test_list_alerts_and_row_dict(session: Session, small_routing: AlertRouting, tmp_path: Path) -> None:
    queue_alerts(session, [make_change()], routing=small_routing)
    session.commit()
    send_pending(session, EmlTransport(tmp_path), limit=1)
    assert [r.status for r in list_alerts(session)] == ["pending", "sent"]  # newest first
    assert len(list_alerts(session, "sent")) == 1 and len(list_alerts(session, "failed")) == 0
    assert len(list_alerts(session, limit=1)) == 1
    d = outbox_row_dict(list_alerts(session, "sent")[0])
    assert d["status"] == "sent" and d["recipient"] == "officer@example.org" and d["attempts"] == 1
    assert d["sent_at"] is not None and d["sent_at"].endswith("+00:00")
    assert "body_html" not in d
    with pytest.raises(InputError, match="unknown status 'done'"):
        list_alerts(session, "done")


def test_sqlite_embedded_default(
    sqlite_session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    """The same cycle on the embedded SQLite store (the demo's)."""
    assert queue_alerts(sqlite_session, [make_change()], routing=small_routing) == 2
    sqlite_session.commit()
    assert queue_alerts(sqlite_session, [make_change()], routing=small_routing) == 0
    s = send_pending(sqlite_session, EmlTransport(tmp_path / "out"))
    assert s.sent == 2
    assert send_pending(sqlite_session, EmlTransport(tmp_path / "out")).attempted == 0
    assert len(list((tmp_path / "out").glob("*.eml"))) == 2
