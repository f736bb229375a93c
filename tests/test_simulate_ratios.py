"""The true reporting ratio of every product-event pair of a simulated data set (pv.simulate.ratios).

The stated ratios are checked against reports the generator itself draws (its own random stream, not the
sample the ratios were computed from): for every pair with enough expected cases the observed count of reports
naming the product with the event agrees with the stated rate within sampling error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pv.normalise import EventGroups, ProductDictionary, normalise_pt
from pv.periods import Quarter
from pv.simulate.faers import QuarterGenerator, SimulationConfig, Universe, write_quarters
from pv.simulate.ratios import RATIO_COLUMNS, RATIOS_FILE, ratio_lookup, true_ratios, write_quarters_with_ratios

from .conftest import REPO

PRODUCTS = ProductDictionary.load(REPO / "config" / "products.yaml")
GROUPS = EventGroups.load(REPO / "config" / "event_groups.yaml")
SEED = 5
QUARTERS = [Quarter(2023, 4), Quarter(2024, 1)]
DRAWN = 60_000  # initial reports per quarter drawn to check against


@pytest.fixture(scope="module")
def ratios() -> pd.DataFrame:
    return true_ratios(QUARTERS, SEED, reports_per_quarter=DRAWN, products=PRODUCTS, groups=GROUPS,
                       sample_per_quarter=60_000)


@pytest.fixture(scope="module")
def observed() -> pd.DataFrame:
    """Per product x event: reports naming the product as suspect, and those with the event."""
    u = Universe(SEED, SimulationConfig(), PRODUCTS, GROUPS)
    gen = QuarterGenerator(u)
    drugs, reacs, total = [], [], 0
    for q in QUARTERS:
        t = gen.initial(q, DRAWN, np.random.default_rng([SEED, q.index]), 10_000_000 + q.index * 1_000_000)
        drugs.append(t.drug.loc[t.drug["role_cod"].isin(["PS", "SS"]), ["caseid", "_product"]])
        reacs.append(t.reac[["caseid", "pt"]])
        total += len(t.demo)
    drug = pd.concat(drugs).drop_duplicates()
    drug["product"] = u.names[drug["_product"].to_numpy()].astype(str)
    reac = pd.concat(reacs)
    reac["event"] = reac["pt"].map(normalise_pt)
    reac["level"] = "pt"
    in_group = [(g, k) for g, keys in GROUPS.groups.items() for k in keys]
    membership = pd.DataFrame(in_group, columns=["event_group", "event"])
    grp = reac.merge(membership, on="event")[["caseid", "event_group"]].drop_duplicates()
    grp = grp.rename(columns={"event_group": "event"}).assign(level="group")
    events = pd.concat([reac[["caseid", "event", "level"]].drop_duplicates(), grp], ignore_index=True)
    named = drug.groupby("product").size().rename("named")
    pairs = drug.merge(events, on="caseid").groupby(["product", "event", "level"]).size().rename("a")
    out = pairs.reset_index().merge(named.reset_index(), on="product")
    pooled = events.groupby(["event", "level"]).size().rename("pooled_n").reset_index()
    out = out.merge(pooled, on=["event", "level"])
    out["total"] = total
    return out


def test_columns_and_the_scenario_pairs(ratios: pd.DataFrame) -> None:
    assert list(ratios.columns) == RATIO_COLUMNS
    assert (ratios["true_ratio"] > 0).all() and ratios["true_ratio"].notna().all()
    look = ratio_lookup(ratios)
    # null controls: the background rate, so a ratio close to 1 (the pooled rate includes every product)
    assert look[("axicabtagene ciloleucel", "fall", "pt")] == pytest.approx(1.0, abs=0.05)
    assert look[("tisagenlecleucel", "malignancy_other", "group")] == pytest.approx(1.0, abs=0.05)
    # an injected signal shared by four CAR-T products: far above 1, far below its relative rate of 60
    tcl = look[("axicabtagene ciloleucel", "t-cell lymphoma", "pt")]
    assert 3 < tcl < 60
    # a group holding an injected PT is raised too; a CAR-T product is below 1 on a common PT of other drugs
    assert look[("axicabtagene ciloleucel", "malignancy_t_cell", "group")] > 3
    assert look[("axicabtagene ciloleucel", "crs", "group")] > 3
    assert look[("axicabtagene ciloleucel", normalise_pt("Nausea"), "pt")] < 1


def test_stated_rates_match_the_generated_reports(ratios: pd.DataFrame, observed: pd.DataFrame) -> None:
    frame = ratios.assign(event=[normalise_pt(e) if lv == "pt" else e
                                 for e, lv in zip(ratios["event"], ratios["level"], strict=True)])
    both = observed.merge(frame, on=["product", "event", "level"], how="left")
    assert both["true_ratio"].notna().all()  # every pair that occurs has a stated ratio
    both["expected"] = both["product_rate"] * both["named"]
    checked = both[both["expected"] >= 30]
    assert len(checked) > 300 and checked["level"].nunique() == 2
    # the sample the ratios come from is as large as the drawn data: its own error doubles the variance
    z = (checked["a"] - checked["expected"]) / np.sqrt(2 * checked["expected"])
    assert (z.abs() > 4).mean() < 0.01, checked.assign(z=z).loc[z.abs() > 4].head(10)
    assert abs(z.mean()) < 0.2
    # observed ratios of well-measured pairs agree with the stated ones
    big = checked[checked["expected"] >= 300]
    seen = (big["a"] / big["named"]) / (big["pooled_n"] / big["total"])
    assert np.allclose(seen, big["true_ratio"], rtol=0.25)


def test_write_quarters_writes_the_ratio_file_on_request(tmp_path: Path) -> None:
    write_quarters(tmp_path / "plain", "2024Q1", 300, 3, progress=None)
    assert not (tmp_path / "plain" / RATIOS_FILE).exists()
    write_quarters_with_ratios(tmp_path / "sim", "2024Q1", 300, 3, progress=None, ratio_sample=3000)
    ratios = pd.read_csv(tmp_path / "sim" / RATIOS_FILE)
    assert list(ratios.columns) == RATIO_COLUMNS and len(ratios) > 1000
    meta = json.loads((tmp_path / "sim" / "truth.json").read_text())
    assert meta["ratios"] == {"file": RATIOS_FILE, "sample_per_quarter": 3000, "pairs": len(ratios)}
    # expected cases are scaled to the data's size: about one report per initial report and PT drawn
    assert 300 < ratios.loc[ratios["level"] == "pt", "expected_cases"].sum() < 300 * 6
