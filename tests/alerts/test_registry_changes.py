"""Alerts from the changes the real signal registry emits (pv.signals.evaluation.evaluate_run)."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.alerts import EmlTransport, queue_alerts, send_pending
from pv.alerts.routing import AlertRouting
from pv.models.alerts import AlertOutbox
from pv.signals.evaluation import evaluate_run
from pv.signals.labels import ensure_seeded
from pv.signals.rules import RuleSet
from tests.conftest import REPO
from tests.signals.helpers import frame, strong_row, weak_row

# The feedback-loop scenarios here rely on the T-cell malignancy label gap of the test registry.
pytestmark = pytest.mark.usefixtures("gap_registry")
TISA = "tisagenlecleucel"


def test_registry_changes_become_routed_alerts(session: Session, routing: AlertRouting, tmp_path: Path) -> None:
    ensure_seeded(session)
    rules = RuleSet.load(REPO / "config" / "signals.yaml")
    report = tmp_path / "report" / "weekly.html"
    # first run: three findings meet the rules and are tracked, not opened: nobody is emailed
    first = evaluate_run(session, run_id=10, as_of=dt.date(2022, 9, 30), rules=rules, results=frame(
        strong_row(TISA, "T-cell lymphoma", eb05=2.5, n=5),
        strong_row(TISA, "malignancy_t_cell", "group", eb05=2.25, n=7),
        strong_row(TISA, "Cytokine release syndrome", eb05=12.0, n=290, serious=240, deaths=10),
        weak_row(TISA, "Nausea"),
    ))
    session.commit()
    assert sorted((c.event, c.kind, c.status) for c in first) == [
        ("cytokine release syndrome", "created", "tracked"), ("malignancy_t_cell", "created", "tracked"),
        ("t-cell lymphoma", "created", "tracked")]
    assert queue_alerts(session, first, report_path=report, routing=routing) == 0
    # second run: the unlabelled T-cell findings persist with new cases and open; CRS (on the FDA boxed
    # warning, EB05 not doubled) stays tracked
    changes = evaluate_run(session, run_id=11, as_of=dt.date(2022, 12, 31), rules=rules, results=frame(
        strong_row(TISA, "T-cell lymphoma", eb05=2.5),
        strong_row(TISA, "malignancy_t_cell", "group", eb05=2.25, n=8),
        strong_row(TISA, "Cytokine release syndrome", eb05=12.0, n=300, serious=250, deaths=10),
        weak_row(TISA, "Nausea"),
    ))
    session.commit()
    assert sorted((c.event, c.kind) for c in changes) == [("malignancy_t_cell", "opened"),
                                                          ("t-cell lymphoma", "opened")]

    assert queue_alerts(session, changes, report_path=report, routing=routing) == 6
    session.commit()
    assert queue_alerts(session, changes, report_path=report, routing=routing) == 0
    by_event: dict[str, set[str]] = {}
    for row in session.scalars(select(AlertOutbox)):
        by_event.setdefault(row.event, set()).add(row.recipient)
    assert by_event == {
        "t-cell lymphoma": {"safety-officers@example.org", "oncology-safety@example.org", "kymriah-pv@example.org"},
        "malignancy_t_cell": {"safety-officers@example.org", "oncology-safety@example.org",
                              "kymriah-pv@example.org"},
    }

    out = tmp_path / "outbox"
    assert send_pending(session, EmlTransport(out)).sent == 6
    msgs = [message_from_bytes(p.read_bytes(), policy=default_policy) for p in out.glob("*.eml")]
    tcl = next(m for m in msgs if m["To"] == "oncology-safety@example.org"
               and "T-cell lymphoma" in str(m["Subject"]) and "group" not in str(m["Subject"]))
    assert tcl["Subject"] == "[pv] New signal: tisagenlecleucel / T-cell lymphoma"
    text = tcl.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for line in ("EB05 (EBGM):               2.50 (3.25)", "ROR lower 95% bound:       2.00",
                 "Reports (n):               6 (expected 1.60)", "Serious cases:             4",
                 "Deaths:                    1", "On the label:              FDA: not labelled",
                 f"Report: {report}"):
        assert line in text, line
    group = next(m for m in msgs if "group malignancy_t_cell" in str(m["Subject"]))
    assert group["Subject"] == ("[pv] New signal: tisagenlecleucel / Secondary T-cell malignancy "
                                "(group malignancy_t_cell)")
