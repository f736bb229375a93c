"""The signal, label and backtest commands against the real PostgreSQL test database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from pv.cli import main
from pv.db import session_scope
from pv.models.signals import SignalAudit
from pv.signals.evaluation import evaluate_run
from tests.signals.helpers import frame, strong_row
from tests.signals.test_backtest import synthetic_quarter

# The feedback-loop scenarios here rely on the T-cell malignancy label gap of the test registry.
pytestmark = pytest.mark.usefixtures("gap_registry")
TISA = "tisagenlecleucel"


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _populate(pg_url: str) -> None:
    """T-cell lymphoma, unlabelled, with new cases each run: tracked, opened, flagged. CRS, labelled: tracked."""
    with session_scope(pg_url) as session:
        for i, as_of in enumerate([dt.date(2023, 3, 31), dt.date(2023, 6, 30), dt.date(2023, 9, 30)]):
            evaluate_run(session, run_id=i + 1, as_of=as_of, results=frame(
                strong_row(TISA, "T-cell lymphoma", eb05=3.5, n=4 + i, serious=6, deaths=2),
                strong_row(TISA, "Cytokine release syndrome", eb05=10.0, n=100, serious=20, deaths=1)))


def test_signals_list_json_table_csv_and_filters(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    _populate(pv_env)
    # the action queue: CRS is tracked, never opened (on the FDA label: a known risk); T-cell lymphoma is flagged
    # (json: one object per finding, its signals as members; each finding here is a PT alone)
    code, out, _ = run(capsys, "signals", "--format", "json")
    assert code == 0
    queue = json.loads(out)
    assert [(f["title"], f["needs_decision"], [m["event"] for m in f["members"]]) for f in queue] == [
        ("T-cell lymphoma", ["new", "escalated", "label_update_recommended"], ["t-cell lymphoma"])]
    code, out, _ = run(capsys, "signals", "--all", "--format", "json")
    data = [m for f in json.loads(out) for m in f["members"]]
    assert [(d["event"], d["needs_decision"], d["depth"]) for d in data] == [
        ("t-cell lymphoma", ["new", "escalated", "label_update_recommended"], 0),
        ("cytokine release syndrome", [], 0)]
    first = data[0]
    assert {"id", "product", "event", "level", "status", "first_detected", "last_run", "measures", "labelled",
            "label_update_recommended", "priority"} <= set(first)
    assert first["measures"]["eb05"] == 3.5 and set(first["measures"]) == {
        "n", "prr", "prr_chi2", "ror_lower", "ic025", "eb05"}
    assert first["labelled"] == {"FDA": False} and first["label_update_recommended"] is True
    assert (first["first_detected"], first["last_run"], first["level"]) == ("2023-03-31", 3, "pt")
    assert data[1]["labelled"] == {"FDA": True} and data[0]["priority"] > data[1]["priority"]
    assert (data[0]["status"], data[1]["status"]) == ("new", "tracked")

    code, out, _ = run(capsys, "signals", "--all", "--format", "csv", "--product", "Kymriah")
    lines = out.strip().splitlines()
    assert lines[0].startswith("finding,depth,id,product,event,level,status,priority")
    assert len(lines) == 3 and "FDA=no" in lines[1]
    code, out, _ = run(capsys, "signals", "--status", "monitoring")
    assert code == 0 and out.strip() == "(none)"
    code, out, _ = run(capsys, "signals", "--flagged")
    assert "t-cell lymphoma" in out and "cytokine" not in out
    code, _, err = run(capsys, "signals", "--status", "open")
    assert code == 1 and "pv: error: " in err and "unknown status 'open'" in err


def test_signal_show_and_transitions_with_refusal(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    _populate(pv_env)
    sid = json.loads(run(capsys, "signals", "--format", "json")[1])[0]["lead"]
    code, out, _ = run(capsys, "signal", "show", str(sid))
    assert code == 0 and "LABEL UPDATE RECOMMENDED since 2023-09-30 in FDA" in out and "audit trail:" in out
    code, _, err = run(capsys, "signal", "transition", str(sid), "closed", "--by", "ann", "--reason", "done")
    assert code == 1
    assert err.strip() == (f"pv: error: cannot move signal {sid} from 'new' to 'closed'; "
                           "allowed from 'new': validated, refuted")
    code, out, _ = run(capsys, "signal", "transition", str(sid), "validated", "--by", "ann",
                       "--reason", "real")
    assert code == 0 and out.strip() == f"signal {sid}: new -> validated (by ann)"
    detail = json.loads(run(capsys, "signal", "show", str(sid), "--format", "json")[1])
    assert detail["audit"][-1] | {"at": None} == {
        "at": None, "by": "ann", "action": "transition", "from": "new", "to": "validated", "reason": "real",
        "run_id": None, "as_of": None}
    assert len(detail["trend"]) == 3
    code, _, err = run(capsys, "signal", "show", "9999")
    assert code == 1 and "signal 9999 does not exist" in err


def test_cli_never_rewrites_the_audit_trail(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    _populate(pv_env)
    with session_scope(pv_env) as s:
        before = [(a.id, a.at, a.by, a.action, a.from_status, a.to_status, a.reason)
                  for a in s.scalars(select(SignalAudit).order_by(SignalAudit.id))]
    sid = json.loads(run(capsys, "signals", "--format", "json")[1])[0]["lead"]
    run(capsys, "signal", "transition", str(sid), "validated", "--by", "ann", "--reason", "r1")
    run(capsys, "signal", "transition", str(sid), "closed", "--by", "ann", "--reason", "refused")
    code, _, err = run(capsys, "labels", "add", "Kymriah", "T-cell lymphoma", "--jurisdiction", "FDA",
                       "--section", "boxed_warning", "--effective", "2023-12-01", "--by", "bob",
                       "--reason", "boxed warning")
    assert code == 0, err
    with session_scope(pv_env) as s:
        after = [(a.id, a.at, a.by, a.action, a.from_status, a.to_status, a.reason)
                 for a in s.scalars(select(SignalAudit).order_by(SignalAudit.id))]
    assert after[: len(before)] == before  # earlier entries unchanged, new ones appended
    assert [a[2:4] for a in after[len(before):]] == [
        ("ann", "transition"), ("bob", "label_update_cleared"), ("bob", "transition")]


def test_labels_list_show_add_clears_the_flag(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    _populate(pv_env)
    code, out, _ = run(capsys, "labels", "list", "--product", "Kymriah", "--format", "json")
    entries = json.loads(out)
    assert code == 0 and {e["event"] for e in entries} == {
        "crs", "icans", "malignancy_t_cell", "cytopenias", "infections", "hbv_reactivation", "hypogammaglobulinaemia",
        "common_reactions"}
    code, out, _ = run(capsys, "labels", "show", "Kymriah", "--as-of", "2023-12-31")
    assert "label of tisagenlecleucel in force at 2023-12-31" in out and "malignancy_t_cell" not in out
    code, out, _ = run(capsys, "labels", "add", "Kymriah", "T-cell lymphoma", "--jurisdiction", "FDA",
                       "--section", "boxed_warning", "--effective", "2023-12-01", "--by", "bob",
                       "--reason", "boxed warning")
    assert code == 0
    assert ("tisagenlecleucel FDA boxed_warning t-cell lymphoma from 2023-12-01 "
            "(recorded by bob)") in out
    assert "t-cell lymphoma: label update cleared; now monitoring" in out
    assert json.loads(run(capsys, "signals", "--format", "json")[1]) == []  # nothing left to decide
    data = [m for f in json.loads(run(capsys, "signals", "--all", "--format", "json")[1]) for m in f["members"]]
    tcl = next(d for d in data if d["event"] == "t-cell lymphoma")
    assert tcl["label_update_recommended"] is False and tcl["status"] == "monitoring"
    assert tcl["labelled"] == {"FDA": True}
    code, _, err = run(capsys, "labels", "add", "Kymriah", "crs", "--jurisdiction", "PMDA", "--section",
                       "boxed_warning", "--effective", "2024-01-01", "--by", "x", "--reason", "y")
    assert code == 1 and "unknown jurisdiction 'PMDA'" in err
    code, _, err = run(capsys, "labels", "add", "Kymriah", "crs", "--jurisdiction", "FDA", "--section",
                       "boxed_warning", "--effective", "2024-13-01", "--by", "x", "--reason", "y")
    assert code == 1 and "'--effective': not a date (expected YYYY-MM-DD): '2024-13-01'" in err


def test_backtest_command_on_result_files(pv_env, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "results"
    folder.mkdir()
    for q in ["2022-09-30", "2022-12-31", "2023-03-31", "2023-06-30", "2023-09-30", "2023-12-31",
              "2024-03-31", "2024-06-30"]:
        synthetic_quarter(dt.date.fromisoformat(q)).to_csv(folder / f"{q}.csv", index=False)
    code, out, err = run(capsys, "backtest", "--from", "2022-07-01", "--to", "2024-06-30", "--every",
                         "quarter", "--results", str(folder), "--format", "json")
    assert code == 0, err
    rows = {r["event"]: r for r in json.loads(out)}
    tcl = rows["t-cell lymphoma"]
    assert (tcl["raised"], tcl["label_update_recommended"], tcl["label_changed"]) == (
        "2022-12-31", "2023-06-30", "2024-04-19")
    assert tcl["lead_days_recommended"] == 294
    code, _, err = run(capsys, "backtest", "--from", "2022-07-01", "--to", "2024-09-30",
                       "--results", str(folder))
    assert code == 1 and "no results for as-of 2024-09-30" in err


@pytest.mark.parametrize("argv", [["signal", "transition", "1", "validated", "--by", "x"]])
def test_transition_requires_a_reason(pv_env, capsys, argv) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, *argv)
    assert code != 0 and "--reason" in err
