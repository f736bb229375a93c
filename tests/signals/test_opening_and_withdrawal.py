"""SDRs and signals (GVP IX): findings tracked until the opening rule opens them; flags that follow the evidence;
escalation only with new cases, and the reasons recorded. Hand-made runs on the real PostgreSQL database."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pv.errors import ConfigError
from pv.models.signals import Signal, SignalAudit, SignalMeasure
from pv.normalise import default_event_groups
from pv.signals.commands import transition_signal
from pv.signals.evaluation import RegistryUpdate, evaluate_run
from pv.signals.labels import LabelIndex, ensure_seeded
from pv.signals.queries import SignalFilter, changes_of_run, find_signals, signal_detail
from pv.signals.rules import RuleSet
from tests.conftest import REPO
from tests.signals.helpers import any_profile_rules, frame, row, strong_row, weak_row

D = dt.date
TISA = "tisagenlecleucel"  # judged by the FDA only; T-cell malignancies on its FDA label from 2024-04-19
BREXU = "brexucabtagene autoleucel"
# quarter ends before the FDA boxed warning on T-cell malignancies (2024-04-19)
Q = [D(2023, 3, 31), D(2023, 6, 30), D(2023, 9, 30), D(2023, 12, 31), D(2024, 3, 31)]


@pytest.fixture(autouse=True)
def _gap_labels(gap_registry: None) -> None:
    """These rules are judged against the test label registry with the T-cell malignancy gap before April 2024
    (tests/data/labels_gap.yaml), not against the shipped seed."""


@pytest.fixture
def rules() -> RuleSet:
    assert RuleSet.load(REPO / "config" / "signals.yaml").opening.persistence == 1  # shipped
    rules = any_profile_rules()  # these tests: a finding opens after 2 consecutive runs
    assert rules.opening.persistence == 2 and rules.feedback.escalation.consecutive_unlabelled_runs == 3
    assert rules.feedback.withdrawal.runs_not_meeting == 1  # shipped; these tests open after 2 runs, withdraw
    withdrawal = rules.feedback.withdrawal.model_copy(update={"runs_not_meeting": 3})  # after 3
    return rules.model_copy(update={"feedback": rules.feedback.model_copy(update={"withdrawal": withdrawal})})


def _run(session: Session, rules: RuleSet, run_id: int, as_of: dt.date, *rows: dict) -> list[str]:
    changes = evaluate_run(session, run_id=run_id, as_of=as_of, results=frame(*rows), rules=rules)
    session.commit()
    return [f"{c.event}:{c.kind}" for c in changes]


def _signal(session: Session, product: str, event: str) -> Signal:
    return session.scalars(select(Signal).where(Signal.product == product, Signal.event == event)).one()


def _audit(session: Session, signal: Signal) -> list[SignalAudit]:
    return list(session.scalars(select(SignalAudit).where(SignalAudit.signal_id == signal.id)
                                .order_by(SignalAudit.id)))


def _ever_opened(session: Session, signal: Signal) -> dt.date | None:
    """The benchmark's definition: the earliest audit as-of with to_status 'new'."""
    return session.scalar(select(func.min(SignalAudit.as_of))
                          .where(SignalAudit.signal_id == signal.id, SignalAudit.to_status == "new"))


def test_a_finding_opens_only_when_it_persists_with_new_cases(session: Session, rules: RuleSet) -> None:
    ensure_seeded(session)
    tcl = "t-cell lymphoma"
    # 1: first detection: tracked (one run is not persistence, EB05 2.5 is not strong); no person is told
    assert _run(session, rules, 1, Q[0], strong_row(TISA, "T-cell lymphoma", eb05=2.5, n=5)) == [f"{tcl}:created"]
    sig = _signal(session, TISA, tcl)
    assert (sig.status, sig.cases_checked, sig.consecutive_met) == ("tracked", 5, 1)
    assert find_signals(session) == []  # not in the action queue
    assert [f.signal.id for f in find_signals(session, SignalFilter(all_findings=True))] == [sig.id]
    # 2: meets the rules again, but with the same 5 cases: no new cases, stays tracked
    assert _run(session, rules, 2, Q[1], strong_row(TISA, "T-cell lymphoma", eb05=2.5, n=5)) == []
    # 3: below the rules: persistence broken
    assert _run(session, rules, 3, Q[2], weak_row(TISA, "T-cell lymphoma", n=5)) == []
    session.refresh(sig)
    assert (sig.status, sig.consecutive_met, sig.consecutive_not_met) == ("tracked", 0, 1)
    # 4: meets with a new case, but in one run only since the break
    assert _run(session, rules, 4, Q[3], strong_row(TISA, "T-cell lymphoma", eb05=2.5, n=6)) == []
    # 5: two consecutive runs, 6 cases > the 5 when first tracked, unlabelled by the FDA: opened
    assert _run(session, rules, 5, Q[4], strong_row(TISA, "T-cell lymphoma", eb05=2.5, n=6)) == [f"{tcl}:opened"]
    session.refresh(sig)
    assert (sig.status, sig.opened_as_of, sig.escalated) == ("new", Q[4], False)  # K = 3 not reached
    opened = _audit(session, sig)[-1]
    assert (opened.action, opened.by, opened.from_status, opened.to_status, opened.run_id, opened.as_of) == (
        "opened", "pv", "tracked", "new", 5, Q[4])
    assert opened.reason.startswith("opened: persistence: met the detection rules in 2 consecutive runs "
                                    "(threshold 2): run 4 (2023-12-31), run 5 (2024-03-31); criteria met: mgps")
    assert opened.reason.endswith("; 6 cases, 1 new since first tracked (5); unlabelled in FDA")
    assert _ever_opened(session, sig) == Q[4]
    assert [(f.signal.id, f.needs_decision) for f in find_signals(session)] == [(sig.id, ("new",))]
    assert changes_of_run(session, 5) == {"opened": 1}
    detail = signal_detail(session, sig.id)
    assert (detail["status"], detail["opened_as_of"], detail["consecutive_met"], detail["consecutive_not_met"],
            detail["cases_checked"]) == ("new", "2024-03-31", 2, 0, 6)
    assert [a["action"] for a in detail["audit"]] == ["created", "opened"]


def test_a_strong_finding_opens_at_first_detection_but_not_later_without_new_cases(
    session: Session, rules: RuleSet
) -> None:
    ensure_seeded(session)
    # every case is new at first detection: strong (EB05 >= 4, n >= 5) and unlabelled opens at once (and,
    # strong with new cases, is flagged at once); the weaker one is tracked
    changes = evaluate_run(session, run_id=1, as_of=Q[0], rules=rules, results=frame(
        strong_row(BREXU, "Hepatic failure", eb05=4.5, n=5), strong_row(TISA, "Hepatic failure", eb05=2.5, n=6)))
    session.commit()
    assert [c.kind for c in changes if c.product == BREXU] == [
        "created", "opened", "escalated", "label_update_recommended"]
    assert [c.kind for c in changes if c.product == TISA] == ["created"]
    brexu, tisa = _signal(session, BREXU, "hepatic failure"), _signal(session, TISA, "hepatic failure")
    assert (brexu.status, tisa.status) == ("new", "tracked")
    assert "strong: strong (eb05 4.5 >= 4, n 5 >= 5) in run 1 (2023-03-31)" in _audit(session, brexu)[1].reason
    assert "5 cases, all new" in _audit(session, brexu)[1].reason
    # later the tracked one turns strong and persists, but brings no new case: it stays tracked
    assert _run(session, rules, 2, Q[1], strong_row(BREXU, "Hepatic failure", eb05=4.5, n=5),
                strong_row(TISA, "Hepatic failure", eb05=5.0, n=6)) == []
    session.refresh(tisa)
    assert tisa.status == "tracked" and _ever_opened(session, tisa) is None


def test_a_finding_labelled_everywhere_stays_tracked_unless_it_doubles(session: Session, rules: RuleSet) -> None:
    ensure_seeded(session)
    crs = "cytokine release syndrome"  # on every Kymriah FDA label (boxed warning)

    def crs_row(eb05: float, n: int) -> dict:
        return strong_row(TISA, "Cytokine release syndrome", eb05=eb05, n=n, serious=n // 2, deaths=1)

    assert _run(session, rules, 1, Q[0], crs_row(3.0, 50)) == [f"{crs}:created"]
    sig = _signal(session, TISA, crs)
    assert (sig.labelled, sig.tracked_baseline) == ({"FDA": True}, 3.0)
    # persistent, strong, with new cases, but a known risk whose EB05 4.5 < 2 x 3: tracked, its trend kept
    assert _run(session, rules, 2, Q[1], crs_row(4.5, 60)) == []
    assert _run(session, rules, 3, Q[2], crs_row(5.9, 70)) == []
    session.refresh(sig)
    assert sig.status == "tracked" and find_signals(session) == []
    trend = session.scalars(select(SignalMeasure.eb05).where(SignalMeasure.signal_id == sig.id)
                            .order_by(SignalMeasure.as_of)).all()
    assert trend == [3.0, 4.5, 5.9]
    # EB05 6.1 >= 2 x 3.0: it strengthened markedly and opens; labelled, so no label update is recommended
    assert _run(session, rules, 4, Q[3], crs_row(6.1, 80)) == [f"{crs}:opened"]
    session.refresh(sig)
    assert (sig.status, sig.label_update_recommended, sig.escalated) == ("new", False, False)
    reason = _audit(session, sig)[-1].reason
    assert ("labelled in every judged jurisdiction (FDA) but strengthened: eb05 6.1 >= 2 x 3 (its value when "
            "first tracked on 2023-03-31)") in reason
    # opened by the rule, it is a decision to make although the event is labelled
    assert [(f.signal.id, f.needs_decision) for f in find_signals(session)] == [(sig.id, ("new",))]


def test_a_known_risk_first_tracked_with_a_weak_eb05_does_not_open_on_data_volume(
    session: Session, rules: RuleSet
) -> None:
    """EB05 rises as cases accumulate: doubling from a value below the floor (2) is not marked strengthening."""
    ensure_seeded(session)
    assert rules.opening.known_risk_floor == 2.0

    def storm(eb05: float, n: int) -> dict:  # cytokine storm is in the crs group, on the FDA boxed warning;
        # met by PRR (Evans) whatever EB05
        return row(TISA, "Cytokine storm", n=n, expected=n / 3, prr=3.0, prr_chi2=10.0, ror=3.2, ror_lower=0.9,
                   ror_upper=9.0, ic=1.5, ic025=-0.2, ic975=2.5, ebgm=eb05 * 2, eb05=eb05, eb95=eb05 * 4,
                   n_serious=1, n_deaths=0)

    assert _run(session, rules, 1, Q[0], storm(0.8, 5)) == ["cytokine storm:created"]
    # EB05 0.8 -> 1.7 -> 3.9: more than doubled, with new cases, but below 2 x 2 (the floor): tracked
    assert _run(session, rules, 2, Q[1], storm(1.7, 8)) == []
    assert _run(session, rules, 3, Q[2], storm(3.9, 12)) == []
    # EB05 4.2 >= 2 x max(0.8, 2): opened
    assert _run(session, rules, 4, Q[3], storm(4.2, 14)) == ["cytokine storm:opened"]
    sig = _signal(session, TISA, "cytokine storm")
    assert ("strengthened: eb05 4.2 >= 2 x 2 (its value when first tracked on 2023-03-31, 0.8, counted as at "
            "least 2)") in _audit(session, sig)[-1].reason


def test_escalation_needs_new_cases_and_records_why(session: Session, rules: RuleSet) -> None:
    ensure_seeded(session)
    tcl = "t-cell lymphoma"

    def tcl_row(eb05: float, n: int) -> dict:
        return strong_row(TISA, "T-cell lymphoma", eb05=eb05, n=n, serious=n - 1, deaths=1)

    assert _run(session, rules, 1, Q[0], tcl_row(2.5, 5)) == [f"{tcl}:created"]
    assert _run(session, rules, 2, Q[1], tcl_row(2.5, 6)) == [f"{tcl}:opened"]
    # persistent (3 and 4 consecutive unlabelled runs) and strong (EB05 4.5, n 6), but no case since it opened
    assert _run(session, rules, 3, Q[2], tcl_row(4.5, 6)) == []
    assert _run(session, rules, 4, Q[3], tcl_row(4.5, 6)) == []
    sig = _signal(session, TISA, tcl)
    assert (sig.consecutive_unlabelled, sig.escalated, sig.label_update_recommended) == (4, False, False)
    # one new case: escalated and flagged, with the reasons
    assert _run(session, rules, 5, Q[4], tcl_row(4.5, 7)) == [f"{tcl}:escalated", f"{tcl}:label_update_recommended"]
    session.refresh(sig)
    assert sig.cases_checked == 7 and sig.label_update_jurisdictions == ["FDA"]
    ev = sig.evidence
    assert [r["rule"] for r in ev["rules"]] == ["persistence", "strong"]
    persistence = ev["rules"][0]
    assert persistence["threshold"] == 3
    assert [(r["run_id"], r["as_of"], r["n"]) for r in persistence["runs"]] == [
        (1, "2023-03-31", 5), (2, "2023-06-30", 6), (3, "2023-09-30", 6), (4, "2023-12-31", 6),
        (5, "2024-03-31", 7)]
    assert ev["rules"][1]["criterion"] == "strong (eb05 4.5 >= 4, n 7 >= 5)"
    assert ev["new_cases"] == {"n": 7, "since": 6}
    assert ev["unlabelled_in"] == ["FDA"]
    assert ev["label_section"] == {"section": "boxed_warning", "why": "event in group secondary_malignancy"}
    assert ev["opened"]["as_of"] == "2023-06-30"
    escalated, flagged = _audit(session, sig)[-2:]
    assert (escalated.action, flagged.action) == ("escalated", "label_update_recommended")
    assert escalated.reason.startswith(
        "persistence: met the detection rules while unlabelled in FDA in 5 consecutive runs (threshold 3): "
        "run 1 (2023-03-31), run 2 (2023-06-30), run 3 (2023-09-30), run 4 (2023-12-31), run 5 (2024-03-31); "
        "strong: strong (eb05 4.5 >= 4, n 7 >= 5) in run 5 (2024-03-31); criteria met: mgps (eb05 4.5 >= 2)")
    assert escalated.reason.endswith("; 7 cases, 1 new since the last check (6); unlabelled in FDA; "
                                     "label section: boxed_warning (event in group secondary_malignancy)")
    assert flagged.reason == f"label update recommended for {TISA} in FDA: {escalated.reason}"


def test_flag_withdrawn_after_k_runs_not_meeting_the_rules_and_raised_again_only_with_new_cases(
    session: Session, rules: RuleSet
) -> None:
    ensure_seeded(session)
    ptcl = "peripheral t-cell lymphoma unspecified"

    def strong(n: int) -> dict:
        return strong_row(BREXU, "Peripheral T-cell lymphoma unspecified", eb05=4.5, n=n)

    other = strong_row(BREXU, "Nausea", eb05=2.1, n=4)  # keeps the runs non-empty
    assert _run(session, rules, 1, Q[0], strong(7), other) == [
        f"{ptcl}:created", f"{ptcl}:opened", f"{ptcl}:escalated", f"{ptcl}:label_update_recommended",
        "nausea:created"]
    sig = _signal(session, BREXU, ptcl)
    # below the rules, then not measured at all, then below again: withdrawn at the third run not meeting them
    assert _run(session, rules, 2, Q[1], weak_row(BREXU, "Peripheral T-cell lymphoma unspecified", n=7), other) == []
    assert _run(session, rules, 3, Q[2], other) == []
    session.refresh(sig)
    assert sig.label_update_recommended and sig.consecutive_not_met == 2
    assert _run(session, rules, 4, Q[3], weak_row(BREXU, "Peripheral T-cell lymphoma unspecified", n=7),
                other) == [f"{ptcl}:label_update_withdrawn"]
    session.refresh(sig)
    assert (sig.label_update_recommended, sig.label_update_jurisdictions, sig.escalated) == (False, [], False)
    assert sig.status == "new"  # people decide the lifecycle
    withdrawn = _audit(session, sig)[-1]
    assert (withdrawn.action, withdrawn.by, withdrawn.run_id, withdrawn.as_of) == (
        "label_update_withdrawn", "pv", 4, Q[3])
    assert withdrawn.reason == ("label update recommendation withdrawn: the signal has not met the detection "
                                "rules in 3 consecutive runs (threshold 3; last met them on 2023-03-31), the last "
                                "run 4 (2023-12-31)")
    assert sig.evidence["withdrawn"]["jurisdictions"] == ["FDA"] and sig.evidence["rules"][0]["rule"] == "strong"
    assert changes_of_run(session, 4) == {"label_update_withdrawn": 1}
    # a withdrawal is information, not a decision: the signal is in the queue as new only
    assert {f.signal.id: f.needs_decision for f in find_signals(session)}[sig.id] == ("new",)
    # strong again with the same 7 cases: not flagged again; with an 8th case: flagged again
    assert _run(session, rules, 5, Q[4], strong(7), other) == []
    assert _run(session, rules, 6, D(2024, 4, 1), strong(8), other) == [
        f"{ptcl}:escalated", f"{ptcl}:label_update_recommended"]


def test_refuting_or_closing_a_flagged_signal_withdraws_its_flag(session: Session, rules: RuleSet) -> None:
    ensure_seeded(session)
    _run(session, rules, 1, Q[0], strong_row(BREXU, "Peripheral T-cell lymphoma unspecified", eb05=4.5, n=7),
         strong_row(BREXU, "T-cell lymphoma", eb05=5.0, n=6), strong_row(BREXU, "Hepatic failure", eb05=4.2, n=9))
    ptcl = _signal(session, BREXU, "peripheral t-cell lymphoma unspecified")
    tcl = _signal(session, BREXU, "t-cell lymphoma")
    liver = _signal(session, BREXU, "hepatic failure")
    assert ptcl.label_update_recommended and tcl.label_update_recommended and liver.label_update_recommended
    transition_signal(session, ptcl.id, "refuted", by="ann", reason="duplicates of one case")
    for status in ("validated", "prioritised", "assessed"):
        transition_signal(session, tcl.id, status, by="bob", reason="reviewed")
    transition_signal(session, tcl.id, "closed", by="bob", reason="label change submitted outside pv")
    transition_signal(session, liver.id, "validated", by="bob", reason="real")  # not an ending: flag kept
    session.commit()
    assert [(a.action, a.by, a.from_status, a.to_status) for a in _audit(session, ptcl)[-2:]] == [
        ("transition", "ann", "new", "refuted"), ("label_update_withdrawn", "ann", "refuted", "refuted")]
    assert _audit(session, ptcl)[-1].reason == ("label update recommendation withdrawn: signal refuted by ann "
                                                "(duplicates of one case)")
    assert _audit(session, tcl)[-1].reason == ("label update recommendation withdrawn: signal closed by bob "
                                               "(label change submitted outside pv)")
    assert not ptcl.label_update_recommended and not tcl.label_update_recommended
    assert liver.label_update_recommended
    assert ptcl.evidence["withdrawn"]["by"] == "ann"


def test_label_section_of_a_recommendation() -> None:
    rules = RuleSet.load(REPO / "config" / "signals.yaml")
    update = RegistryUpdate(cast(Any, None), 1, Q[0], rules, LabelIndex([], groups=default_event_groups()), None)

    def section(event: str, level: str = "pt", *, n: float = 20, serious: float = 0, deaths: float = 0) -> tuple:
        signal = Signal(product=TISA, event=event, level=level)
        measure = SignalMeasure(n=n, n_serious=serious, n_deaths=deaths)
        return update.label_section(signal, measure)

    assert section("t-cell lymphoma") == ("boxed_warning", "event in group secondary_malignancy")
    assert section("malignancy_myeloid", "group") == ("boxed_warning", "event in group secondary_malignancy")
    assert section("secondary_malignancy", "group") == ("boxed_warning", "event in group secondary_malignancy")
    assert section("hepatic failure", serious=20, deaths=10) == ("boxed_warning", "10 of 20 cases fatal (>= 50%)")
    assert section("hepatic failure", serious=20, deaths=4) == ("warnings_and_precautions",
                                                                "4 of 20 cases fatal (>= 20%)")
    assert section("hepatic failure", serious=16, deaths=3) == ("warnings_and_precautions",
                                                                "16 of 20 cases serious (>= 80%)")
    assert section("rash", serious=15, deaths=3) == ("adverse_reactions", "15 of 20 cases serious, 3 fatal")
    assert section("crs", "group", serious=3) == ("adverse_reactions", "3 of 20 cases serious, 0 fatal")

def test_opening_and_withdrawal_rules_are_validated() -> None:
    import yaml

    data = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
    data["opening"]["persistence"] = 0
    with pytest.raises(ConfigError, match="opening.persistence"):
        RuleSet.from_mapping(data)
    data["opening"] = {"persistence": 1, "strong": {"conditions": ["eb05 >> 4"]}}
    with pytest.raises(ConfigError, match="invalid condition 'eb05 >> 4'"):
        RuleSet.from_mapping(data)
    data["opening"] = {"persistence": 1, "known_risk_floor": -1}
    with pytest.raises(ConfigError, match="opening.known_risk_floor"):
        RuleSet.from_mapping(data)
    data["opening"] = {"persistence": 1}
    data["feedback"]["withdrawal"] = {"runs_not_meeting": 0}
    with pytest.raises(ConfigError, match="feedback.withdrawal.runs_not_meeting"):
        RuleSet.from_mapping(data)
    del data["opening"], data["feedback"]["withdrawal"]
    defaults = RuleSet.from_mapping(data)  # a rule file from before the opening rule still loads
    assert (defaults.opening.persistence, defaults.opening.strong, defaults.opening.known_risk_floor) == (
        1, None, 2.0)
    assert defaults.feedback.withdrawal.runs_not_meeting == 1
