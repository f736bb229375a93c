"""``pv signals``: one finding, one entry -- a PT signal with the group holding it beneath the group's row (table),
one object with its members (json), a finding number per signal (csv)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pv.db import session_scope
from tests.signals.test_cli import run as cli
from tests.signals.test_triage import TISA, build_registry

# the registry of the triage tests relies on the T-cell malignancy label gap of the test label registry
pytestmark = pytest.mark.usefixtures("gap_registry")


def test_table_puts_the_members_of_a_finding_beneath_its_head(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    with session_scope(pv_env) as session:
        ids = build_registry(session)
    code, out, err = cli(capsys, "signals")
    assert code == 0, err
    header, *rows = out.rstrip("\n").splitlines()
    assert header.split()[:3] == ["id", "product", "event"]
    assert [r.split()[0] for r in rows] == [str(ids[n]) for n in ("storm", "tcl_group", "tcl", "axi_tcl",
                                                                   "relma_liver")]
    group_row, member_row = rows[1], rows[2]
    assert group_row.split()[1:4] == [TISA, "malignancy_t_cell", "group"]
    # the member: no product (the head's), its event indented beneath the head's event
    start = header.index("event")
    assert member_row[header.index("product"):start].strip() == ""
    assert member_row[start:].startswith("  └ t-cell lymphoma")
    # Yescarta's T-cell lymphoma is another product's: a finding of its own, not a member of Kymriah's
    assert rows[3].split()[1:4] == ["axicabtagene", "ciloleucel", "t-cell"]


def test_json_and_csv_keep_one_finding_per_entry(pv_env, capsys) -> None:  # type: ignore[no-untyped-def]
    with session_scope(pv_env) as session:
        ids = build_registry(session)
    findings = json.loads(cli(capsys, "signals", "--group", "secondary_malignancy", "--format", "json")[1])
    assert [(f["finding"], f["title"], f["product"]) for f in findings] == [
        (1, "Secondary T-cell malignancy", TISA), (2, "T-cell lymphoma", "axicabtagene ciloleucel")]
    kym = findings[0]
    assert kym["lead"] == ids["tcl"]  # the PT is the most urgent member (higher priority than its group)
    assert kym["priority"] == max(m["priority"] for m in kym["members"])
    assert kym["needs_decision"] == ["new", "escalated", "label_update_recommended"]
    assert [(m["id"], m["event"], m["level"], m["depth"]) for m in kym["members"]] == [
        (ids["tcl_group"], "malignancy_t_cell", "group", 0), (ids["tcl"], "t-cell lymphoma", "pt", 1)]

    code, out, _ = cli(capsys, "signals", "--group", "secondary_malignancy", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["finding"], r["depth"], r["id"]) for r in rows] == [
        ("1", "0", str(ids["tcl_group"])), ("1", "1", str(ids["tcl"])), ("2", "0", str(ids["axi_tcl"]))]

    # a filter that selects the PT alone: the finding is the PT alone
    findings = json.loads(cli(capsys, "signals", "--event", "t-cell lymphoma", "--product", "Kymriah",
                              "--format", "json")[1])
    assert [[m["id"] for m in f["members"]] for f in findings] == [[ids["tcl"]]]
    assert findings[0]["title"] == "T-cell lymphoma"
