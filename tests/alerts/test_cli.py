"""``pv alerts send|list|retry`` on the test PostgreSQL database, .eml outbox and SMTP modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from pv.alerts import queue_digests
from pv.alerts.routing import AlertRouting
from pv.cli import main
from pv.settings import get_settings
from tests.alerts.conftest import SMTPServer, make_change


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def queued(pv_env: str, session: Session, small_routing: AlertRouting) -> Session:
    """Three digests: run 3 for the officer and the Kymriah team, run 4 for the officer."""
    queue_digests(session, [make_change()], routing=small_routing)
    queue_digests(session, [make_change(signal_id=12, run_id=4, event="hepatitis b reactivation")],
                  routing=small_routing)
    session.commit()
    return session


def test_send_to_eml_outbox_and_list(queued: Session, capsys: pytest.CaptureFixture[str]) -> None:
    outbox = Path(get_settings().var_dir) / "outbox"
    code, out, _ = run(capsys, "alerts", "send", "--dry-run")
    assert code == 0
    expected = f"dry run: 3 alert(s) would be sent via .eml files in {outbox} (0 waiting for a retry)"
    assert out.strip() == expected
    assert not outbox.exists()

    code, out, _ = run(capsys, "alerts", "send")
    assert code == 0
    assert out.strip() == f"3 sent, 0 to retry, 0 failed (0 waiting for a retry) via .eml files in {outbox}"
    assert len(list(outbox.glob("*.eml"))) == 3

    code, out, _ = run(capsys, "alerts", "send")
    assert out.startswith("0 sent, 0 to retry, 0 failed")
    assert len(list(outbox.glob("*.eml"))) == 3

    code, out, _ = run(capsys, "alerts", "list", "--format", "json")
    rows = json.loads(out)
    assert [(r["status"], r["attempts"], r["transport"]) for r in rows] == [("sent", 1, "eml")] * 3
    assert [(r["change_key"], r["recipient"]) for r in rows] == [
        ("digest:4", "officer@example.org"), ("digest:3", "officer@example.org"), ("digest:3", "kymriah@example.org")]
    assert rows[0]["subject"] == "[pv-test] 2024-09-30: 1 new signal (Kymriah)"
    assert (rows[0]["kind"], rows[0]["run_id"], rows[0]["signals"], rows[0]["signal_id"]) == ("digest", 4, 1, 12)

    code, out, _ = run(capsys, "alerts", "list", "--status", "pending")
    assert (code, out.strip()) == (0, "no alerts")
    code, out, _ = run(capsys, "alerts", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "status", "attempts", "recipient", "run_id", "signals", "subject",
                                "created_at", "last_error"]
    assert len(lines) == 4 and all(" sent " in line for line in lines[1:])

    code, _, err = run(capsys, "alerts", "list", "--status", "done")
    assert code == 2 and "done" in err


def test_send_over_smtp_refused_then_delivered(
    queued: Session, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    smtp_server: SMTPServer, closed_port: int,
) -> None:
    monkeypatch.setenv("PV_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PV_SMTP_PORT", str(closed_port))
    monkeypatch.setenv("PV_SMTP_TIMEOUT", "5")
    get_settings.cache_clear()
    code, out, err = run(capsys, "alerts", "send", "--max-attempts", "1")
    assert code == 1
    expected = f"0 sent, 0 to retry, 3 failed (0 waiting for a retry) via SMTP 127.0.0.1:{closed_port}"
    assert out.startswith(expected)
    assert err.count("pv: alert: alert ") == 3 and "cannot reach SMTP server" in err
    rows = json.loads(run(capsys, "alerts", "list", "--format", "json", "--status", "failed")[1])
    assert len(rows) == 3 and all("cannot reach SMTP server" in r["last_error"] for r in rows)

    code, out, _ = run(capsys, "alerts", "retry", str(rows[0]["id"]))
    assert out.strip() == "1 failed alert(s) queued again"
    code, out, _ = run(capsys, "alerts", "retry")
    assert out.strip() == "2 failed alert(s) queued again"

    monkeypatch.setenv("PV_SMTP_PORT", str(smtp_server.port))
    get_settings.cache_clear()
    code, out, err = run(capsys, "alerts", "send")
    assert code == 0, err
    assert out.startswith("3 sent, 0 to retry, 0 failed")
    assert sorted(r[0] for r, _ in smtp_server.handler.messages) == [
        "kymriah@example.org", "officer@example.org", "officer@example.org"
    ]
