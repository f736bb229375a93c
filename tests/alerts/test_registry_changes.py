"""Digests of the changes the real signal registry emits (pv.signals.evaluation.evaluate_run), received by a real
SMTP server: one per recipient per cycle, findings grouped, most urgent first, with the audit trail's reasons and
links to the review pages."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.alerts import SMTPTransport, queue_digests, send_pending
from pv.alerts.routing import AlertRouting
from pv.models.signals import Signal, SignalAudit
from pv.signals.evaluation import evaluate_run
from pv.signals.labels import ensure_seeded
from pv.signals.rules import RuleSet
from tests.alerts.conftest import SMTPServer
from tests.conftest import REPO
from tests.signals.helpers import any_profile_rules, frame, strong_row, weak_row

# The feedback-loop scenarios here rely on the T-cell malignancy label gap of the test registry.
pytestmark = pytest.mark.usefixtures("gap_registry")
TISA, AXI = "tisagenlecleucel", "axicabtagene ciloleucel"
BASE = "https://pv.example.org"


def _results(eb05_tcl: float = 5.0) -> list[dict]:
    return [
        strong_row(TISA, "T-cell lymphoma", eb05=eb05_tcl, n=6),  # strong: flagged at once (unlabelled in 2022)
        strong_row(TISA, "malignancy_t_cell", "group", eb05=2.25, n=8),
        strong_row(TISA, "secondary_malignancy", "group", eb05=2.1, n=10),
        strong_row(TISA, "Cytokine release syndrome", eb05=12.0, n=300, serious=250, deaths=10),  # on the label
        strong_row(AXI, "Hepatic failure", eb05=2.5, n=5),  # unlabelled for Yescarta
        weak_row(TISA, "Nausea"),
    ]


def _plain(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def _html(msg: EmailMessage) -> str:
    return msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_registry_changes_become_one_digest_per_recipient(
    session: Session, routing: AlertRouting, smtp_server: SMTPServer
) -> None:
    ensure_seeded(session)
    rules = RuleSet.load(REPO / "config" / "signals.yaml")  # findings open at their first run here (the opening
    rules = rules.model_copy(update={  # rule is tested in tests/signals); the `any` profile
        "opening": rules.opening.model_copy(update={"persistence": 1}),
        "detection": rules.detection.model_copy(update={"levels": any_profile_rules().detection.levels})})
    changes = evaluate_run(session, run_id=11, as_of=dt.date(2022, 12, 31), rules=rules, results=frame(*_results()))
    session.commit()
    ids = {(s.product, s.event): s.id for s in session.scalars(select(Signal))}
    tcl, group, parent = (ids[(TISA, e)] for e in ("t-cell lymphoma", "malignancy_t_cell", "secondary_malignancy"))
    liver, crs = ids[(AXI, "hepatic failure")], ids[(TISA, "cytokine release syndrome")]
    assert sorted((c.signal_id, c.kind) for c in changes if c.signal_id == tcl) == [
        (tcl, "created"), (tcl, "escalated"), (tcl, "label_update_recommended"), (tcl, "opened")]
    # 5 findings tracked; 4 opened (CRS is on the label: it stays tracked); T-cell lymphoma escalated and flagged
    assert len(changes) == 11

    report = "/srv/pv/var/reports/weekly-report-2022-12-31-run11.html"
    assert queue_digests(session, changes, report=report, routing=routing, base_url=BASE) == 4
    session.commit()
    assert queue_digests(session, changes, report=report, routing=routing, base_url=BASE) == 0  # redelivered

    transport = SMTPTransport(smtp_server.host, smtp_server.port, timeout=5)
    assert send_pending(session, transport).sent == 4
    assert send_pending(session, transport).attempted == 0  # sending again sends nothing
    got = {rcpts[0]: msg for rcpts, msg in smtp_server.handler.messages}
    assert len(smtp_server.handler.messages) == len(got) == 4  # one email per recipient for the cycle
    assert set(got) == {"safety-officers@example.org", "oncology-safety@example.org", "kymriah-pv@example.org",
                        "yescarta-pv@example.org"}

    officers = got["safety-officers@example.org"]
    assert officers["Subject"] == "[pv] 2022-12-31: 1 label update recommended, 1 new signal (Kymriah, Yescarta)"
    text = _plain(officers)
    # one finding for Kymriah's secondary malignancy (head: the parent group), its members beneath, most urgent
    # finding first; CRS was created too but is on the label (a known risk): not told
    assert text.index("1. LABEL UPDATE RECOMMENDED: Kymriah (tisagenlecleucel) / Secondary malignancy (all) "
                      "(for T-cell lymphoma)") < text.index("2. NEW SIGNAL: Yescarta (axicabtagene ciloleucel) / "
                                                            "Hepatic failure")
    assert "ytokine release" not in text and f"signals/{crs}" not in text
    lines = text.splitlines()
    head = lines.index(f"   Secondary malignancy (all) [event group secondary_malignancy], signal {parent}")
    assert lines[head + 1:head + 2] == ["   What happened: new signal"]
    assert f"     - Secondary T-cell malignancy [event group malignancy_t_cell], signal {group}" in lines
    member = lines.index(f"         - T-cell lymphoma [PT], signal {tcl}")
    assert lines[member + 1] == "           What happened: label update recommended; escalated; new signal"
    # the reasons come from the audit trail: the flag's (which holds the escalation's), then the opening's
    why = [line.strip() for line in lines[member + 2:member + 4]]
    audit = {a.action: a.reason for a in session.scalars(
        select(SignalAudit).where(SignalAudit.signal_id == tcl, SignalAudit.run_id == 11))}
    assert why == [f"Why: {audit['label_update_recommended']}", f"Why: {audit['opened']}"]
    assert why[0].startswith("Why: label update recommended for tisagenlecleucel in FDA: ")
    assert audit["escalated"] in why[0] and why[1].startswith("Why: opened: ")
    assert lines[member + 4].strip().startswith("Figures: n 6 (expected 0.80); EB05 5.00 (EBGM 6.50); PRR 7.00")
    assert lines[member + 5].strip() == "On the label: FDA NOT labelled"
    assert lines[member + 7].strip() == f"Review: {BASE}/signals/{tcl}"
    assert f"Weekly report of run 11: {BASE}/runs/11/report" in text
    assert "/srv/pv" not in text and "/srv/pv" not in _html(officers) and "file://" not in _html(officers)
    html = _html(officers)
    assert f'href="{BASE}/signals/{tcl}"' in html and f'href="{BASE}/runs/11/report"' in html
    assert html.index(f"signal {parent}") < html.index(f"signal {group}") < html.index(f"signal {tcl}")
    assert 'data-depth="2"' in html

    onco = _plain(got["oncology-safety@example.org"])
    assert got["oncology-safety@example.org"]["Subject"] == "[pv] 2022-12-31: 1 label update recommended (Kymriah)"
    assert "Hepatic" not in onco and "secondary-malignancy (config/alerts.yaml)" in onco
    team = got["yescarta-pv@example.org"]
    assert team["Subject"] == "[pv] 2022-12-31: 1 new signal (Yescarta)"
    assert f"signals/{liver}" in _plain(team) and "T-cell" not in _plain(team)

    # the next cycle: nothing new for these signals, so nobody is written to
    changes = evaluate_run(session, run_id=12, as_of=dt.date(2023, 3, 31), rules=rules, results=frame(*_results()))
    session.commit()
    assert queue_digests(session, changes, routing=routing) == 0

    # after the boxed warning of April 2024 the flag clears: only the route asking for label_update_cleared hears
    changes = evaluate_run(session, run_id=13, as_of=dt.date(2024, 6, 30), rules=rules,
                           results=frame(_results()[0]))  # only T-cell lymphoma measured this time
    session.commit()
    assert (tcl, "label_update_cleared") in {(c.signal_id, c.kind) for c in changes}
    assert queue_digests(session, changes, report="weekly-report-2024-06-30-run13.html", routing=routing) == 1
    session.commit()
    assert send_pending(session, transport).sent == 1
    _, cleared = smtp_server.handler.messages[-1]
    assert cleared["To"] == "oncology-safety@example.org"
    assert cleared["Subject"] == "[pv] 2024-06-30: 1 label update done (Kymriah)"
    text = _plain(cleared)
    assert "1. LABEL UPDATE NO LONGER NEEDED (NOW ON THE LABEL): Kymriah (tisagenlecleucel) / T-cell lymphoma" in text
    assert "Why: label in force at 2024-06-30 now covers the event in FDA" in text
    # no PV_BASE_URL: no link, but how to look it up, and the report by name only
    assert f"Review: pv signal show {tcl}" in text and "http" not in text
    assert "Weekly report of run 13: weekly-report-2024-06-30-run13.html" in text
