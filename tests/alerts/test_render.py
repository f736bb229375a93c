"""Digest content: which changes are told, in which order, grouped how, and how the subject, text and HTML read."""

from __future__ import annotations

import math
from html.parser import HTMLParser

from pv.alerts.digest import actionable, brand_of, build_digests
from pv.alerts.render import fmt, render_digest
from pv.alerts.routing import AlertRouting
from pv.normalise import EventGroups, ProductDictionary
from tests.alerts.conftest import make_change


class Links(HTMLParser):
    """The links and the text of an HTML part."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.text += data


def _one_route(event_groups: EventGroups, products: ProductDictionary, **extra: object) -> AlertRouting:
    return AlertRouting.from_mapping({**extra, "routes": [{"recipients": ["Officer@Example.org"]}]},
                                     event_groups=event_groups, products=products)


def test_actionable_kinds() -> None:
    for kind in ("opened", "escalated", "label_update_recommended", "label_update_withdrawn", "reopened",
                 "label_update_cleared"):
        assert actionable(make_change(kind=kind, labelled={"FDA": True}))
    # created: only a new signal that is not a known risk (compatibility with the registry without `opened`)
    assert actionable(make_change(kind="created", labelled={"FDA": True, "EMA": False}))
    assert actionable(make_change(kind="created", labelled={}))  # no label known: not a known risk
    assert not actionable(make_change(kind="created", labelled={"FDA": True, "NMPA": True}))
    assert not actionable(make_change(kind="created", status="tracked", labelled={"FDA": False}))


def test_most_urgent_first_then_priority(event_groups: EventGroups, products: ProductDictionary) -> None:
    routing = _one_route(event_groups, products, kinds=["opened", "escalated", "label_update_recommended",
                                                         "label_update_withdrawn", "reopened"])
    changes = [
        make_change(kind="label_update_withdrawn", signal_id=1, event="nausea", priority=90),
        make_change(kind="opened", signal_id=2, event="pyrexia", priority=80),
        make_change(kind="opened", signal_id=3, event="fatigue", priority=85),
        make_change(kind="reopened", signal_id=4, event="cytokine storm", priority=10),
        make_change(kind="escalated", signal_id=5, event="hepatitis b reactivation", priority=20),
        make_change(kind="label_update_recommended", signal_id=6, event="aphasia", priority=5),
    ]
    (digest,) = build_digests(changes, routing)
    assert digest.recipient == "officer@example.org"
    assert [f.lead.signal_id for f in digest.findings] == [6, 5, 4, 3, 2, 1]
    assert digest.counts() == {"label_update_recommended": 1, "escalated": 1, "reopened": 1, "opened": 2,
                               "label_update_withdrawn": 1}
    out = render_digest(digest, groups=event_groups, products=products, subject_prefix="[pv]")
    assert out.subject == ("[pv] 2024-09-30: 1 label update recommended, 1 escalation, 1 reopened signal, "
                           "2 new signals, 1 recommendation withdrawn (Kymriah)")
    heads = [line for line in out.text.splitlines() if line[:3] in {f"{i}. " for i in range(1, 7)}]
    assert [h.split(":")[0] for h in heads] == [
        "1. LABEL UPDATE RECOMMENDED", "2. ESCALATED", "3. REOPENED", "4. NEW SIGNAL", "5. NEW SIGNAL",
        "6. LABEL UPDATE RECOMMENDATION WITHDRAWN"]
    assert "4. NEW SIGNAL: Kymriah (tisagenlecleucel) / Fatigue" in out.text  # priority 85 before 80
    # a kind the routes do not ask for is not told: nothing at all, no email
    assert build_digests([make_change(kind="label_update_cleared")], routing) == []


def test_a_signal_changed_several_ways_is_one_item(event_groups: EventGroups, products: ProductDictionary) -> None:
    routing = _one_route(event_groups, products)
    changes = [make_change(kind=k, signal_id=7, event="t-cell lymphoma") for k in
               ("created", "escalated", "label_update_recommended")]
    reasons = {(7, 3, "created"): "detected: eb05 2.19 >= 2", (7, 3, "escalated"): "strong (eb05 5 >= 4)",
               (7, 3, "label_update_recommended"): "label update recommended in EMA: strong (eb05 5 >= 4)"}
    (digest,) = build_digests(changes, routing, reasons)
    (item,) = digest.items
    assert item.kinds == ("label_update_recommended", "escalated", "created")
    text = render_digest(digest, groups=event_groups, products=products).text
    assert "What happened: label update recommended; escalated; new signal" in text
    # the escalation's reason is within the recommendation's: said once
    assert [line.strip() for line in text.splitlines() if "Why:" in line] == [
        "Why: label update recommended in EMA: strong (eb05 5 >= 4)", "Why: detected: eb05 2.19 >= 2"]
    # without an audit trail (hand-made changes) the email says so rather than inventing a reason
    plain = render_digest(build_digests(changes, routing)[0], groups=event_groups, products=products).text
    assert "Why: no reason recorded in the audit trail" in plain


def test_findings_group_a_pt_with_its_groups_per_product(event_groups: EventGroups,
                                                          products: ProductDictionary) -> None:
    routing = _one_route(event_groups, products)
    changes = [
        make_change(kind="opened", signal_id=1, event="t-cell lymphoma", priority=50),
        make_change(kind="opened", signal_id=2, event="malignancy_t_cell", level="group", priority=40),
        make_change(kind="label_update_recommended", signal_id=3, event="secondary_malignancy", level="group",
                    priority=30),
        # the same PT for another product: a finding of its own
        make_change(kind="opened", signal_id=4, event="t-cell lymphoma", product="ciltacabtagene autoleucel",
                    priority=45),
    ]
    (digest,) = build_digests(changes, routing)
    assert [[(m.item.signal_id, m.depth) for m in f.members] for f in digest.findings] == [
        [(3, 0), (2, 1), (1, 2)], [(4, 0)]]
    out = render_digest(digest, groups=event_groups, products=products, base_url="https://pv.example.org")
    assert out.subject == "[pv] 2024-09-30: 1 label update recommended, 1 new signal (Kymriah, Carvykti)"
    lines = out.text.splitlines()
    assert "1. LABEL UPDATE RECOMMENDED: Kymriah (tisagenlecleucel) / Secondary malignancy (all)" in lines
    assert "     - Secondary T-cell malignancy [event group malignancy_t_cell], signal 2" in lines
    assert "         - T-cell lymphoma [PT], signal 1" in lines
    assert "2. NEW SIGNAL: Carvykti (ciltacabtagene autoleucel) / T-cell lymphoma" in lines
    parsed = Links()
    parsed.feed(out.html)
    assert parsed.links == [f"https://pv.example.org/signals/{i}" for i in (3, 2, 1, 4)] + [
        "https://pv.example.org/runs/3/report"]


def test_subject_names_three_products_then_counts_and_long_digests_are_cut(
    event_groups: EventGroups, products: ProductDictionary
) -> None:
    routing = _one_route(event_groups, products, max_findings=3)
    inns = ["tisagenlecleucel", "axicabtagene ciloleucel", "brexucabtagene autoleucel", "idecabtagene vicleucel",
            "zevorcabtagene autoleucel"]
    changes = [make_change(kind="opened", signal_id=i, product=p, priority=100 - i) for i, p in enumerate(inns)]
    (digest,) = build_digests(changes, routing)
    out = render_digest(digest, groups=event_groups, products=products, max_findings=routing.max_findings)
    assert out.subject == "[pv] 2024-09-30: 5 new signals (Kymriah, Yescarta, Tecartus and 2 more)"
    assert "5 findings for you to review" in out.text and "3. NEW SIGNAL: Tecartus" in out.text
    assert "4. " not in out.text
    assert "... and 2 more findings of lower urgency, not listed here: see the action queue (`pv signals`)." \
        in out.text
    # zevor-cel has no brand name in products.yaml: its INN stands alone
    assert brand_of("zevorcabtagene autoleucel", products) is None and brand_of("tisagenlecleucel", products) == \
        "Kymriah"


def test_missing_measures_unknown_label_and_escaping(event_groups: EventGroups, products: ProductDictionary) -> None:
    routing = _one_route(event_groups, products)
    odd = make_change(kind="opened", event="rash & <itching>", product="X<b>", measures={"n": 7, "ror_lower": math.inf},
                      labelled={}, serious_cases=None, deaths=None)
    (digest,) = build_digests([odd], routing)
    out = render_digest(digest, groups=event_groups, products=products, report="/var/lib/pv/reports/w.html")
    assert "Figures: n 7; ROR lower 95% inf" in out.text
    assert "On the label: no label known (the product is judged in no jurisdiction)" in out.text
    assert "Rash &amp; &lt;itching&gt;" in out.html and "<itching>" not in out.html
    assert "X&lt;b&gt;" in out.html
    assert "Rash & <itching>" in out.text  # plain text is not escaped
    assert "Weekly report of run 3: w.html" in out.text and "/var/lib" not in out.text + out.html


def test_fmt() -> None:
    assert fmt(None) == "-"
    assert fmt(3) == "3"
    assert fmt(2.0) == "2.00"
    assert fmt(1234.0) == "1234"
    assert fmt(0.12345, 3) == "0.123"
    assert fmt(float("nan")) == "-"
    assert fmt(-math.inf) == "-inf"
