"""`pv labels compare`: FDA, NMPA and EMA side by side, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pv.cli import main
from pv.errors import InputError
from pv.models.signals import Signal
from pv.signals.label_compare import LABELLED, NOT_APPROVED, NOT_ON_LABEL, compare_labels

D = dt.date


def _row(comparison, event: str):  # type: ignore[no-untyped-def]
    return next(r for r in comparison.rows if r.event == event)


@pytest.mark.parametrize("db", ["session", "sqlite_session"])
def test_compare_yescarta_before_and_after_the_boxed_warning(db: str, request: pytest.FixtureRequest) -> None:
    session = request.getfixturevalue(db)
    before = compare_labels(session, "奕凯达", as_of=D(2024, 1, 1))  # the Chinese brand of axi-cel
    assert before.product == "axicabtagene ciloleucel"
    assert before.approvals == {"FDA": D(2017, 10, 18), "NMPA": D(2021, 6, 22), "EMA": D(2018, 8, 23)}
    fda = _row(before, "malignancy_t_cell").cells["FDA"]
    assert fda.status == LABELLED and fda.main is not None
    assert (fda.main.section, fda.main.effective_date, fda.main.event, fda.main.check) == (
        "warnings_and_precautions", D(2017, 10, 18), "secondary_malignancy", True)
    assert fda.text("malignancy_t_cell", "group") == "W&P 2017-10-18 via secondary_malignancy *"
    after = compare_labels(session, "YESCARTA", as_of=D(2024, 5, 1))
    cells = _row(after, "malignancy_t_cell").cells
    assert cells["FDA"].text("malignancy_t_cell", "group") == "boxed 2024-04-19 *"
    assert [e.section for e in cells["FDA"].entries] == ["boxed_warning", "warnings_and_precautions"]
    assert cells["EMA"].text("malignancy_t_cell", "group") == "W&P 2018-08-23 via secondary_malignancy *"
    assert _row(after, "crs").cells["NMPA"].text("crs", "group") == "W&P 2021-06-22 *"
    # boxed warnings first
    assert [r.event for r in after.rows][:3] == ["crs", "icans", "malignancy_t_cell"]


def test_not_approved_not_on_label_and_open_signals(session) -> None:  # type: ignore[no-untyped-def]
    early = compare_labels(session, "Kymriah", as_of=D(2018, 1, 1))
    crs = _row(early, "crs").cells
    assert crs["FDA"].status == LABELLED
    assert (crs["EMA"].status, crs["EMA"].text("crs", "group")) == (NOT_APPROVED, "not approved (from 2018-08-23)")
    assert (crs["NMPA"].status, crs["NMPA"].text("crs", "group")) == (NOT_APPROVED, "not approved")
    obe = compare_labels(session, "obe-cel", as_of=D(2025, 6, 30))
    assert _row(obe, "crs").cells["EMA"].status == NOT_APPROVED  # no EU authorisation recorded
    # an open signal's event that no label covers is a row too
    session.add(Signal(product="tisagenlecleucel", event="hepatic failure", level="pt", status="validated",
                       first_detected=D(2024, 3, 31), first_run_id=1, last_run_id=1, last_as_of=D(2024, 3, 31),
                       label_update_recommended=True))
    session.commit()
    cmp = compare_labels(session, "CTL019", as_of=D(2024, 6, 30))
    row = _row(cmp, "hepatic failure")
    assert not row.on_label and row.signal_text().endswith("validated flagged")
    assert {j: c.status for j, c in row.cells.items()} == {"FDA": NOT_ON_LABEL, "NMPA": NOT_APPROVED,
                                                           "EMA": NOT_ON_LABEL}
    assert cmp.rows[-1].event == "hepatic failure"  # events on no label last


def test_unknown_product_names_the_known_ones(session) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"unknown product 'NOPE-CEL'; known products: .*tisagenlecleucel \(Kymriah\)"):
        compare_labels(session, "NOPE-CEL")


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_command_table_json_csv(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "labels", "compare", "Yescarta", "--as-of", "2024-05-01")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("labels of axicabtagene ciloleucel in force at 2024-05-01 "
                        "(first approvals: FDA 2017-10-18, NMPA 2021-06-22, EMA 2018-08-23)")
    assert lines[1].split() == ["event", "level", "FDA", "NMPA", "EMA", "signal"]
    tcell = next(line for line in lines if line.startswith("malignancy_t_cell"))
    assert "boxed 2024-04-19 *" in tcell and "W&P 2018-08-23 via secondary_malignancy *" in tcell
    assert "unverified" in lines[-1]
    code, out, _ = run(capsys, "labels", "compare", "axi-cel", "--as-of", "2024-01-01", "--format", "json")
    data = json.loads(out)
    assert data["product"] == "axicabtagene ciloleucel" and data["as_of"] == "2024-01-01"
    assert data["jurisdictions"]["EMA"] == {"judged": True, "first_approval": "2018-08-23"}
    row = next(r for r in data["rows"] if r["event"] == "malignancy_t_cell")
    assert {k: row["FDA"][k] for k in ("status", "section", "effective_date", "via", "unverified")} == {
        "status": "labelled", "section": "warnings_and_precautions", "effective_date": "2017-10-18",
        "via": "secondary_malignancy", "unverified": True}
    assert row["FDA"]["entries"][0]["source"].startswith("US PI section 5")
    code, out, _ = run(capsys, "labels", "compare", "Yescarta", "--format", "csv")
    header = out.splitlines()[0].split(",")
    assert header[:4] == ["event", "level", "FDA_status", "FDA_section"] and header[-1] == "signal"
    code, _, err = run(capsys, "labels", "compare", "nope")
    assert code == 1 and "unknown product 'nope'; known products:" in err
    # the compare seeded the empty store: seeding again adds and updates nothing
    code, out, _ = run(capsys, "labels", "seed", "--by", "alice")
    assert (code, out.strip()) == (0, "0 label entries added; 0 seeded entries updated (source, note, unverified mark)")
