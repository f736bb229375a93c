"""The outbox on real PostgreSQL: one digest per (run, recipient), queued idempotently; .eml outbox mode, dry runs,
listing, constraints."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pv.alerts import EmlTransport, list_alerts, queue_digests, retry_failed, send_pending
from pv.alerts.routing import AlertRouting
from pv.alerts.service import outbox_row_dict
from pv.errors import InputError
from pv.models.alerts import AlertOutbox
from tests.alerts.conftest import make_change

CRS = make_change()  # Kymriah CRS: officer + kymriah team
HBV = make_change(signal_id=12, event="hepatitis b reactivation", priority=0.5)  # officer only


def _count(session: Session, **where: object) -> int:
    q = select(func.count()).select_from(AlertOutbox)
    for k, v in where.items():
        q = q.where(getattr(AlertOutbox, k) == v)
    return int(session.scalar(q) or 0)


def test_one_digest_per_run_and_recipient_queued_once(session: Session, small_routing: AlertRouting) -> None:
    assert queue_digests(session, [CRS, HBV], report="/srv/reports/w39/report.html", routing=small_routing) == 2
    session.commit()
    # queuing the run again (a re-run of the cycle, a redelivered task), whatever its changes: nothing added
    assert queue_digests(session, [CRS, HBV], routing=small_routing) == 0
    assert queue_digests(session, [HBV, CRS, CRS, make_change(signal_id=13, event="nausea")],
                         routing=small_routing) == 0
    session.commit()
    rows = session.scalars(select(AlertOutbox).order_by(AlertOutbox.recipient)).all()
    assert [(r.change_key, r.recipient, r.kind) for r in rows] == [
        ("digest:3", "kymriah@example.org", "digest"), ("digest:3", "officer@example.org", "digest")]
    officer = rows[1]
    assert officer.status == "pending" and officer.attempts == 0 and officer.last_error is None
    assert officer.subject == "[pv-test] 2024-09-30: 2 new signals (Kymriah)"
    # the signal columns are the most urgent signal's; the payload holds every finding
    assert (officer.signal_id, officer.run_id, officer.event) == (11, 3, "cytokine release syndrome")
    assert officer.payload["signal_ids"] == [11, 12] and officer.payload["counts"] == {"opened": 2}
    assert [f["title"] for f in officer.payload["findings"]] == [
        "Cytokine release syndrome", "Hepatitis B reactivation"]
    assert officer.payload["findings"][0]["members"][0]["measures"]["eb05"] == 2.19
    # the report is named, never located: no server path in the row or the email
    assert officer.report_path == "report.html"
    assert "/srv/reports" not in officer.body_text and "/srv/reports" not in officer.body_html
    assert officer.message_id.startswith("<pv.digest.3.") and officer.message_id.endswith("@pv.example.org>")
    assert len({r.message_id for r in rows}) == 2
    assert rows[0].payload["signal_ids"] == [11]  # the Kymriah team is not routed HBV

    # a later run escalating the same signal: a digest of its own for each recipient
    assert queue_digests(session, [make_change(kind="escalated", run_id=4)], routing=small_routing) == 2
    # a change nobody is routed to queues nothing
    nobody = AlertRouting.from_mapping(
        {"routes": [{"products": ["idecabtagene vicleucel"], "recipients": ["ide@example.org"]}]},
        event_groups=small_routing.event_groups, products=small_routing.products,
    )
    assert queue_digests(session, [make_change(run_id=5)], routing=nobody) == 0
    # nor does a run whose only change is the creation of a known risk (labelled wherever it is judged)
    known = make_change(kind="created", run_id=6, labelled={"FDA": True})
    assert queue_digests(session, [known], routing=small_routing) == 0
    session.commit()
    assert _count(session) == 4


def test_base_url_links_the_review_pages(session: Session, small_routing: AlertRouting) -> None:
    queue_digests(session, [HBV], report="/srv/reports/w39/report.html", routing=small_routing,
                  base_url="https://pv.example.org")
    session.commit()
    row = session.scalars(select(AlertOutbox)).one()
    assert row.report_path == "https://pv.example.org/runs/3/report"
    assert "Review: https://pv.example.org/signals/12" in row.body_text
    assert 'href="https://pv.example.org/signals/12"' in row.body_html
    assert 'href="https://pv.example.org/runs/3/report"' in row.body_html
    assert "report.html" not in row.body_text and "/srv" not in row.body_html


def test_base_url_comes_from_the_settings(session: Session, small_routing: AlertRouting,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pv.settings import get_settings

    monkeypatch.setenv("PV_BASE_URL", "https://review.example.org/pv/")
    get_settings.cache_clear()
    queue_digests(session, [HBV], routing=small_routing)
    session.commit()
    row = session.scalars(select(AlertOutbox)).one()
    assert "Review: https://review.example.org/pv/signals/12" in row.body_text
    monkeypatch.setenv("PV_BASE_URL", "file:///srv/pv")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="PV_BASE_URL must be an http:// or https:// address"):
        get_settings()


def test_infinite_measure_is_recorded_on_postgresql(session: Session, small_routing: AlertRouting) -> None:
    """Every report of the event is for this product: PRR is infinite, which PostgreSQL's json type refuses."""
    change = make_change(measures={**CRS.measures, "prr": float("inf"), "ror_upper": float("-inf")})
    assert queue_digests(session, [change], routing=small_routing) == 2
    session.commit()
    row = session.scalars(select(AlertOutbox)).first()
    assert row is not None
    measures = row.payload["findings"][0]["members"][0]["measures"]
    assert measures["prr"] == "Infinity" and measures["ror_upper"] == "-Infinity" and measures["eb05"] == 2.19
    assert "PRR inf (chi-square 57.25)" in row.body_text


def test_database_refuses_duplicates_and_bad_status(session: Session, small_routing: AlertRouting) -> None:
    queue_digests(session, [CRS], routing=small_routing)
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


def test_eml_outbox_mode_writes_each_digest_once(
    session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    transport = EmlTransport(outbox)
    queue_digests(session, [CRS, HBV], report=tmp_path / "weekly-report-2024-09-30-run3.html",
                  routing=small_routing)
    session.commit()

    dry = send_pending(session, transport, dry_run=True)
    assert (dry.would_send, dry.sent, dry.attempted) == (2, 0, 0)
    assert not outbox.exists() and _count(session, status="pending") == 2

    summary = send_pending(session, transport)
    assert (summary.attempted, summary.sent, summary.failed, summary.retry_later) == (2, 2, 0, 0)
    assert summary.ok and summary.transport == f".eml files in {outbox}"
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 2
    assert not list(outbox.glob(".tmp-*"))
    msgs = {str(m["To"]): m for m in (message_from_bytes(f.read_bytes(), policy=default_policy) for f in files)}
    assert set(msgs) == {"officer@example.org", "kymriah@example.org"}
    m = msgs["officer@example.org"]
    assert m["From"] == "pv-alerts@pv.example.org"
    assert (m["X-PV-Change-Key"], m["X-PV-Run-Id"], m["X-PV-Signal-Ids"]) == ("digest:3", "3", "11 12")
    assert m["Subject"] == "[pv-test] 2024-09-30: 2 new signals (Kymriah)"
    assert m.get_content_type() == "multipart/alternative"
    plain = m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = m.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Weekly report of run 3: weekly-report-2024-09-30-run3.html" in plain
    assert str(tmp_path) not in plain and str(tmp_path) not in html and "file://" not in html

    rows = session.scalars(select(AlertOutbox)).all()
    assert {(r.status, r.attempts, r.transport) for r in rows} == {("sent", 1, "eml")}
    assert all(r.sent_at is not None for r in rows)
    assert {r.message_id for r in rows} == {str(m["Message-ID"]) for m in msgs.values()}

    # a second send sends nothing; queuing the run again adds nothing
    again = send_pending(session, transport)
    assert (again.attempted, again.sent) == (0, 0)
    assert queue_digests(session, [CRS], routing=small_routing) == 0
    session.commit()
    assert send_pending(session, transport).attempted == 0
    assert len(list(outbox.glob("*.eml"))) == 2


def test_unwritable_outbox_is_retried_then_recorded(
    session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the outbox folder should be")
    queue_digests(session, [HBV], routing=small_routing)
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
    queue_digests(session, [CRS], routing=small_routing)
    session.commit()
    send_pending(session, EmlTransport(tmp_path), limit=1)
    assert [r.status for r in list_alerts(session)] == ["pending", "sent"]  # newest first
    assert len(list_alerts(session, "sent")) == 1 and len(list_alerts(session, "failed")) == 0
    assert len(list_alerts(session, limit=1)) == 1
    d = outbox_row_dict(list_alerts(session, "sent")[0])
    assert d["status"] == "sent" and d["recipient"] == "kymriah@example.org" and d["attempts"] == 1  # by address
    assert d["kind"] == "digest" and d["change_key"] == "digest:3" and d["signals"] == 1
    assert d["sent_at"] is not None and d["sent_at"].endswith("+00:00")
    assert "body_html" not in d
    with pytest.raises(InputError, match="unknown status 'done'"):
        list_alerts(session, "done")


def test_sqlite_embedded_default(
    sqlite_session: Session, small_routing: AlertRouting, tmp_path: Path
) -> None:
    """The same cycle on the embedded SQLite store (the demo's)."""
    assert queue_digests(sqlite_session, [CRS, HBV], routing=small_routing) == 2
    sqlite_session.commit()
    assert queue_digests(sqlite_session, [CRS], routing=small_routing) == 0
    s = send_pending(sqlite_session, EmlTransport(tmp_path / "out"))
    assert s.sent == 2
    assert send_pending(sqlite_session, EmlTransport(tmp_path / "out")).attempted == 0
    assert len(list((tmp_path / "out").glob("*.eml"))) == 2
