"""pv.stats cumulative incidence, Gray's test and Fine-Gray against R's cmprsk on shipped data.

Reference values: tests/reference/cmprsk/*.csv, written by tests/reference/cmprsk_reference.R (cmprsk 2.2-11)
from tests/data/mgus2.csv (survival::mgus2: PCM vs death) and tests/data/cmprsk_small.csv. R is not needed
here. Tolerances: 1e-6 absolute for estimates, 1e-4 relative for variances, statistics, coefficients and SEs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pv.stats.cuminc import CumulativeIncidence
from pv.stats.finegray import FineGray
from pv.stats.gray import gray_test

HERE = Path(__file__).resolve().parent
REF = HERE / "reference" / "cmprsk"


def _dataset(name: str) -> tuple[pd.DataFrame, str]:
    if name == "mgus2":
        return pd.read_csv(HERE / "data" / "mgus2.csv"), "etime"
    small = pd.read_csv(HERE / "data" / "cmprsk_small.csv")
    if name == "small_no_b1":
        small.loc[(small["group"] == "B") & (small["event"] == 1), "event"] = 2
    return small, "time"


def _fit(dataset: str, grouping: str) -> CumulativeIncidence:
    data, tcol = _dataset(dataset)
    group = None if grouping == "all" else data[grouping]
    return CumulativeIncidence().fit(data[tcol], data["event"], group)


def _key(frame: pd.DataFrame, group_col: str, event_col: str) -> pd.DataFrame:
    out = frame.copy()
    out["g"] = out[group_col].astype(str).replace({"all": "1"})  # cmprsk names the single group "1"
    out["c"] = out[event_col].astype(str)
    return out


TIMEPOINTS = pd.read_csv(REF / "cuminc_timepoints.csv")


@pytest.mark.parametrize("dataset,grouping", sorted(set(zip(TIMEPOINTS.dataset, TIMEPOINTS.grouping,
                                                            strict=True))))
def test_cuminc_at_timepoints_matches_cmprsk(dataset: str, grouping: str) -> None:
    ref = _key(TIMEPOINTS[(TIMEPOINTS.dataset == dataset) & (TIMEPOINTS.grouping == grouping)], "group",
               "cause")
    ci = _fit(dataset, grouping)
    pred = _key(ci.predict(sorted(ref.time.unique())), "group", "event")
    m = ref.merge(pred, on=["g", "c", "time"], how="left", validate="one_to_one")
    assert len(m) == len(ref)
    # NA in cmprsk (beyond the last follow-up) is NaN here
    assert (m["est"].isna() == m["estimate"].isna()).all()
    ok = m["est"].notna()
    np.testing.assert_allclose(m.loc[ok, "estimate"], m.loc[ok, "est"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(m.loc[ok, "variance"], m.loc[ok, "var"], rtol=1e-4, atol=1e-12)


CURVES = pd.read_csv(REF / "cuminc_curves.csv")


@pytest.mark.parametrize("dataset,grouping", sorted(set(zip(CURVES.dataset, CURVES.grouping, strict=True))))
def test_cuminc_whole_curve_matches_cmprsk(dataset: str, grouping: str) -> None:
    """Every corner of cmprsk's step function: the value from each time on is ours at that time."""
    ref = CURVES[(CURVES.dataset == dataset) & (CURVES.grouping == grouping)]
    ref = ref.sort_values("point").groupby(["group", "cause", "time"], as_index=False).last()
    ref = _key(ref, "group", "cause")
    ci = _fit(dataset, grouping)
    checked = 0
    for (g, c), part in ref.groupby(["g", "c"]):
        pred = _key(ci.predict(part.time.to_numpy()), "group", "event")
        pred = pred[(pred.g == g) & (pred.c == c)]
        assert len(pred) == len(part)
        np.testing.assert_allclose(pred["estimate"].to_numpy(), part["est"].to_numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(pred["variance"].to_numpy(), part["var"].to_numpy(), rtol=1e-4, atol=1e-12)
        checked += len(part)
    assert checked == len(ref) > 0
    # and our jump times are exactly cmprsk's (corners other than 0 and the last follow-up time)
    jumps = _key(ci.curves_[ci.curves_.n_event > 0], "group", "event")
    corners = CURVES[(CURVES.dataset == dataset) & (CURVES.grouping == grouping)]
    corners = _key(corners, "group", "cause")
    # cmprsk repeats each jump time twice (before/after): points 2,3 / 4,5 ...; the last point is max time
    for (g, c), part in corners.groupby(["g", "c"]):
        pts = part.sort_values("point")
        r_jumps = pts.time.to_numpy()[1:-1][::2]
        ours = jumps[(jumps.g == g) & (jumps.c == c)].time.to_numpy()
        np.testing.assert_array_equal(ours, r_jumps)


GRAY = pd.read_csv(REF / "gray_tests.csv")


@pytest.mark.parametrize("row", GRAY.to_dict("records"),
                         ids=lambda r: f"{r['dataset']}-{r['grouping']}-{r['cause']}")
def test_gray_test_matches_cmprsk(row: dict) -> None:
    data, tcol = _dataset(row["dataset"])
    grouping = row["grouping"].split("|")[0]
    strata = data["sex"] if "strata=sex" in row["grouping"] else None
    rho = 1.0 if "rho=1" in row["grouping"] else 0.0
    res = gray_test(data[tcol], data["event"], data[grouping], strata=strata, rho=rho)
    got = res[res.event.astype(str) == str(row["cause"])].iloc[0]
    assert got["df"] == row["df"]
    assert got["statistic"] == pytest.approx(row["stat"], rel=1e-4)
    assert got["p_value"] == pytest.approx(row["pv_upper_tail"], rel=1e-4)


def test_gray_test_is_part_of_the_fit() -> None:
    ci = _fit("mgus2", "sex")
    ref = GRAY[(GRAY.dataset == "mgus2") & (GRAY.grouping == "sex")].sort_values("cause")
    np.testing.assert_allclose(ci.gray_test_.statistic.to_numpy(), ref.stat.to_numpy(), rtol=1e-4)
    assert _fit("mgus2", "all").gray_test_.empty


CRR = pd.read_csv(REF / "crr.csv")


@pytest.mark.parametrize("key", sorted(set(zip(CRR.dataset, CRR.model, CRR.failcode, strict=True))),
                         ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_fine_gray_matches_crr(key: tuple[str, str, int]) -> None:
    dataset, model, failcode = key
    ref = CRR[(CRR.dataset == dataset) & (CRR.model == model) & (CRR.failcode == failcode)]
    data, tcol = _dataset(dataset)
    fg = FineGray(event_of_interest=failcode).fit(data[tcol], data["event"], data[model.split("+")])
    s = fg.summary
    assert list(s.covariate) == list(ref.covariate)
    assert fg.n_ == ref.n.iloc[0]
    np.testing.assert_allclose(s.coef, ref.coef, rtol=1e-4)
    np.testing.assert_allclose(s.se, ref.se, rtol=1e-4)
    np.testing.assert_allclose(s.p_value, ref.p, rtol=1e-4, atol=1e-12)
    assert fg.loglik_ == pytest.approx(ref.loglik.iloc[0], rel=1e-6)
    assert fg.loglik_null_ == pytest.approx(ref.loglik_null.iloc[0], rel=1e-6)
    np.testing.assert_allclose(s.hr, np.exp(ref.coef), rtol=1e-4)
    np.testing.assert_allclose(s.hr_lower, np.exp(ref.coef - 1.959963984540054 * ref.se), rtol=1e-4)
