"""The weekly report's data built from a hand-made registry across two evaluated runs: page one holds every
outstanding label update recommendation, "since the last report" the changes of the period, the old run's
report its own statuses, and the signals of one finding one row."""

from __future__ import annotations

import datetime as dt

import lxml.html
import pytest
from sqlalchemy.orm import Session

from pv.models import Case, CaseVersion, Drug, Reaction, Run, SourceFile
from pv.models.signals import Label, LabelAudit, Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.normalise import default_event_groups
from pv.report.build import build_report_data, onset_rows
from pv.report.data import ReportData
from pv.report.render import render_html
from pv.signals.history import registry_at

CILTA = "ciltacabtagene autoleucel"
AXI = "axicabtagene ciloleucel"
A_AS_OF, B_AS_OF = dt.date(2024, 3, 31), dt.date(2024, 6, 30)
A_EVAL = dt.datetime(2024, 4, 1, 6, 0, tzinfo=dt.UTC)
B_EVAL = dt.datetime(2024, 7, 1, 6, 0, tzinfo=dt.UTC)
UNLABELLED_FDA = {"FDA": False, "NMPA": True}
LABELLED = {"FDA": True, "NMPA": True}


def _run(session: Session, as_of: dt.date, evaluated: dt.datetime) -> Run:
    run = Run(status="succeeded", as_of=as_of, scope="all", parameters={}, config={}, config_hash=as_of.isoformat(),
              code_version="test", n_cases=100, n_pairs=10)
    session.add(run)
    session.flush()
    session.add(SignalRuleSnapshot(run_id=run.id, as_of=as_of, sha256="0" * 64, rules={"rules": "test"},
                                   evaluated_at=evaluated))
    return run


class Registry:
    """Writes signals, their measures and audit rows (the live rows hold the latest state only)."""

    def __init__(self, session: Session, a: Run, b: Run) -> None:
        self.session, self.a, self.b = session, a, b

    def signal(self, product: str, event: str, level: str, *, live: dict, first: Run | None = None) -> Signal:  # type: ignore[type-arg]
        first = first or self.a
        s = Signal(product=product, event=event, level=level, first_detected=first.as_of, first_run_id=first.id,
                   last_run_id=self.b.id, last_as_of=self.b.as_of, labelled=live.pop("labelled", {}),
                   label_update_jurisdictions=live.pop("jurisdictions", []), **live)
        self.session.add(s)
        self.session.flush()
        return s

    def measure(self, s: Signal, run: Run, n: float, *, meets: bool = True, labelled: dict | None = None,  # type: ignore[type-arg]
                eb05: float = 2.5, priority: float = 1.0) -> None:
        self.session.add(SignalMeasure(signal_id=s.id, run_id=run.id, as_of=run.as_of, meets_rules=meets,
                                       criteria_met=["eb05"] if meets else [], n=n, n_serious=n / 2, n_deaths=1,
                                       eb05=eb05, prr=3.0, prr_chi2=12.0, labelled=labelled or {},
                                       priority=priority))

    def audit(self, s: Signal, action: str, to: str, *, run: Run | None = None, by: str = "pv",
              at: dt.datetime | None = None, frm: str | None = None, reason: str = "because") -> None:
        when = at or ((A_EVAL if run is self.a else B_EVAL) - dt.timedelta(minutes=1))
        self.session.add(SignalAudit(signal_id=s.id, action=action, from_status=frm, to_status=to, by=by,
                                     reason=reason, run_id=run.id if run is not None else None,
                                     as_of=run.as_of if run is not None else None, at=when))
        self.session.flush()


@pytest.fixture
def registry(session: Session) -> dict[str, int]:
    """Two evaluated runs A (2024-03-31) and B (2024-06-30); decisions by people between and after them."""
    a = _run(session, A_AS_OF, A_EVAL)
    b = _run(session, B_AS_OF, B_EVAL)
    r = Registry(session, a, b)
    ids: dict[str, int] = {"a": a.id, "b": b.id}
    # one finding: T-cell lymphoma (flagged in A), its group (escalated and flagged in B), the parent (new in B)
    pt = r.signal(CILTA, "t-cell lymphoma", "pt", live={"status": "new", "label_update_recommended": True,
                                                         "labelled": UNLABELLED_FDA, "jurisdictions": ["FDA"],
                                                         "priority": 9.0})
    r.audit(pt, "created", "new", run=a)
    r.audit(pt, "label_update_recommended", "new", run=a, frm="new", reason="unlabelled in FDA for 2 runs")
    r.measure(pt, a, 5, labelled=UNLABELLED_FDA, priority=8.0)
    r.measure(pt, b, 9, labelled=UNLABELLED_FDA, priority=9.0)
    grp = r.signal(CILTA, "malignancy_t_cell", "group", live={
        "status": "new", "label_update_recommended": True, "escalated": True, "labelled": UNLABELLED_FDA,
        "jurisdictions": ["FDA"], "priority": 8.5,
        "evidence": {"as_of": B_AS_OF.isoformat(), "cumulative_incidence": {
            "event_group": "malignancy_t_cell", "n_patients": 400, "n_events": 6, "unit": "years",
            "method": "Aalen-Johansen, death as competing risk",
            "cumulative_incidence": [{"time": 1.0, "estimate": 0.01, "lower": 0.004, "upper": 0.02},
                                     {"time": 2.0, "estimate": 0.02, "lower": 0.01, "upper": 0.035}]}}})
    r.audit(grp, "created", "new", run=a)
    r.audit(grp, "escalated", "new", run=b, frm="new", reason="EB05 >= 4 (strong)")
    r.audit(grp, "label_update_recommended", "new", run=b, frm="new", reason="strong: EB05 4.2")
    r.measure(grp, a, 6, labelled=UNLABELLED_FDA, priority=7.0)
    r.measure(grp, b, 11, labelled=UNLABELLED_FDA, eb05=4.2, priority=8.5)
    parent = r.signal(CILTA, "secondary_malignancy", "group", first=b,
                      live={"status": "new", "labelled": UNLABELLED_FDA, "priority": 5.0})
    r.audit(parent, "created", "new", run=b)
    r.measure(parent, b, 14, labelled=UNLABELLED_FDA, priority=5.0)
    # a known risk: CRS, labelled everywhere, 30 new cases
    crs = r.signal(AXI, "crs", "group", live={"status": "new", "labelled": LABELLED, "priority": 3.0})
    r.audit(crs, "created", "new", run=a)
    r.measure(crs, a, 100, labelled=LABELLED)
    r.measure(crs, b, 130, labelled=LABELLED, priority=3.0)
    # validated by a person between the runs; stopped meeting the rules in B
    hbv = r.signal(AXI, "hepatitis b reactivation", "pt", live={"status": "validated", "labelled": UNLABELLED_FDA,
                                                                 "priority": 2.0})
    r.audit(hbv, "created", "new", run=a)
    r.audit(hbv, "transition", "validated", by="dr.lee", frm="new", at=A_EVAL + dt.timedelta(days=1),
            reason="cases reviewed: plausible")
    r.measure(hbv, a, 4, labelled=UNLABELLED_FDA)
    r.measure(hbv, b, 4, meets=False, labelled=UNLABELLED_FDA, priority=2.0)
    # flagged in A; a person recorded the label change and the flag cleared, then it moved to monitoring
    aphasia = r.signal(AXI, "aphasia", "pt", live={"status": "monitoring", "labelled": LABELLED, "priority": 1.5})
    r.audit(aphasia, "created", "new", run=a)
    r.audit(aphasia, "label_update_recommended", "new", run=a, frm="new", reason="unlabelled in FDA: strong")
    r.audit(aphasia, "label_update_cleared", "new", by="dr.wu", frm="new", at=A_EVAL + dt.timedelta(days=2),
            reason="label change recorded by dr.wu: FDA warnings now lists aphasia")
    r.audit(aphasia, "transition", "monitoring", by="dr.wu", frm="new", at=A_EVAL + dt.timedelta(days=2),
            reason="label updated")
    r.measure(aphasia, a, 7, labelled=UNLABELLED_FDA)
    r.measure(aphasia, b, 8, labelled=LABELLED, priority=1.5)
    label = Label(product=AXI, jurisdiction="FDA", event="aphasia", level="pt", section="warnings",
                  effective_date=dt.date(2024, 5, 1), created_by="dr.wu")
    session.add(label)
    session.flush()
    session.add(LabelAudit(label_id=label.id, by="dr.wu", action="added", reason="FDA letter of 2024-05-01",
                           entry={}, at=A_EVAL + dt.timedelta(days=2)))
    # flagged in A, the flag withdrawn by the registry in B
    seizure = r.signal(AXI, "seizure", "pt", live={"status": "new", "labelled": UNLABELLED_FDA, "priority": 1.0})
    r.audit(seizure, "created", "new", run=a)
    r.audit(seizure, "label_update_recommended", "new", run=a, frm="new", reason="unlabelled in FDA")
    r.audit(seizure, "label_update_withdrawn", "new", run=b, frm="new", reason="no longer meets the rules")
    r.measure(seizure, a, 3, labelled=UNLABELLED_FDA)
    r.measure(seizure, b, 3, meets=False, labelled=UNLABELLED_FDA)
    # tracked in A, opened in B; tracked in B only (not open)
    tremor = r.signal(AXI, "tremor", "pt", live={"status": "new", "labelled": UNLABELLED_FDA, "priority": 0.5})
    r.audit(tremor, "created", "tracked", run=a)
    r.audit(tremor, "opened", "new", run=b, frm="tracked", reason="met the rules in 2 runs")
    r.measure(tremor, a, 2, meets=False, labelled=UNLABELLED_FDA)
    r.measure(tremor, b, 5, labelled=UNLABELLED_FDA, priority=0.5)
    fatigue = r.signal(CILTA, "fatigue", "pt", first=b, live={"status": "tracked", "labelled": UNLABELLED_FDA})
    r.audit(fatigue, "created", "tracked", run=b)
    r.measure(fatigue, b, 3, meets=False, labelled=UNLABELLED_FDA)
    # refuted by a person after B was evaluated: in B's report (the live one), not in A's
    park = r.signal(CILTA, "parkinsonism", "pt", live={"status": "refuted", "labelled": UNLABELLED_FDA})
    r.audit(park, "created", "new", run=a)
    r.audit(park, "transition", "refuted", by="dr.lee", frm="new", at=B_EVAL + dt.timedelta(days=1),
            reason="confounded by disease progression")
    r.measure(park, a, 3, labelled=UNLABELLED_FDA)
    r.measure(park, b, 3, labelled=UNLABELLED_FDA)
    session.commit()
    ids.update(pt=pt.id, grp=grp.id, parent=parent.id, crs=crs.id, hbv=hbv.id, aphasia=aphasia.id,
               seizure=seizure.id, tremor=tremor.id, fatigue=fatigue.id, park=park.id)
    return ids


def _build(session: Session, run_id: int) -> ReportData:
    return build_report_data(session, run_id, events=(), generated_at=dt.datetime(2024, 7, 2, tzinfo=dt.UTC))


def _ids(findings) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [[r.id for r in f.items] for f in findings]


def test_page_one_holds_every_outstanding_recommendation_as_one_finding(session: Session, registry) -> None:  # type: ignore[no-untyped-def]
    data = _build(session, registry["b"])
    assert len(data.recommendations) == 1
    rec = data.recommendations[0]
    # the parent group heads the finding; the group and the PT beneath it, by depth
    assert [(m.item.id, m.depth) for m in rec.finding.members] == [
        (registry["parent"], 0), (registry["grp"], 1), (registry["pt"], 2)]
    assert rec.finding.title == "Secondary malignancy (all)"
    assert {r.id for r in rec.flagged} == {registry["grp"], registry["pt"]}  # the PT was flagged in A already
    assert rec.new  # the group was flagged in B
    assert rec.jurisdictions == ("FDA",)
    assert rec.reason == "unlabelled in FDA for 2 runs"  # the most urgent flagged member's (the PT)
    assert {r.id: r.note for r in rec.finding.items if r.label_update_recommended} == {
        registry["pt"]: "unlabelled in FDA for 2 runs", registry["grp"]: "strong: EB05 4.2"}
    assert [(p.as_of, p.n) for p in rec.trend] == [(A_AS_OF, 5), (B_AS_OF, 9)]
    assert rec.incidence is not None and rec.incidence["n_events"] == 6
    head = rec.finding.items[1]
    assert (head.measures["n"], head.new_cases, head.measures["n_serious"]) == (11, 5, 5.5)
    doc = lxml.html.fromstring(render_html(data))
    page_one = doc.xpath('//section[@id="recommendations"]//tr[@data-finding]')
    assert [r.get("data-finding") for r in page_one] == [str(registry["parent"])]
    for text in ("Secondary malignancy (all)", "T-cell lymphoma; Secondary T-cell malignancy", "FDA", "2024-03-31",
                 "9 (+4)", "2.50 → 2.50", "1.0% at 1\xa0y; 2.0% at 2\xa0y", "unlabelled in FDA for 2 runs", "new"):
        assert text in page_one[0].text_content(), text
    details = doc.xpath('//section[@id="recommendation-details"]')[0].text_content()
    for text in ("Secondary T-cell malignancy", "strong: EB05 4.2", "1.0% (0.4%–2.0%) at 1 year"):
        assert text in details, text


def test_recommendations_outstanding_from_earlier_runs_stay_on_page_one(session: Session, registry) -> None:  # type: ignore[no-untyped-def]
    data = _build(session, registry["a"])
    flagged = sorted(r.id for rec in data.recommendations for r in rec.flagged)
    assert flagged == sorted([registry["pt"], registry["aphasia"], registry["seizure"]])
    assert all(rec.new for rec in data.recommendations)  # A is the first report


def test_since_the_last_report(session: Session, registry) -> None:  # type: ignore[no-untyped-def]
    since = _build(session, registry["b"]).since
    assert _ids(since.new) == [[registry["parent"]], [registry["tremor"]]]  # tracked 'fatigue' is not new
    assert _ids(since.escalated) == [[registry["grp"]]]
    assert since.escalated[0].items[0].note == "EB05 >= 4 (strong)"
    assert sorted(i for f in _ids(since.flags_withdrawn) for i in f) == sorted([registry["aphasia"],
                                                                                registry["seizure"]])
    notes = {r.id: r.note for f in since.flags_withdrawn for r in f.items}
    assert notes[registry["seizure"]] == "no longer meets the rules"
    assert [(d.by, d.signal.id, d.to_status) for d in since.decisions] == [
        ("dr.lee", registry["hbv"], "validated"), ("dr.wu", registry["aphasia"], "new"),
        ("dr.wu", registry["aphasia"], "monitoring"), ("dr.lee", registry["park"], "refuted")]
    assert [(c.kind, c.event, c.by) for c in since.label_changes] == [
        ("recorded", "aphasia", "dr.wu"), ("in force", "aphasia", "dr.wu")]
    assert _ids(since.stopped_meeting_rules) == [[registry["hbv"]], [registry["seizure"]]]
    grown = {r.id: r.new_cases for f in since.new_cases for r in f.items}
    assert grown == {registry["parent"]: 14, registry["grp"]: 5, registry["pt"]: 4, registry["tremor"]: 3}


def test_a_report_of_an_old_run_shows_the_statuses_of_that_run(session: Session, registry) -> None:  # type: ignore[no-untyped-def]
    old = registry_at(session, session.get(Run, registry["a"]))  # type: ignore[arg-type]
    live = registry_at(session, session.get(Run, registry["b"]))  # type: ignore[arg-type]
    assert old.until is not None and live.until is None
    aphasia_then, aphasia_now = old.states[registry["aphasia"]], live.states[registry["aphasia"]]
    assert (aphasia_then.status, aphasia_then.flagged, aphasia_then.labelled) == ("new", True, UNLABELLED_FDA)
    assert (aphasia_now.status, aphasia_now.flagged, aphasia_now.labelled) == ("monitoring", False, LABELLED)
    assert old.states[registry["hbv"]].status == "new"  # validated by a person after A was evaluated
    assert old.states[registry["park"]].status == "new" and live.states[registry["park"]].status == "refuted"
    assert registry["parent"] not in old.states  # created in B
    assert old.states[registry["tremor"]].status == "tracked" and not old.states[registry["tremor"]].is_open

    data = _build(session, registry["a"])
    assert data.statuses_as_of_run
    rows = {r.id: r for r in data.open_signals}
    assert rows[registry["hbv"]].status == "new" and rows[registry["park"]].status == "new"
    assert registry["tremor"] not in rows and registry["parent"] not in rows
    assert [d.by for d in data.since.decisions] == []  # every decision came after A's evaluation
    html = render_html(data)
    assert 'data-statuses="as-of-run"' in html
    assert 'data-statuses="as-of-run"' not in render_html(_build(session, registry["b"]))


def test_findings_are_one_row_in_every_list(session: Session, registry) -> None:  # type: ignore[no-untyped-def]
    data = _build(session, registry["b"])
    assert _ids(data.labelled) == [[registry["crs"]], [registry["aphasia"]]]  # the label now covers aphasia
    assert data.labelled[0].items[0].new_cases == 30
    unlabelled = _ids(data.open_unlabelled)
    assert [registry["hbv"]] in unlabelled and [registry["tremor"]] in unlabelled
    assert all(registry["pt"] not in f for f in unlabelled)  # on page one, in its finding
    doc = lxml.html.fromstring(render_html(data))
    assert len(doc.xpath('//section[@id="recommendations"]//tr[@data-finding]')) == 1
    rec_rows = doc.xpath('//section[@id="recommendation-details"]//tr[@data-finding]')
    assert {r.get("data-finding") for r in rec_rows} == {str(registry["parent"])}
    assert [r.get("class") for r in rec_rows] == ["head", "member", "member"]


def test_time_to_onset_of_a_pt_signal(session: Session) -> None:
    source = SourceFile(kind="faers", name="hand-made", sha256="1" * 64, quarter=None)
    session.add(source)
    session.flush()
    onsets = {"C1": 100, "C2": 200, "C3": 300, "C4": 5}
    for key, days in onsets.items():
        pt = "t-cell lymphoma" if key != "C4" else "cytokine release syndrome"
        v = CaseVersion(case_key=key, report_id=key, version=1, source_file_id=source.id, source="faers",
                        received_date=dt.date(2024, 1, 10), event_date=dt.date(2023, 1, 1) + dt.timedelta(days=days))
        session.add(v)
        session.flush()
        session.add(Case(case_key=key, current_version_id=v.id, version=1, source="faers"))
        session.add(Drug(case_version_id=v.id, seq=1, role="PS", drugname="CARVYKTI", product=CILTA,
                         drug_key=CILTA, start_date=dt.date(2023, 1, 1)))
        session.add(Reaction(case_version_id=v.id, pt_verbatim=pt, pt=pt))
    session.flush()
    groups = default_event_groups()
    rows = onset_rows(session, dt.date(2024, 3, 31), [(CILTA, "t-cell lymphoma", "pt"),
                                                      (CILTA, "malignancy_t_cell", "group"),
                                                      (CILTA, "crs", "group")], groups)
    by_event = {(r.event, r.level): r for r in rows}
    pt_row = by_event[("T-cell lymphoma", "pt")]
    assert (pt_row.n, pt_row.median, pt_row.q1, pt_row.q3) == (3, 200.0, 150.0, 250.0)
    assert by_event[("Secondary T-cell malignancy", "group")].n == 3
    assert by_event[("Cytokine release syndrome", "group")].median == 5.0
    # cases received after the as-of date are not counted
    assert onset_rows(session, dt.date(2023, 12, 31), [(CILTA, "t-cell lymphoma", "pt")], groups) == []
