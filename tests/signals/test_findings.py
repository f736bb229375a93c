"""One finding, one row: grouping a product's PT, group and parent-group signals (pv.signals.findings)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from pv.normalise import EventGroups, default_event_groups
from pv.signals.findings import group_findings, mapping_key

GROUPS = default_event_groups()


@dataclass(frozen=True)
class Row:
    product: str
    event: str
    level: str


def titles(findings):
    return [(f.product, f.title, [(m.item.event, m.depth) for m in f.members]) for f in findings]


def test_pt_its_group_and_the_parent_group_are_one_finding():
    rows = [
        Row("axicabtagene ciloleucel", "t-cell lymphoma", "pt"),
        Row("axicabtagene ciloleucel", "secondary_malignancy", "group"),
        Row("axicabtagene ciloleucel", "malignancy_t_cell", "group"),
        Row("axicabtagene ciloleucel", "cytokine release syndrome", "pt"),
    ]
    found = group_findings(rows, GROUPS)
    assert titles(found) == [
        ("axicabtagene ciloleucel", "Secondary malignancy (all)",
         [("secondary_malignancy", 0), ("malignancy_t_cell", 1), ("t-cell lymphoma", 2)]),
        ("axicabtagene ciloleucel", "Cytokine release syndrome", [("cytokine release syndrome", 0)]),
    ]
    # the lead is the most urgent member: the first of them in the caller's order
    assert found[0].lead == rows[0]
    assert found[0].head == rows[1]
    assert len(found[0]) == 3


def test_products_never_share_a_finding():
    rows = [Row("tisagenlecleucel", "malignancy_t_cell", "group"),
            Row("axicabtagene ciloleucel", "t-cell lymphoma", "pt")]
    assert [len(f) for f in group_findings(rows, GROUPS)] == [1, 1]


def test_two_pts_of_a_group_join_only_through_the_group_signal():
    pts = [Row("p", "t-cell lymphoma", "pt"), Row("p", "anaplastic large cell lymphoma", "pt")]
    assert [len(f) for f in group_findings(pts, GROUPS)] == [1, 1]
    joined = group_findings([*pts, Row("p", "malignancy_t_cell", "group")], GROUPS)
    assert titles(joined) == [("p", "Secondary T-cell malignancy", [
        ("malignancy_t_cell", 0), ("t-cell lymphoma", 1), ("anaplastic large cell lymphoma", 1)])]


def test_nested_group_sits_beneath_its_parent():
    # icans includes movement_nerve_toxicity; Parkinsonism is a term of the inner group
    rows = [Row("p", "parkinsonism", "pt"), Row("p", "movement_nerve_toxicity", "group"), Row("p", "icans", "group")]
    found = group_findings(rows, GROUPS)
    assert titles(found) == [("p", "ICANS and neurotoxicity", [
        ("icans", 0), ("movement_nerve_toxicity", 1), ("parkinsonism", 2)])]


def test_findings_follow_the_order_of_their_most_urgent_member():
    rows = [{"product": "p", "event": "cytokine release syndrome", "level": "pt"},
            {"product": "p", "event": "hepatitis b", "level": "pt"},
            {"product": "p", "event": "crs", "level": "group"}]
    found = group_findings(rows, GROUPS, key=mapping_key)
    assert [f.title for f in found] == ["Cytokine release syndrome", "Hepatitis B"]
    assert found[0].lead is rows[0] and found[0].head is rows[2]


def test_groups_of_the_same_terms_do_not_contain_each_other():
    groups = EventGroups.from_mapping({"a": {"terms": ["X"]}, "b": {"terms": ["X"]}})
    found = group_findings([Row("p", "b", "group"), Row("p", "a", "group")], groups)
    assert [(m.item.event, m.depth) for m in found[0].members] == [("b", 0), ("a", 1)]


EVENTS = [("t-cell lymphoma", "pt"), ("myelodysplastic syndrome", "pt"), ("malignancy_t_cell", "group"),
          ("malignancy_myeloid", "group"), ("secondary_malignancy", "group"), ("cytokine release syndrome", "pt"),
          ("crs", "group"), ("parkinsonism", "pt"), ("icans", "group"), ("movement_nerve_toxicity", "group"),
          ("rash", "pt")]


@given(st.lists(st.tuples(st.sampled_from(["p", "q"]), st.sampled_from(EVENTS)), unique=True, max_size=14))
def test_every_signal_is_in_exactly_one_finding_with_one_head(picks):
    rows = [Row(product, event, level) for product, (event, level) in picks]
    found = group_findings(rows, GROUPS)
    listed = [m.item for f in found for m in f.members]
    assert sorted(listed, key=rows.index) == rows
    for f in found:
        assert f.members[0].depth == 0
        assert all(m.item.product == f.product for m in f.members)
        assert all(m.depth >= 1 for m in f.members[1:]) or len(f) == 1
        assert f.lead == min(f.items, key=rows.index)
    firsts = [rows.index(f.lead) for f in found]
    assert firsts == sorted(firsts)
