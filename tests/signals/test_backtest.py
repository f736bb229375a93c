"""Backtest on synthetic per-quarter results against the seeded label registry."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import func, select

from pv.models.signals import Signal
from pv.signals.backtest import backtest
from pv.signals.labels import ensure_seeded
from pv.signals.rules import RuleSet
from tests.conftest import REPO
from tests.signals.helpers import frame, strong_row, weak_row

D = dt.date
AXI = "axicabtagene ciloleucel"


def synthetic_quarter(as_of: dt.date) -> pd.DataFrame:
    """CRS from the start; T-cell lymphoma reports for axi-cel emerging in Q4 2022 and growing."""
    rows = [strong_row(AXI, "Cytokine release syndrome", eb05=9.0, n=200, serious=150, deaths=5)]
    if as_of >= D(2022, 12, 31):
        quarters = (as_of.year - 2022) * 4 + (as_of.month - 12) // 3
        eb05 = 2.2 + 0.3 * quarters
        rows.append(strong_row(AXI, "T-cell lymphoma", eb05=eb05, n=4 + quarters, serious=4 + quarters,
                               deaths=1))
    else:
        rows.append(weak_row(AXI, "T-cell lymphoma", n=1))
    rows.append(weak_row(AXI, "Nausea", n=10))
    return frame(*rows)


def test_backtest_reports_raise_recommendation_label_change_and_lead_time(session) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    session.commit()
    seen: list[dt.date] = []

    def producer(as_of: dt.date) -> pd.DataFrame:
        seen.append(as_of)
        return synthetic_quarter(as_of)

    # Judged on the US boxed warning alone (the 2023 question: is the T-cell risk in the box?). With every
    # section (the default) T-cell lymphoma was on the US label from approval (Secondary Malignancies, W&P).
    rules = RuleSet.load(REPO / "config" / "signals.yaml")
    rules = rules.model_copy(update={"feedback": rules.feedback.model_copy(
        update={"jurisdictions": ["FDA"], "labelled_sections": ["boxed_warning"]})})
    report = backtest(session, producer, start=D(2022, 1, 1), end=D(2024, 12, 31), rules=rules)
    assert seen == report.as_of and len(seen) == 12 and seen[0] == D(2022, 3, 31)
    tcl = report.row(AXI, "t-cell lymphoma")
    assert tcl.raised == D(2022, 12, 31)                        # first quarter the reports meet the rules
    assert tcl.label_update_recommended == D(2023, 6, 30)       # K = 3 consecutive unlabelled runs
    assert tcl.recommended_in == ("FDA",)
    assert (tcl.label_changed, tcl.label_changed_in) == (D(2024, 4, 19), "FDA")
    assert tcl.lead_days_recommended == (D(2024, 4, 19) - D(2023, 6, 30)).days == 294
    assert tcl.lead_days_raised == (D(2024, 4, 19) - D(2022, 12, 31)).days
    assert tcl.flag_cleared == D(2024, 6, 30) and tcl.status == "monitoring"
    crs = report.row(AXI, "cytokine release syndrome")
    assert crs.raised == D(2022, 3, 31) and crs.label_update_recommended is None and crs.label_changed is None
    assert [r.event for r in report.rows][0] == "t-cell lymphoma"  # recommended ones first
    assert "nausea" not in set(report.to_frame()["event"])
    # the live registry is untouched
    assert session.scalar(select(func.count()).select_from(Signal)) == 0


def test_backtest_t_cell_malignancy_needs_a_boxed_warning_under_the_default_rules(session) -> None:  # type: ignore[no-untyped-def]
    """The US (W&P Secondary Malignancies), EU (SmPC 4.4) and NMPA labels of axi-cel named secondary malignancies
    before the 2024 boxed warning. The default rules ask a boxed warning of a T-cell malignancy
    (feedback.required_sections, capped at 4.4 in the EU and at the NMPA's recorded warnings): flagged for the
    FDA only, until the 2024 boxed warning. Without that requirement it is a known risk, never flagged."""
    ensure_seeded(session)
    session.commit()
    rules = RuleSet.load(REPO / "config" / "signals.yaml")
    assert rules.feedback.required_sections == {"malignancy_t_cell": "boxed_warning"}
    report = backtest(session, synthetic_quarter, start=D(2022, 1, 1), end=D(2024, 12, 31), rules=rules)
    tcl = report.row(AXI, "t-cell lymphoma")
    assert tcl.raised == D(2022, 12, 31)
    assert tcl.label_update_recommended is not None and tcl.label_update_recommended < D(2024, 4, 19)
    assert tcl.recommended_in == ("FDA",)
    assert tcl.flag_cleared is not None and tcl.flag_cleared >= D(2024, 4, 19)
    plain = rules.model_copy(update={"feedback": rules.feedback.model_copy(update={"required_sections": {}})})
    report = backtest(session, synthetic_quarter, start=D(2022, 1, 1), end=D(2024, 12, 31), rules=plain)
    tcl = report.row(AXI, "t-cell lymphoma")
    assert tcl.raised == D(2022, 12, 31)
    assert tcl.label_update_recommended is None and tcl.recommended_in == () and tcl.label_changed is None
