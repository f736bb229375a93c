"""The action queue and the filters of signal lists, on hand-made registries in the real PostgreSQL database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter

import pytest
from sqlalchemy.orm import Session

from pv.db import session_scope
from pv.errors import InputError
from pv.models.signals import Signal, SignalAudit
from pv.signals.commands import transition_signal
from pv.signals.evaluation import evaluate_run
from pv.signals.labels import ensure_seeded
from pv.signals.queries import SignalFilter, changes_of_run, find_signals
from tests.signals.helpers import any_profile_rules, frame, strong_row, weak_row
from tests.signals.test_cli import run as cli

# The feedback-loop scenarios here rely on the T-cell malignancy label gap of the test registry.
pytestmark = pytest.mark.usefixtures("gap_registry")
TISA = "tisagenlecleucel"  # FDA only
AXI = "axicabtagene ciloleucel"  # Yescarta, Yikaida: FDA and NMPA
RELMA = "relmacabtagene autoleucel"  # Carteyva: NMPA only
RUNS = [(1, dt.date(2023, 3, 31)), (2, dt.date(2023, 6, 30)), (3, dt.date(2023, 9, 30))]


def _rows(run_id: int) -> list[dict]:
    """Three runs. T-cell lymphoma on Kymriah (PT and group) persists unlabelled with new cases each run: tracked
    at the first, opened at the second, flagged at the third. CRS is on the label: tracked, never opened.
    Axi-cel T-cell lymphoma and relma-cel hepatic failure meet the rules in the first two runs with new cases
    (opened at the second), then fall below them. Axi-cel hepatic failure and relma-cel pancreatitis meet them
    in the first run only (people act on them while tracked). Cytokine storm, monitored, more than doubles its
    EB05 at the third run."""
    later = run_id > 1
    return [
        strong_row(TISA, "T-cell lymphoma", eb05=3.5, n=3 + run_id, serious=6, deaths=2),
        strong_row(TISA, "malignancy_t_cell", "group", eb05=3.0, n=5 + run_id),
        strong_row(TISA, "Cytokine release syndrome", eb05=10.0, n=100, serious=20, deaths=1),
        strong_row(TISA, "Cytokine storm", eb05=6.0 if run_id == 3 else 2.5, n=9 if run_id == 3 else 5),
        weak_row(AXI, "T-cell lymphoma") if run_id == 3 else strong_row(AXI, "T-cell lymphoma", eb05=2.2,
                                                                        n=3 + run_id),
        weak_row(AXI, "Hepatic failure") if later else strong_row(AXI, "Hepatic failure", eb05=2.3, n=3),
        weak_row(RELMA, "Hepatic failure") if run_id == 3 else strong_row(RELMA, "Hepatic failure", eb05=2.4,
                                                                          n=2 + run_id),
        weak_row(RELMA, "Pancreatitis") if later else strong_row(RELMA, "Pancreatitis", eb05=2.1, n=3),
    ]


def _move(session: Session, signal_id: int, *statuses: str) -> None:
    for status in statuses:
        transition_signal(session, signal_id, status, by="ann", reason=f"triaged: {status}")


def build_registry(session: Session) -> dict[str, int]:
    """The registry after three runs and some decisions; signal ids by a short name. Returns them."""
    ensure_seeded(session)
    changes = {}
    ids: dict[str, int] = {}
    rules = any_profile_rules()  # a finding opens after 2 consecutive runs here
    for run_id, as_of in RUNS:
        changes[run_id] = evaluate_run(session, run_id=run_id, as_of=as_of, results=frame(*_rows(run_id)),
                                       rules=rules)
        if run_id == 1:
            by_key = {(s.product, s.event): s.id for s in session.query(Signal)}
            ids = {"tcl": by_key[(TISA, "t-cell lymphoma")], "tcl_group": by_key[(TISA, "malignancy_t_cell")],
                   "crs": by_key[(TISA, "cytokine release syndrome")], "storm": by_key[(TISA, "cytokine storm")],
                   "axi_tcl": by_key[(AXI, "t-cell lymphoma")], "axi_liver": by_key[(AXI, "hepatic failure")],
                   "relma_liver": by_key[(RELMA, "hepatic failure")],
                   "relma_pancreatitis": by_key[(RELMA, "pancreatitis")]}
            _move(session, ids["storm"], "validated", "prioritised", "assessed", "monitoring")
            _move(session, ids["axi_liver"], "validated", "prioritised")
            _move(session, ids["relma_pancreatitis"], "refuted")
        session.commit()
    for run_id, found in changes.items():  # the audit trail tells what each evaluation changed
        assert changes_of_run(session, run_id) == dict(Counter(c.kind for c in found))
    return ids


@pytest.fixture
def registry(session: Session) -> dict[str, int]:
    return build_registry(session)


def _names(ids: dict[str, int], found) -> list[str]:  # type: ignore[no-untyped-def]
    by_id = {v: k for k, v in ids.items()}
    return [by_id[f.signal.id] for f in found]


def _set(session: Session, ids: dict[str, int], **filters) -> set[str]:  # type: ignore[no-untyped-def]
    return set(_names(ids, find_signals(session, SignalFilter(**filters))))


def _reasons(session: Session, ids: dict[str, int], **filters) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    found = find_signals(session, SignalFilter(**filters))
    return {n: f.needs_decision for n, f in zip(_names(ids, found), found, strict=True)}


def test_changes_of_each_run_by_kind(session: Session, registry: dict[str, int]) -> None:
    assert changes_of_run(session, 1) == {"created": 8}  # tracked, none strong and unlabelled
    # the second run opens the four unlabelled findings that persist with new cases
    assert changes_of_run(session, 2) == {"opened": 4}
    # the third run flags both T-cell signals and reopens the monitored cytokine storm (EB05 2.5 -> 6)
    assert changes_of_run(session, 3) == {"escalated": 2, "label_update_recommended": 2, "reopened": 1}
    assert changes_of_run(session, 99) == {}


def test_default_queue_holds_the_open_signals_that_need_a_decision(
    session: Session, registry: dict[str, int]
) -> None:
    queue = find_signals(session)
    assert _reasons(session, registry) == {
        "tcl": ("new", "escalated", "label_update_recommended"),
        "tcl_group": ("new", "escalated", "label_update_recommended"),
        "axi_tcl": ("new",),  # unlabelled by the FDA before 2024
        "relma_liver": ("new",),  # not on the NMPA label
        "storm": ("reopened",),  # labelled, but its EB05 more than doubled while monitored
    }
    # by priority: the reopened storm (EB05 6, rising) first, the signals whose EB05 fell to 0.5 last
    assert _names(registry, queue) == ["storm", "tcl", "tcl_group", "axi_tcl", "relma_liver"]
    priorities = [f.signal.priority for f in queue]
    assert priorities == sorted(priorities, reverse=True) and priorities[0] > priorities[-1]
    # CRS is tracked, never opened: labelled by the FDA (a known risk) and not stronger; axi-cel hepatic
    # failure is prioritised, relma-cel pancreatitis refuted
    everything = find_signals(session, SignalFilter(all_findings=True))
    assert len(everything) == 8
    labelled = {n: f.signal.labelled for n, f in zip(_names(registry, everything), everything, strict=True)}
    assert labelled == {
        "tcl": {"FDA": False}, "tcl_group": {"FDA": False}, "crs": {"FDA": True}, "storm": {"FDA": True},
        "axi_tcl": {"FDA": False, "NMPA": True}, "axi_liver": {"FDA": False, "NMPA": False},
        "relma_liver": {"NMPA": False}, "relma_pancreatitis": {"NMPA": False}}
    outside = {n: (f.signal.status, f.needs_decision) for n, f in zip(_names(registry, everything), everything,
                                                                       strict=True) if not f.needs_decision}
    assert outside == {"crs": ("tracked", ()), "axi_liver": ("prioritised", ()),
                       "relma_pancreatitis": ("refuted", ())}
    # the last run's measures come with each signal
    storm = next(f for f in queue if f.signal.id == registry["storm"])
    assert (storm.measure.run_id, storm.measure.eb05, storm.measure.n) == (3, 6.0, 9)  # type: ignore[union-attr]


def test_a_reopened_signal_leaves_the_queue_once_moved_on_and_a_monitored_one_is_not_in_it(
    session: Session, registry: dict[str, int]
) -> None:
    _move(session, registry["storm"], "prioritised")
    _move(session, registry["tcl"], "validated")
    session.commit()
    queue = _reasons(session, registry)
    assert "storm" not in queue
    assert queue["tcl"] == ("escalated", "label_update_recommended")
    # a person's own reopening (monitoring -> validated) puts the signal back in the queue
    _move(session, registry["axi_liver"], "assessed", "monitoring")
    session.commit()
    assert "axi_liver" not in _set(session, registry)
    _move(session, registry["axi_liver"], "validated")
    session.commit()
    assert _reasons(session, registry)["axi_liver"] == ("reopened",)


def test_filters_on_labels_events_groups_and_measures(session: Session, registry: dict[str, int]) -> None:
    ids = registry
    assert _set(session, ids, unlabelled=True) == {"tcl", "tcl_group", "axi_tcl", "relma_liver"}
    assert _set(session, ids, unlabelled=True, all_findings=True) == {
        "tcl", "tcl_group", "axi_tcl", "relma_liver", "axi_liver", "relma_pancreatitis"}
    assert _set(session, ids, jurisdiction="FDA") == {"tcl", "tcl_group", "axi_tcl"}
    assert _set(session, ids, jurisdiction="nmpa") == {"relma_liver"}
    assert _set(session, ids, jurisdiction="NMPA", all_findings=True) == {
        "relma_liver", "axi_liver", "relma_pancreatitis"}
    assert _set(session, ids, jurisdiction="FDA", all_findings=True) == {"tcl", "tcl_group", "axi_tcl", "axi_liver"}
    assert _set(session, ids, event="T-cell LYMPHOMA") == {"tcl", "axi_tcl"}
    assert _set(session, ids, event="Malignancy_T_Cell") == {"tcl_group"}
    assert _set(session, ids, event="cytokine release syndrome") == set()  # a known risk: not in the queue
    assert _set(session, ids, event="cytokine release syndrome", all_findings=True) == {"crs"}
    # a group: its own signals, the groups within it, and the signals on its PTs
    assert _set(session, ids, group="secondary_malignancy") == {"tcl", "tcl_group", "axi_tcl"}
    assert _set(session, ids, group="MALIGNANCY_T_CELL") == {"tcl", "tcl_group", "axi_tcl"}
    assert _set(session, ids, group="crs") == {"storm"}
    assert _set(session, ids, group="crs", all_findings=True) == {"storm", "crs"}
    assert _set(session, ids, event="Hepatic Failure", all_findings=True) == {"axi_liver", "relma_liver"}
    assert _set(session, ids, group="hbv_reactivation", all_findings=True) == set()
    # measures of the last run: T-cell lymphoma 3.5 (n 6), the group 3.0 (n 8), the storm 6.0 (n 9);
    # axi-cel T-cell lymphoma and relma-cel hepatic failure fell to EB05 0.5 (n 2)
    assert _set(session, ids, min_eb05=3.0) == {"tcl", "tcl_group", "storm"}
    assert _set(session, ids, min_eb05=3.6) == {"storm"}
    assert _set(session, ids, min_n=8) == {"tcl_group", "storm"}
    assert _set(session, ids, min_n=2) == {"tcl", "tcl_group", "axi_tcl", "relma_liver", "storm"}
    threshold = next(f.signal.priority for f in find_signals(session) if f.signal.id == ids["tcl_group"])
    assert 40 < threshold < 45  # the T-cell group: EB05 3, unlabelled, flat trend
    assert _set(session, ids, min_priority=threshold) == {"storm", "tcl", "tcl_group"}
    assert _set(session, ids, min_priority=threshold + 0.01) == {"storm", "tcl"}
    assert _set(session, ids, min_priority=20) == {"storm", "tcl", "tcl_group", "axi_tcl", "relma_liver"}
    # filters combine; the existing ones still work
    assert _set(session, ids, product="Kymriah", unlabelled=True, min_eb05=3.2) == {"tcl"}
    assert _set(session, ids, flagged=True) == {"tcl", "tcl_group"}
    assert _set(session, ids, status="refuted") == {"relma_pancreatitis"}  # a status lists signals outside the queue
    assert _set(session, ids, status="new") == {"tcl", "tcl_group", "axi_tcl", "relma_liver"}
    assert _set(session, ids, status="tracked") == {"crs"}
    with pytest.raises(InputError, match="unknown event group 'cancer'; groups are: "):
        find_signals(session, SignalFilter(group="cancer"))
    with pytest.raises(InputError, match="unknown jurisdiction 'PMDA'"):
        find_signals(session, SignalFilter(jurisdiction="PMDA"))
    with pytest.raises(InputError, match="unknown status 'open'"):
        find_signals(session, SignalFilter(status="open"))


def test_brand_names_and_chinese_names_select_the_product(session: Session, registry: dict[str, int]) -> None:
    for name in ("Yescarta", "Yikaida", "奕凯达", "axi-cel", "AXICABTAGENE CILOLEUCEL"):
        assert _set(session, registry, product=name) == {"axi_tcl"}, name
        assert _set(session, registry, product=name, all_findings=True) == {"axi_tcl", "axi_liver"}, name
    for name in ("Carteyva", "倍诺达", "relma-cel"):
        assert _set(session, registry, product=name, all_findings=True) == {"relma_liver", "relma_pancreatitis"}, name
    assert _set(session, registry, product="Fucaso", all_findings=True) == set()


def test_changed_since_an_audit_entry_on_or_after_the_date(session: Session, registry: dict[str, int]) -> None:
    # a signal last changed long ago, beside the registry whose entries are all of today
    old = Signal(product=TISA, event="pyrexia", level="pt", status="new", first_detected=dt.date(2022, 12, 31),
                 first_run_id=0, last_run_id=0, last_as_of=dt.date(2022, 12, 31), labelled={"FDA": False},
                 priority=1.0, strength=0.0)
    session.add(old)
    session.flush()
    session.add(SignalAudit(signal_id=old.id, at=dt.datetime(2023, 4, 1, 23, 30, tzinfo=dt.UTC), by="pv",
                            action="created", from_status=None, to_status="new", reason="detected"))
    session.commit()
    ids = {**registry, "old": old.id}
    queue = {"tcl", "tcl_group", "axi_tcl", "relma_liver", "storm"}
    assert _set(session, ids) == queue | {"old"}
    assert _set(session, ids, changed_since=dt.date(2023, 4, 1)) == queue | {"old"}
    assert _set(session, ids, changed_since=dt.date(2023, 4, 2)) == queue
    today = dt.datetime.now(dt.UTC).date()
    assert _set(session, ids, changed_since=today) == queue
    assert _set(session, ids, changed_since=today + dt.timedelta(days=1)) == set()


def test_signals_command_parses_the_filters(pv_env: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with session_scope(pv_env) as session:
        ids = build_registry(session)
    code, out, err = cli(capsys, "signals", "--format", "json")
    assert code == 0, err
    # one object per finding: Kymriah's T-cell lymphoma beneath its group (the head), most urgent finding first
    findings = json.loads(out)
    assert [[(m["id"], m["depth"]) for m in f["members"]] for f in findings] == [
        [(ids["storm"], 0)], [(ids["tcl_group"], 0), (ids["tcl"], 1)], [(ids["axi_tcl"], 0)],
        [(ids["relma_liver"], 0)]]
    tcl = findings[1]
    assert (tcl["title"], tcl["product"], tcl["lead"]) == ("Secondary T-cell malignancy", TISA, ids["tcl"])
    queue = [m for f in findings for m in f["members"]]
    assert {d["id"]: d["needs_decision"] for d in queue}[ids["storm"]] == ["reopened"]
    code, out, _ = cli(capsys, "signals", "--jurisdiction", "FDA", "--min-eb05", "3.2", "--min-n", "6",
                       "--min-priority", "0", "--event", "t-cell lymphoma", "--group", "secondary_malignancy",
                       "--unlabelled", "--product", "Kymriah", "--changed-since", "2023-01-01",
                       "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["id"], r["product"], r["event"], r["eb05"], r["labelled"], r["needs_decision"])
                          for r in rows] == [(str(ids["tcl"]), TISA, "t-cell lymphoma", "3.5", "FDA=no",
                                              "new,escalated,label_update_recommended")]
    code, out, _ = cli(capsys, "signals", "--all", "--product", "Yescarta", "--format", "json")
    assert {m["event"]: m["labelled"] for f in json.loads(out) for m in f["members"]} == {
        "t-cell lymphoma": {"FDA": False, "NMPA": True}, "hepatic failure": {"FDA": False, "NMPA": False}}
    code, out, _ = cli(capsys, "signals", "--all", "--group", "crs")
    header, *rows = out.strip().splitlines()
    assert header.split()[:6] == ["id", "product", "event", "level", "status", "priority"]
    assert sorted(r.split()[2:5] for r in rows) == [["cytokine", "release", "syndrome"], ["cytokine", "storm", "pt"]]
    code, _, err = cli(capsys, "signals", "--changed-since", "2023-02-30")
    assert code == 1 and "'--changed-since': not a date" in err
    code, _, err = cli(capsys, "signals", "--group", "cancer")
    assert code == 1 and "unknown event group 'cancer'" in err
