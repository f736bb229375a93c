"""Signal registry and feedback loop on the real PostgreSQL test database."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import psycopg
import pytest
import yaml
from sqlalchemy import select, text, update

from pv.errors import AuditTrailError, InputError, InvalidTransitionError
from pv.models.signals import Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.signals.commands import record_label_change, transition_signal
from pv.signals.evaluation import evaluate_run, is_evaluated
from pv.signals.labels import LabelEntry, ensure_seeded, seed_labels
from pv.signals.queries import list_signals, rules_for_run, signal_detail
from pv.signals.rules import RuleSet
from tests.conftest import GAP_LABELS
from tests.signals.helpers import any_profile_rules, frame, strong_row, weak_row

D = dt.date
TISA = "tisagenlecleucel"
AXI = "axicabtagene ciloleucel"
QUARTERS = [D(2022, 12, 31), D(2023, 3, 31), D(2023, 6, 30), D(2023, 9, 30), D(2023, 12, 31),
            D(2024, 3, 31), D(2024, 6, 30), D(2024, 9, 30)]


@pytest.fixture
def rules() -> RuleSet:
    return any_profile_rules()


@pytest.fixture
def labels_without_tcell(session, tmp_path: Path, gap_approvals) -> None:  # type: ignore[no-untyped-def]
    """The test registry minus every secondary-malignancy entry: the gap in every jurisdiction, at every date."""
    data = yaml.safe_load(GAP_LABELS.read_text())
    data["labels"] = [e for e in data["labels"]
                      if not {"malignancy_t_cell", "secondary_malignancy"} & set(e["events"])]
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(data))
    assert seed_labels(session, path) > 0
    session.commit()


def _tcell_run(eb05: float, *, n: int = 6, crs_eb05: float = 12.0) -> list[dict]:
    return [
        strong_row(TISA, "T-cell lymphoma", eb05=eb05, n=n),
        strong_row(TISA, "malignancy_t_cell", "group", eb05=eb05 * 0.9, n=n + 2),
        strong_row(TISA, "Cytokine release syndrome", eb05=crs_eb05, n=300, serious=250, deaths=10),
        weak_row(TISA, "Nausea"),
        strong_row("METHOTREXATE", "Stomatitis", eb05=6.0),  # not a dictionary product
    ]


def _kinds(changes, event: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.kind for c in changes if c.event == event]


def test_runs_create_signals_record_trend_and_snapshot_rules(session, rules, gap_registry) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    c1 = evaluate_run(session, run_id=11, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    session.commit()
    assert sorted((c.event, c.level, c.kind) for c in c1) == [
        ("cytokine release syndrome", "pt", "created"), ("malignancy_t_cell", "group", "created"),
        ("t-cell lymphoma", "pt", "created")]
    created = next(c for c in c1 if c.event == "t-cell lymphoma")
    assert created.measures["eb05"] == 2.5 and created.serious_cases == 4 and created.deaths == 1
    assert created.labelled == {"FDA": False}
    sigs = {s.event: s for s in list_signals(session)}
    assert set(sigs) == {"t-cell lymphoma", "malignancy_t_cell", "cytokine release syndrome"}
    tcl = sigs["t-cell lymphoma"]
    # tracked, not opened: one run is not persistence, and EB05 2.5 is not strong
    assert (tcl.status, tcl.first_detected, tcl.first_run_id, tcl.last_run_id) == ("tracked", QUARTERS[0], 11, 11)
    assert (tcl.cases_checked, tcl.tracked_baseline, tcl.opened_as_of) == (6, 2.5, None)
    assert sigs["cytokine release syndrome"].labelled == {"FDA": True}
    snap = session.scalars(select(SignalRuleSnapshot)).one()
    assert snap.run_id == 11 and snap.rules["detection"]["levels"]["pt"]["min_n"] == 3

    # second run: the T-cell PT falls below the rules; still measured (trend), first_detected unchanged
    rows = _tcell_run(2.5)
    rows[0] = weak_row(TISA, "T-cell lymphoma", n=3)
    evaluate_run(session, run_id=12, as_of=QUARTERS[1], results=frame(*rows), rules=rules)
    session.commit()
    session.refresh(tcl)
    trend = session.scalars(select(SignalMeasure).where(SignalMeasure.signal_id == tcl.id)
                            .order_by(SignalMeasure.as_of)).all()
    assert [(m.run_id, m.meets_rules, m.eb05) for m in trend] == [(11, True, 2.5), (12, False, 0.5)]
    assert (tcl.first_detected, tcl.last_run_id, tcl.last_met_as_of) == (QUARTERS[0], 12, QUARTERS[0])
    assert tcl.consecutive_unlabelled == 0

    with pytest.raises(InputError, match="run 12 was already evaluated"):
        evaluate_run(session, run_id=12, as_of=QUARTERS[1], results=frame(*rows), rules=rules)
    with pytest.raises(InputError, match="before the last evaluated run"):
        evaluate_run(session, run_id=13, as_of=QUARTERS[0], results=frame(*rows), rules=rules)


def test_tcell_lymphoma_flagged_after_k_runs_cleared_by_label_change_and_reopened(  # type: ignore[no-untyped-def]
    session, rules, labels_without_tcell
) -> None:
    k = rules.feedback.escalation.consecutive_unlabelled_runs
    assert k == 3
    history = []
    for i, as_of in enumerate(QUARTERS[:4]):
        history.append(evaluate_run(session, run_id=100 + i, as_of=as_of,
                                    results=frame(*_tcell_run(2.5, n=5 + i)), rules=rules))
        session.commit()
    # tracked at the first run, opened at the second (persistence 2, new cases); no flag before K consecutive
    # unlabelled runs (those tracked count); flagged at the K-th; not again afterwards
    assert [_kinds(ch, "t-cell lymphoma") for ch in history] == [
        ["created"], ["opened"], ["escalated", "label_update_recommended"], []]
    assert "label_update_recommended" in _kinds(history[2], "malignancy_t_cell")
    crs = [c.kind for ch in history for c in ch if c.event == "cytokine release syndrome"]
    assert crs == ["created"]
    tcl = session.scalars(select(Signal).where(Signal.event == "t-cell lymphoma")).one()
    assert tcl.label_update_recommended and tcl.escalated
    assert (tcl.label_update_since, tcl.label_update_jurisdictions) == (QUARTERS[2], ["FDA"])
    ev = tcl.evidence
    assert ev["unlabelled_in"] == ["FDA"] and ev["cases"] == 7
    assert ev["serious_cases"] == 4 and ev["deaths"] == 1
    assert [t["as_of"] for t in ev["trend"]] == [q.isoformat() for q in QUARTERS[:3]]
    assert ev["cumulative_incidence"] is None
    assert tcl.status == "new"  # the system recommends; people move the lifecycle

    # a reviewer validates and prioritises; then the label change is recorded
    transition_signal(session, tcl.id, "validated", by="alice", reason="cases reviewed: T-cell origin")
    transition_signal(session, tcl.id, "prioritised", by="alice", reason="serious, unlabelled")
    label, cleared = record_label_change(
        session, LabelEntry(product="Kymriah", jurisdiction="FDA", event="malignancy_t_cell", section="boxed_warning",
                            effective_date=D(2024, 4, 19)), by="bob", reason="FDA approved boxed warning update",
        rules=rules)
    session.commit()
    assert label.product == TISA
    assert sorted((c.event, c.kind, c.status) for c in cleared) == [
        ("malignancy_t_cell", "label_update_cleared", "monitoring"),
        ("t-cell lymphoma", "label_update_cleared", "monitoring")]
    session.refresh(tcl)
    assert not tcl.label_update_recommended and tcl.status == "monitoring"
    assert tcl.monitoring_baseline == 2.5 and tcl.labelled == {"FDA": True}
    audit = session.scalars(select(SignalAudit).where(SignalAudit.signal_id == tcl.id)
                            .order_by(SignalAudit.id)).all()
    assert [(a.action, a.by, a.from_status, a.to_status) for a in audit] == [
        ("created", "pv", None, "tracked"),
        ("opened", "pv", "tracked", "new"),
        ("escalated", "pv", "new", "new"),
        ("label_update_recommended", "pv", "new", "new"),
        ("transition", "alice", "new", "validated"),
        ("transition", "alice", "validated", "prioritised"),
        ("label_update_cleared", "bob", "prioritised", "prioritised"),
        ("transition", "bob", "prioritised", "monitoring"),
    ]
    assert "FDA boxed_warning now lists malignancy_t_cell from 2024-04-19" in audit[-2].reason

    # monitoring: EB05 4.0 < 2 x 2.5 stays; 5.5 >= 5.0 reopens, labelled so no new flag
    quiet = evaluate_run(session, run_id=200, as_of=QUARTERS[6], results=frame(*_tcell_run(4.0, n=9)),
                         rules=rules)
    session.commit()
    assert _kinds(quiet, "t-cell lymphoma") == []
    loud = evaluate_run(session, run_id=201, as_of=QUARTERS[7], results=frame(*_tcell_run(5.5, n=10)),
                        rules=rules)
    session.commit()
    assert _kinds(loud, "t-cell lymphoma") == ["reopened"]
    session.refresh(tcl)
    assert tcl.status == "validated" and tcl.reopened_count == 1 and not tcl.label_update_recommended
    last = session.scalars(select(SignalAudit).where(SignalAudit.signal_id == tcl.id)
                           .order_by(SignalAudit.id.desc())).first()
    assert last is not None and last.by == "pv" and "eb05 5.5 >= 2 x 2.5" in last.reason


def test_reopened_while_unlabelled_is_flagged_again(session, rules, labels_without_tcell) -> None:  # type: ignore[no-untyped-def]
    evaluate_run(session, run_id=1, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    tcl = session.scalars(select(Signal).where(Signal.event == "t-cell lymphoma")).one()
    for status in ("validated", "prioritised", "assessed", "monitoring"):
        transition_signal(session, tcl.id, status, by="carol", reason="watch only", rules=rules)
    session.commit()
    assert tcl.monitoring_baseline == 2.5
    assert tcl.cases_checked == 6  # the count when monitoring began
    changes = evaluate_run(session, run_id=2, as_of=QUARTERS[1], results=frame(*_tcell_run(5.0, n=8)),
                           rules=rules)
    session.commit()
    assert _kinds(changes, "t-cell lymphoma") == ["reopened", "escalated", "label_update_recommended"]
    assert tcl.status == "validated" and tcl.label_update_recommended
    assert [r["rule"] for r in tcl.evidence["rules"]] == ["strong", "reopened"]  # EB05 5, n 8: strong too
    assert tcl.evidence["new_cases"] == {"n": 8, "since": 6} and tcl.cases_checked == 8


def test_real_seed_replay_flag_clears_when_the_april_2024_label_comes_into_force(session, rules) -> None:  # type: ignore[no-untyped-def]
    # The real seed, judged on the US boxed warning alone: T-cell lymphoma was in Warnings and Precautions
    # (Secondary Malignancies) from approval, and in the box from 2024-04-19.
    ensure_seeded(session)
    rules = rules.model_copy(update={"feedback": rules.feedback.model_copy(
        update={"jurisdictions": ["FDA"], "labelled_sections": ["boxed_warning"]})})
    kinds = {}
    for i, as_of in enumerate(QUARTERS[:7]):
        ch = evaluate_run(session, run_id=i + 1, as_of=as_of, results=frame(*_tcell_run(2.5, n=5 + i)),
                          rules=rules)
        kinds[as_of] = _kinds(ch, "t-cell lymphoma")
        session.commit()
    assert kinds[QUARTERS[2]] == ["escalated", "label_update_recommended"]
    assert kinds[QUARTERS[6]] == ["label_update_cleared"]  # 2024-06-30: boxed warning of 2024-04-19 in force
    tcl = session.scalars(select(Signal).where(Signal.event == "t-cell lymphoma")).one()
    assert tcl.status == "monitoring" and tcl.monitoring_since == QUARTERS[6]
    last = session.scalars(select(SignalAudit).where(SignalAudit.signal_id == tcl.id)
                           .order_by(SignalAudit.id.desc())).first()
    assert last is not None and last.by == "pv" and last.to_status == "monitoring"


def test_strong_signal_escalates_at_once_and_incidence_hook_feeds_the_evidence(session, rules, gap_registry) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    calls = []

    def incidence(sess, product, event, level, as_of):  # type: ignore[no-untyped-def]
        calls.append((product, event, level, as_of))
        return {"cohort": "registry-A", "time_years": 2, "cuminc": 0.0123}

    rows = [strong_row("brexucabtagene autoleucel", "Peripheral T-cell lymphoma unspecified", eb05=4.5, n=7),
            strong_row("brexucabtagene autoleucel", "Nausea", eb05=2.1)]
    changes = evaluate_run(session, run_id=5, as_of=D(2023, 3, 31), results=frame(*rows), rules=rules,
                           incidence=incidence)
    session.commit()
    ptcl = "peripheral t-cell lymphoma unspecified"
    # strong at first detection, unlabelled by the FDA, every case new: opened and flagged at once
    assert _kinds(changes, ptcl) == ["created", "opened", "escalated", "label_update_recommended"]
    assert _kinds(changes, "nausea") == ["created"]  # tracked
    sig = session.scalars(select(Signal).where(Signal.event == ptcl)).one()
    assert (sig.status, sig.opened_as_of) == ("new", D(2023, 3, 31))
    assert sig.evidence["cumulative_incidence"]["cuminc"] == 0.0123
    assert "strong: strong (eb05 4.5 >= 4, n 7 >= 5) in run 5 (2023-03-31)" in sig.evidence["reason"]
    assert sig.evidence["rules"] == [{"rule": "strong", "criterion": "strong (eb05 4.5 >= 4, n 7 >= 5)", "runs": [
        {"run_id": 5, "as_of": "2023-03-31", "n": 7, "criteria_met": ["mgps", "prr_evans", "ror", "bcpnn"]}]}]
    # a T-cell lymphoma belongs in the boxed warning (secondary malignancies)
    assert sig.evidence["label_section"] == {"section": "boxed_warning",
                                             "why": "event in group secondary_malignancy"}
    assert sig.evidence["opened"]["rules"][0]["rule"] == "strong"
    assert calls == [("brexucabtagene autoleucel", ptcl, "pt", D(2023, 3, 31))]


def test_refuted_signal_is_not_escalated(session, rules, labels_without_tcell) -> None:  # type: ignore[no-untyped-def]
    evaluate_run(session, run_id=1, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    tcl = session.scalars(select(Signal).where(Signal.event == "t-cell lymphoma")).one()
    transition_signal(session, tcl.id, "refuted", by="dave", reason="duplicates of one case")
    for i, as_of in enumerate(QUARTERS[1:5]):
        ch = evaluate_run(session, run_id=2 + i, as_of=as_of, results=frame(*_tcell_run(2.5)), rules=rules)
        assert _kinds(ch, "t-cell lymphoma") == []
    session.commit()
    assert tcl.status == "refuted" and not tcl.label_update_recommended and tcl.consecutive_unlabelled == 0


def test_lifecycle_allowed_path_and_forbidden_transitions_with_message(session, rules) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    evaluate_run(session, run_id=1, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    sid = session.scalars(select(Signal.id).where(Signal.event == "t-cell lymphoma")).one()
    with pytest.raises(InvalidTransitionError) as err:
        transition_signal(session, sid, "closed", by="eve", reason="skip ahead")
    assert str(err.value) == (f"cannot move signal {sid} from 'tracked' to 'closed'; "
                              "allowed from 'tracked': validated, refuted")
    with pytest.raises(InvalidTransitionError, match="allowed from 'tracked': validated, refuted"):
        transition_signal(session, sid, "new", by="eve", reason="only the registry opens a finding")
    with pytest.raises(InvalidTransitionError, match="unknown status 'done'"):
        transition_signal(session, sid, "done", by="eve", reason="x")
    with pytest.raises(InputError, match="needs a reason"):
        transition_signal(session, sid, "validated", by="eve", reason="")
    path = ["validated", "prioritised", "assessed", "action_recommended", "monitoring", "closed"]
    for status in path:
        transition_signal(session, sid, status, by="eve", reason=f"step to {status}")
    session.commit()
    with pytest.raises(InvalidTransitionError, match="allowed from 'closed': none \\(final state\\)"):
        transition_signal(session, sid, "validated", by="eve", reason="x")
    detail = signal_detail(session, sid)
    assert [a["to"] for a in detail["audit"]] == ["tracked", *path]
    assert all(a["by"] == "eve" and a["reason"] == f"step to {a['to']}" for a in detail["audit"][1:])


def test_audit_trail_cannot_be_changed_through_orm_bulk_or_sql(session, rules, pg_engine, pg_url) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    evaluate_run(session, run_id=1, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    session.commit()
    entry = session.scalars(select(SignalAudit)).first()
    assert entry is not None
    entry.reason = "nothing happened"
    with pytest.raises(AuditTrailError, match="signal_audit is append-only"):
        session.flush()
    session.rollback()
    session.delete(session.scalars(select(SignalAudit)).first())
    with pytest.raises(AuditTrailError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(AuditTrailError, match="UPDATE and DELETE are refused"):
        session.execute(update(SignalAudit).values(by="mallory"))
    with pytest.raises(AuditTrailError, match="append-only"):
        session.execute(text("DELETE FROM signal_audit"))
    session.rollback()
    # below the ORM: the PostgreSQL trigger
    with pg_engine.connect() as conn:
        for sql in ("UPDATE signal_audit SET by = 'mallory'", "DELETE FROM signal_audit",
                    "UPDATE label_audit SET reason = 'x'", "DELETE FROM label_audit"):
            with pytest.raises(Exception, match="append-only") as err:
                conn.execute(text(sql))
            assert isinstance(err.value.orig, psycopg.errors.InsufficientPrivilege)  # type: ignore[attr-defined]
            conn.rollback()
    count = session.scalar(select(SignalAudit.id).order_by(SignalAudit.id.desc()).limit(1))
    assert count == 3 and session.scalars(select(SignalAudit.by)).all() == ["pv", "pv", "pv"]


def test_priority_orders_every_list(session, rules, gap_registry) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    rows = [
        strong_row(TISA, "Cytokine release syndrome", eb05=12.0, n=300, serious=100, deaths=3),  # labelled
        strong_row(TISA, "T-cell lymphoma", eb05=3.5, n=6, serious=6, deaths=3),  # unlabelled, serious
        strong_row(TISA, "Rash", eb05=2.1, n=4, serious=0, deaths=0),  # unlabelled, mild
    ]
    evaluate_run(session, run_id=1, as_of=D(2023, 3, 31), results=frame(*rows), rules=rules)
    session.commit()
    listed = list_signals(session)
    assert [s.event for s in listed] == ["t-cell lymphoma", "cytokine release syndrome", "rash"]
    assert [s.priority for s in listed] == sorted((s.priority for s in listed), reverse=True)
    # a rising trend moves rash above CRS
    evaluate_run(session, run_id=2, as_of=D(2023, 6, 30), results=frame(
        rows[0], rows[1], strong_row(TISA, "Rash", eb05=8.0, n=9, serious=0, deaths=0)), rules=rules)
    session.commit()
    listed = list_signals(session)
    assert [s.event for s in listed][:2] == ["rash", "t-cell lymphoma"]
    assert [s.event for s in list_signals(session, product="Kymriah", status="new")][0] == "rash"
    with pytest.raises(InputError, match="unknown status"):
        list_signals(session, status="open")


def test_rules_snapshot_and_open_filter(session, rules, gap_registry) -> None:  # type: ignore[no-untyped-def]
    from pv.errors import NotFoundError

    ensure_seeded(session)
    assert not is_evaluated(session, 42)
    evaluate_run(session, run_id=42, as_of=QUARTERS[0], results=frame(*_tcell_run(2.5)), rules=rules)
    session.commit()
    assert is_evaluated(session, 42) and not is_evaluated(session, 43)
    assert rules_for_run(session, 42) == rules.snapshot()
    with pytest.raises(NotFoundError, match="run 43 has not been evaluated"):
        rules_for_run(session, 43)
    assert list_signals(session, open_only=True) == []  # tracked findings are not open
    evaluate_run(session, run_id=43, as_of=QUARTERS[1], results=frame(*_tcell_run(2.5, n=7)), rules=rules)
    session.commit()
    assert {s.event for s in list_signals(session, open_only=True)} == {"t-cell lymphoma", "malignancy_t_cell"}
    sid = session.scalars(select(Signal.id).where(Signal.event == "t-cell lymphoma")).one()
    transition_signal(session, sid, "refuted", by="x", reason="y")
    assert {s.event for s in list_signals(session, open_only=True)} == {"malignancy_t_cell"}
    assert [s.event for s in list_signals(session, status="tracked")] == ["cytokine release syndrome"]


def test_excluded_events_never_become_signals(session, rules) -> None:  # type: ignore[no-untyped-def]
    """The treated disease, its relapse and death without a cause meet every threshold here but are not ADRs."""
    assert "plasma cell myeloma recurrent" in {e.casefold() for e in rules.detection.exclude_events}
    results = frame(
        strong_row(TISA, "PLASMA CELL MYELOMA RECURRENT", eb05=9.0),
        strong_row(TISA, "Disease progression", eb05=5.0),
        strong_row(TISA, "Death", eb05=3.0),
        strong_row(TISA, "Cytokine release syndrome", eb05=12.0),
    )
    changes = evaluate_run(session, run_id=1, as_of=QUARTERS[0], results=results, rules=rules)
    session.commit()
    assert sorted(s.event for s in session.scalars(select(Signal))) == ["cytokine release syndrome"]
    assert {c.event for c in changes} == {"cytokine release syndrome"}


def test_a_run_without_ebgm_meets_no_ebgm_criterion_and_keeps_the_others(session, rules) -> None:  # type: ignore[no-untyped-def]
    """A table whose MGPS prior was degenerate has empty EBGM, EB05 and EB95 (NaN): the EBGM criterion and the
    strong escalation criterion (EB05 >= 4) cannot hold, PRR, ROR and IC decide alone, priority uses IC025."""
    ensure_seeded(session)
    # the `any` profile: EB05, Evans, ROR and IC criteria, any of them enough
    rules = RuleSet.from_mapping({**rules.snapshot(), "detection": {**rules.snapshot()["detection"],
                                                                    "profile": "any", "levels": {}}})
    withheld = {"ebgm": math.nan, "eb05": math.nan, "eb95": math.nan}
    results = frame(
        # strong on every measure; EBGM withheld: detected by PRR, ROR and IC
        {**strong_row(TISA, "T-cell lymphoma", eb05=6.0, n=8), **withheld},
        {**strong_row(TISA, "malignancy_t_cell", "group", eb05=6.0, n=8), **withheld},
        # a pair that only EB05 would have raised: with EBGM withheld nothing holds
        {**weak_row(TISA, "Pancytopenia", n=5), **withheld},
        # the same kind of pair with EB05 present (another table) is raised by the EBGM criterion alone
        {**weak_row(AXI, "Pancytopenia", n=5), "ebgm": 4.0, "eb05": 3.0, "eb95": 5.0},
    )
    changes = evaluate_run(session, run_id=7, as_of=QUARTERS[0], results=results, rules=rules)
    session.commit()
    assert sorted((c.product, c.event, c.kind) for c in changes) == [
        (AXI, "pancytopenia", "created"), (TISA, "malignancy_t_cell", "created"),
        (TISA, "t-cell lymphoma", "created")]
    measures = {(s.product, s.event): m for s, m in session.execute(
        select(Signal, SignalMeasure).join(SignalMeasure, SignalMeasure.signal_id == Signal.id))}
    tcl = measures[(TISA, "t-cell lymphoma")]
    assert tcl.meets_rules and tcl.criteria_met == ["prr_evans", "ror", "bcpnn"]
    assert tcl.eb05 is None and tcl.ebgm is None
    assert measures[(TISA, "malignancy_t_cell")].criteria_met == ["prr_evans", "ror", "bcpnn"]
    assert measures[(AXI, "pancytopenia")].criteria_met == ["mgps"]
    # EB05 6 and n 8 would meet the strong criterion (EB05 >= 4, n >= 5) and escalate at once; withheld, no
    sig = session.scalars(select(Signal).where(Signal.product == TISA, Signal.event == "t-cell lymphoma")).one()
    assert not sig.escalated and not sig.label_update_recommended
    # strength from IC025 alone: (log2(6) - 0.2) / log2(16)
    assert sig.strength == pytest.approx((math.log2(6.0) - 0.2) / 4.0, abs=1e-4)
