"""End to end on the real PostgreSQL: simulated FAERS quarters with injected signals ->
ingest -> quarterly as-of runs -> signal registry. Every injected signal is detected, null controls are not, and a
signal injected from a later quarter is first detected at the end of its first quarter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pv import cycle
from pv.analysis.runs import request_run
from pv.analysis.stages import execute_run
from pv.db import session_scope
from pv.demo import detection_table
from pv.ingest.faers import parse_quarter
from pv.ingest.store import load_batch
from pv.periods import Quarter, parse_quarters
from pv.signals.labels import ensure_seeded
from pv.simulate.faers import write_quarters

QUARTERS = "2023Q3:2024Q2"


@pytest.mark.timeout(600)
def test_injected_signals_are_detected_and_null_controls_are_not(pv_env: str, tmp_path: Path) -> None:
    zips = write_quarters(tmp_path / "sim", QUARTERS, 4000, seed=7, progress=None)
    with session_scope() as session:
        for z in zips:
            load_batch(session, parse_quarter(z))
        ensure_seeded(session)
    run_ids = []
    for quarter in parse_quarters(QUARTERS):
        with session_scope() as session:
            run, compute = request_run(session, quarter.end)
            if compute:
                execute_run(session, run.id)
            run_ids.append(run.id)
        with session_scope() as session:
            cycle.evaluate_signals(session, run.id)

    table = detection_table(tmp_path / "sim" / "truth.csv", run_ids)
    signals = table[table["kind"] == "signal"]
    nulls = table[table["kind"] == "null_control"]
    assert len(signals) >= 6 and len(nulls) >= 3
    # null controls never meet the rules, in any run
    assert (nulls["meets rules from"] == "never").all(), nulls
    first_end = parse_quarters(QUARTERS)[0].end
    for row in signals.to_dict("records"):
        starts = max(Quarter.parse(row["starts"]).end, first_end)
        detected = row["meets rules from"]
        assert isinstance(detected, dt.date), row
        # detected within one quarter of its start: at the end of the quarter it starts in, or the next one
        assert detected <= starts + dt.timedelta(days=92), row
        if row["registry"] != "outside the registry (not in products.yaml)":
            assert row["registry"] != "no signal", row

    # the weekly report of the last run, built from the store: every event of interest with its figures
    import lxml.html

    from pv.normalise import default_event_groups
    from pv.report.build import build_report_data, events_of_interest
    from pv.report.render import render_html

    with session_scope() as session:
        data = build_report_data(session, run_ids[-1])
    tcell = next(s for s in data.sections if s.group == "malignancy_t_cell")
    assert {"tisagenlecleucel", "axicabtagene ciloleucel"} <= set(tcell.forest["product"])
    assert (tcell.forest.set_index("product").loc["tisagenlecleucel", "lower"]) >= 2  # EB05 of the injected signal
    assert sorted(tcell.trend["quarter"].unique()) == [q.end for q in parse_quarters(QUARTERS)]
    doc = lxml.html.fromstring(render_html(data))
    for group in events_of_interest(default_event_groups()):
        figures = doc.xpath(f'//section[@data-group="{group}"]//figure/@data-figure')
        assert {"forest", "trend"} <= set(figures), group
    assert int(doc.xpath('//div[@data-kind="open"]/b/text()')[0]) == len(data.open_signals) > 0
    assert doc.xpath('//section[@id="provenance"]//table[@data-table="sources"]//tr')[1:]  # the four quarters
