"""Routing of signal changes to recipients (config/alerts.yaml) and its validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pv.alerts.routing import AlertRouting
from pv.errors import ConfigError
from pv.normalise import EventGroups, ProductDictionary
from tests.alerts.conftest import CONFIG, make_change

OFFICERS = "safety-officers@example.org"
NEURO = "car-t-neuro@example.org"
ONCO = "oncology-safety@example.org"
HBV = "hepatology-safety@example.org"
KYMRIAH = "kymriah-pv@example.org"
YESCARTA = "yescarta-pv@example.org"


def test_shipped_config_loads(routing: AlertRouting) -> None:
    assert routing.subject_prefix == "[pv]"
    assert [r.name for r in routing.routes] == [
        "safety-officers", "car-t-neurotoxicity", "secondary-malignancy", "hbv", "kymriah-team",
        "yescarta-team",
    ]


def test_pt_signal_routes_by_the_groups_of_its_pt(routing: AlertRouting) -> None:
    crs = make_change(product="tisagenlecleucel", event="cytokine release syndrome")
    assert routing.groups_of(crs) == ["crs"]
    assert routing.recipients_for(crs) == [OFFICERS, NEURO, KYMRIAH]

    # Parkinsonism is in movement_nerve_toxicity, which icans includes: both groups, so the neuro route.
    park = make_change(product="axicabtagene ciloleucel", event="parkinsonism")
    assert routing.groups_of(park) == ["icans", "movement_nerve_toxicity"]
    assert routing.recipients_for(park) == [OFFICERS, NEURO, YESCARTA]

    tcl = make_change(product="ciltacabtagene autoleucel", event="t-cell lymphoma")
    assert routing.groups_of(tcl) == ["malignancy_t_cell", "secondary_malignancy"]
    assert routing.recipients_for(tcl) == [OFFICERS, ONCO]

    hbv = make_change(product="ciltacabtagene autoleucel", event="hepatitis b reactivation")
    assert routing.recipients_for(hbv) == [OFFICERS, HBV]


def test_pt_in_no_group_and_unmapped_product_reach_only_catch_all_routes(routing: AlertRouting) -> None:
    change = make_change(product="SOME GENERIC DRUG", event="vomiting")
    assert routing.groups_of(change) == []
    assert routing.recipients_for(change) == [OFFICERS]


def test_group_signal_belongs_to_its_group_and_the_groups_including_it(routing: AlertRouting) -> None:
    sub = make_change(level="group", event="malignancy_myeloid", product="idecabtagene vicleucel")
    assert routing.groups_of(sub) == ["malignancy_myeloid", "secondary_malignancy"]
    assert routing.recipients_for(sub) == [OFFICERS, ONCO]
    # the nested group reaches a route on the including group; the including one does not reach the nested
    nested = make_change(level="group", event="movement_nerve_toxicity")
    assert routing.groups_of(nested) == ["icans", "movement_nerve_toxicity"]


def test_route_on_a_nested_group_does_not_receive_the_including_group(
    event_groups: EventGroups, products: ProductDictionary
) -> None:
    r = AlertRouting.from_mapping(
        {"routes": [{"groups": ["movement_nerve_toxicity"], "recipients": ["m@example.org"]}]},
        event_groups=event_groups, products=products,
    )
    assert r.recipients_for(make_change(level="group", event="icans")) == []
    assert r.recipients_for(make_change(level="group", event="movement_nerve_toxicity")) == ["m@example.org"]
    assert r.recipients_for(make_change(event="facial paralysis")) == ["m@example.org"]


def test_kinds_per_route(routing: AlertRouting) -> None:
    # label_update_cleared is not in the default kinds: only the malignancy route asks for it
    cleared_crs = make_change(kind="label_update_cleared")
    assert routing.recipients_for(cleared_crs) == []
    cleared_tcl = make_change(kind="label_update_cleared", event="t-cell lymphoma")
    assert routing.recipients_for(cleared_tcl) == [ONCO]
    for kind in ("opened", "created", "escalated", "label_update_recommended", "label_update_withdrawn",
                 "reopened"):
        assert routing.recipients_for(make_change(kind=kind)) == [OFFICERS, NEURO, KYMRIAH], kind
    assert routing.recipient_routes(make_change(kind="opened", event="t-cell lymphoma")) == {
        OFFICERS: ["safety-officers"], ONCO: ["secondary-malignancy"], KYMRIAH: ["kymriah-team"]}


def test_default_kinds_and_max_findings(event_groups: EventGroups, products: ProductDictionary) -> None:
    r = AlertRouting.from_mapping({"routes": [GOOD]}, event_groups=event_groups, products=products)
    assert r.routes[0].kinds == {"opened", "created", "escalated", "label_update_recommended",
                                 "label_update_withdrawn", "reopened"}
    assert r.max_findings == 30 and r.products is products
    assert r.recipients_for(make_change(kind="label_update_cleared")) == []
    only = AlertRouting.from_mapping({"kinds": ["opened"], "max_findings": 5, "routes": [GOOD]},
                                     event_groups=event_groups, products=products)
    assert only.max_findings == 5
    assert only.recipients_for(make_change(kind="opened")) == ["x@example.org"]
    assert only.recipients_for(make_change(kind="created")) == []


def test_recipient_in_several_routes_gets_one_email(
    event_groups: EventGroups, products: ProductDictionary
) -> None:
    r = AlertRouting.from_mapping(
        {"routes": [
            {"recipients": ["a@example.org", "b@example.org"]},
            {"products": ["tisagenlecleucel"], "recipients": ["A@example.org", "c@example.org"]},
        ]},
        event_groups=event_groups, products=products,
    )
    assert r.recipients_for(make_change()) == ["a@example.org", "b@example.org", "c@example.org"]
    liso = make_change(product="lisocabtagene maraleucel")
    assert r.recipients_for(liso) == ["a@example.org", "b@example.org"]


GOOD = {"recipients": ["x@example.org"]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping with 'routes'"),
        ({"routes": []}, "routes: expected a non-empty list"),
        ({"routes": [GOOD], "colour": "red"}, "unknown key(s) ['colour']"),
        ({"routes": [GOOD], "subject_prefix": 3}, "subject_prefix: expected a string"),
        ({"routes": [GOOD], "max_findings": 0}, "max_findings: expected a whole number >= 1, got 0"),
        ({"routes": [GOOD], "max_findings": "10"}, "max_findings: expected a whole number >= 1"),
        ({"routes": [GOOD], "kinds": ["created", "deleted"]}, "kinds: unknown change kind(s) ['deleted']"),
        ({"routes": ["x@example.org"]}, "routes[0]: expected a mapping"),
        ({"routes": [{"name": "a", "recipients": ["x@example.org"], "product": ["*"]}]},
         "routes[0] ('a'): unknown key(s) ['product']"),
        ({"routes": [{"name": "k", "products": ["kymriah"], **GOOD}]},
         "routes[0] ('k'): products: unknown product(s) ['kymriah'] (use an INN from products.yaml"),
        ({"routes": [GOOD, {"groups": ["crs", "neuro"], **GOOD}]},
         "routes[1] ('route2'): groups: unknown event group(s) ['neuro']"),
        ({"routes": [{"kinds": ["escalated", "closed"], **GOOD}]},
         "kinds: unknown change kind(s) ['closed']"),
        ({"routes": [{"name": "n"}]}, "routes[0] ('n'): recipients: expected a non-empty list"),
        ({"routes": [{"recipients": ["not-an-address", "ok@example.org"]}]},
         "recipients: not an email address: ['not-an-address']"),
        ({"routes": [{"recipients": "x@example.org, y@example.org"}]}, "not an email address"),
        ({"routes": [{"groups": [], **GOOD}]}, "groups: expected a non-empty list"),
        ({"routes": [{"name": "a", **GOOD}, {"name": "a", **GOOD}]},
         "routes[1] ('a'): name: route name used twice"),
    ],
)
def test_invalid_config_is_a_clear_config_error(
    data: Any, message: str, event_groups: EventGroups, products: ProductDictionary
) -> None:
    with pytest.raises(ConfigError) as exc:
        AlertRouting.from_mapping(data, event_groups=event_groups, products=products, source="alerts.yaml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("alerts.yaml:")


def test_load_names_the_file_and_checks_against_the_config_folder(tmp_path: Path) -> None:
    for name in ("products.yaml", "event_groups.yaml"):
        (tmp_path / name).write_text((CONFIG / name).read_text())
    bad = tmp_path / "alerts.yaml"
    bad.write_text("routes:\n  - groups: [crs]\n    recipients: [x@example.org]\n  - groups: [cytokine]\n"
                   "    recipients: [y@example.org]\n")
    expected = r"alerts.yaml: routes\[1\] \('route2'\): groups: unknown event group"
    with pytest.raises(ConfigError, match=expected):
        AlertRouting.load(bad)
    bad.write_text("routes: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        AlertRouting.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        AlertRouting.load(tmp_path / "missing.yaml")
