"""MGPS: agreement with openEBGM on real CAERS data, likelihood, gradient, posterior quantiles, robustness."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from pv.errors import InputError
from pv.stats import (
    MGPS,
    RESULT_COLUMNS,
    Hyperparameters,
    count_table,
    disproportionality,
    ebgm_scores,
    log_likelihood,
)
from pv.stats import mgps as mgps_module
from tests.conftest import REAL_DATA, REFERENCE, REPO

# openEBGM 0.9.1 autoHyper(squashed = FALSE, zeroes = FALSE) on caers_2012.csv (reference README)
OPENEBGM = Hyperparameters(alpha1=3.25596853094, beta1=0.39999072070, alpha2=2.02375194827,
                           beta2=1.90613421722, p=0.06530759723)


@pytest.fixture(scope="module")
def caers_counts() -> pd.DataFrame:
    raw = pd.read_csv(REAL_DATA / "caers_2012.csv")
    return count_table(raw, product_col="var1", event_col="var2")


@pytest.fixture(scope="module")
def reference(caers_counts: pd.DataFrame) -> pd.DataFrame:
    ref = pd.read_csv(REFERENCE / "caers_openebgm_unstratified.csv")
    ours = caers_counts.astype({"product": str, "event": str})
    merged = ours.merge(ref, left_on=["product", "event"], right_on=["var1", "var2"], validate="1:1")
    assert len(merged) == len(ref) == len(ours) == 17189
    return merged


def _nb_truncated_loglik(n: np.ndarray, e: np.ndarray, h: Hyperparameters) -> float:
    """openEBGM's negLL written with scipy's negative binomial (an independent implementation)."""
    r1, r2 = h.beta1 / (h.beta1 + e), h.beta2 / (h.beta2 + e)
    f1 = stats.nbinom.pmf(n, h.alpha1, r1) / stats.nbinom.sf(0, h.alpha1, r1)
    f2 = stats.nbinom.pmf(n, h.alpha2, r2) / stats.nbinom.sf(0, h.alpha2, r2)
    return float(np.sum(np.log(h.p * f1 + (1 - h.p) * f2)))


def test_counts_match_openebgm_processraw(reference: pd.DataFrame) -> None:
    assert (reference["n"] == reference["N"]).all()
    np.testing.assert_allclose(reference["expected"], reference["E"], rtol=1e-12)


def test_scores_at_openebgm_hyperparameters_match(reference: pd.DataFrame) -> None:
    s = ebgm_scores(reference["n"].to_numpy(), reference["expected"].to_numpy(), OPENEBGM)
    for ours, theirs in (("ebgm", "EBGM"), ("eb05", "QUANT_05"), ("eb95", "QUANT_95")):
        rel = np.abs(s[ours].to_numpy() / reference[theirs].to_numpy() - 1)
        assert rel.max() < 1e-4, ours  # openEBGM rounds to 6 digits


def test_openebgm_optimum_is_reproduced_from_its_own_start(reference: pd.DataFrame) -> None:
    # the likelihood openEBGM maximises is the truncated one: its estimate is a stationary point of ours
    m = MGPS(starts=[OPENEBGM], subsample=None).fit(reference)
    got = m.hyperparameters_.as_array()
    np.testing.assert_allclose(got, OPENEBGM.as_array(), rtol=2e-4)
    scored = m.score(reference)
    for ours, theirs in (("ebgm", "EBGM"), ("eb05", "QUANT_05"), ("eb95", "QUANT_95")):
        assert np.max(np.abs(scored[ours] / scored[theirs] - 1)) < 0.005
    # and the untruncated likelihood is maximised far away from it
    untr = MGPS(starts=[OPENEBGM], subsample=None, truncated=False).fit(reference)
    assert abs(untr.hyperparameters_.beta1 - OPENEBGM.beta1) > 0.1


def test_loglik_matches_independent_formula(reference: pd.DataFrame) -> None:
    n, e = reference["n"].to_numpy(), reference["expected"].to_numpy()
    ll = log_likelihood(n, e, OPENEBGM)
    assert ll == pytest.approx(_nb_truncated_loglik(n, e, OPENEBGM), rel=1e-10)
    assert ll == pytest.approx(-4162.4557104, abs=1e-6)


def test_default_fit_finds_higher_likelihood_than_openebgm(reference: pd.DataFrame) -> None:
    m = MGPS().fit(reference)
    openebgm_ll = log_likelihood(reference["n"], reference["expected"], OPENEBGM)
    assert m.converged_
    assert m.loglik_ == pytest.approx(log_likelihood(reference["n"], reference["expected"],
                                                     m.hyperparameters_), rel=1e-12)
    assert m.loglik_ > openebgm_ll + 0.2  # -4162.1808 against openEBGM's -4162.4557
    h = m.hyperparameters_
    np.testing.assert_allclose(h.as_array(), [20.958, 1.6578, 1.7383, 1.5643, 0.034938], rtol=2e-3)
    assert {"start", "stage", "loglik", "converged", "alpha1", "p"} <= set(m.summary.columns)
    assert len(m.summary) == len(mgps_module.DEFAULT_STARTS)


@pytest.mark.parametrize("truncated", [True, False])
def test_gradient_matches_finite_differences(truncated: bool) -> None:
    rng = np.random.default_rng(3)
    e = rng.lognormal(-1, 1.5, 4000)
    n = rng.poisson(e * rng.gamma(1.0, 1.5, len(e))) + (1 if truncated else 0)
    n = np.concatenate([n, np.full(3000, 1), np.full(2000, 2)]).astype(float)  # grouped counts
    e = np.concatenate([e, rng.lognormal(-1, 1, 5000)])
    data = mgps_module._prepare(*mgps_module._unique_pairs(n, e)[:3])
    x = mgps_module._pack(Hyperparameters(0.7, 0.3, 2.5, 1.7, 0.2))
    f0, g = mgps_module._objective(x, data, truncated)  # type: ignore[misc]
    for i in range(5):
        h = np.zeros(5)
        h[i] = 1e-6
        fd = (mgps_module._objective(x + h, data, truncated, grad=False)
              - mgps_module._objective(x - h, data, truncated, grad=False)) / 2e-6  # type: ignore[operator]
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_recovers_simulated_prior() -> None:
    rng = np.random.default_rng(11)
    truth = Hyperparameters(alpha1=0.4, beta1=0.1, alpha2=3.0, beta2=3.0, p=0.15)
    e = rng.lognormal(0.0, 1.2, 20_000)
    comp = rng.random(len(e)) < truth.p
    lam = np.where(comp, rng.gamma(truth.alpha1, 1 / truth.beta1, len(e)),
                   rng.gamma(truth.alpha2, 1 / truth.beta2, len(e)))
    n = rng.poisson(lam * e)
    m = MGPS(subsample=4_000).fit_arrays(n, e)  # pairs with n = 0 are dropped (truncated fit)
    got = m.hyperparameters_
    assert m.loglik_ >= log_likelihood(n, e, truth)  # the maximum is at least as likely as the truth
    assert got.p == pytest.approx(truth.p, abs=0.07)
    assert got.alpha2 / got.beta2 == pytest.approx(1.0, rel=0.15)
    assert got.alpha1 / got.beta1 > 1.2  # the rarer component is the high-ratio one (weakly identified)
    assert m.summary["stage"].tolist()[-1] == "full"
    assert m.summary["stage"].iloc[0] == "squashed" and m.summary["points"].iloc[0] <= 4_000
    # exploring the starts on a squashed table lands on the same optimum as running every start on all pairs
    every = MGPS(subsample=None).fit_arrays(n, e)
    np.testing.assert_allclose(every.hyperparameters_.as_array(), got.as_array(), rtol=1e-3)
    assert every.loglik_ == pytest.approx(m.loglik_, abs=1e-4)


_EXPLORE_ONLY = r"""
import sys
import numpy as np
from pv.stats import MGPS
rng = np.random.default_rng(11)
e = rng.lognormal(0.0, 1.2, 20_000)
lam = np.where(rng.random(len(e)) < 0.15, rng.gamma(0.4, 10.0, len(e)), rng.gamma(3.0, 1 / 3.0, len(e)))
m = MGPS(subsample=4_000).fit_arrays(rng.poisson(lam * e), e)
print(m.summary["stage"].tolist(), m.converged_, "scipy.optimize" in sys.modules)
"""


def test_the_exploration_and_its_refinement_need_no_scipy_optimiser() -> None:
    """The starts explored on the squashed table by pv's projected BFGS, refined on all pairs by its quasi-Newton
    steps: SciPy's optimisers (a tenth of a second to import) are not loaded."""
    done = subprocess.run([sys.executable, "-c", _EXPLORE_ONLY], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    stages, converged, loaded = done.stdout.rsplit(" ", 2)
    assert stages.startswith("['squashed'") and "'full'" in stages
    assert (converged, loaded.strip()) == ("True", "False")


def test_posterior_quantiles_and_ebgm_by_integration() -> None:
    h = Hyperparameters(0.5, 0.2, 2.0, 1.8, 0.1)
    n = np.array([0, 1, 1, 2, 5, 40, 1])
    e = np.array([0.3, 0.01, 2.0, 0.5, 1.0, 12.0, 1e-5])
    s = ebgm_scores(n, e, h, quantiles=(0.05, 0.5, 0.95))
    assert list(s.columns) == ["ebgm", "eb05", "eb50", "eb95"]
    for i in range(len(n)):
        f1 = stats.nbinom.pmf(n[i], h.alpha1, h.beta1 / (h.beta1 + e[i]))
        f2 = stats.nbinom.pmf(n[i], h.alpha2, h.beta2 / (h.beta2 + e[i]))
        q = h.p * f1 / (h.p * f1 + (1 - h.p) * f2)
        g1 = stats.gamma(h.alpha1 + n[i], scale=1 / (h.beta1 + e[i]))
        g2 = stats.gamma(h.alpha2 + n[i], scale=1 / (h.beta2 + e[i]))
        for col, level in (("eb05", 0.05), ("eb50", 0.5), ("eb95", 0.95)):
            x = s[col].iloc[i]
            assert q * g1.cdf(x) + (1 - q) * g2.cdf(x) == pytest.approx(level, abs=1e-9)
        def integrand(t: float, q: float = q, g1=g1, g2=g2) -> float:  # type: ignore[no-untyped-def]
            return math.log(t) * (q * g1.pdf(t) + (1 - q) * g2.pdf(t))

        mean_log = integrate.quad(integrand, 0, np.inf, limit=200)[0]
        assert s["ebgm"].iloc[i] == pytest.approx(math.exp(mean_log), rel=1e-6)


def _reference_quantile(n: float, e: float, h: Hyperparameters, level: float) -> float:
    """The posterior quantile by Brent's method on the exact mixture CDF, to full double precision.

    Written independently of pv's solver: the posterior weight from scipy's negative binomial log-pmf, the CDF
    from the regularised incomplete gamma function, the root bracketed by the two component quantiles.
    """
    l1 = stats.nbinom.logpmf(n, h.alpha1, h.beta1 / (h.beta1 + e)) + math.log(h.p)
    l2 = stats.nbinom.logpmf(n, h.alpha2, h.beta2 / (h.beta2 + e)) + math.log1p(-h.p)
    q = special.expit(l1 - l2)
    k1, k2, r1, r2 = h.alpha1 + n, h.alpha2 + n, h.beta1 + e, h.beta2 + e

    def cdf_minus_level(x: float) -> float:
        return float(q * special.gammainc(k1, r1 * x) + (1 - q) * special.gammainc(k2, r2 * x) - level)

    x1, x2 = special.gammaincinv(k1, level) / r1, special.gammaincinv(k2, level) / r2
    lo, hi = min(x1, x2) * (1 - 1e-9), max(x1, x2) * (1 + 1e-9)
    return float(optimize.brentq(cdf_minus_level, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                 maxiter=1000))


@pytest.mark.parametrize("hyper", [
    Hyperparameters(20.958, 1.6578, 1.7383, 1.5643, 0.034938),  # pv's CAERS maximum
    OPENEBGM,
    Hyperparameters(0.2, 0.06, 1.4, 1.8, 0.1),  # DuMouchel's (1999) FAERS prior
    Hyperparameters(50.0, 10.0, 0.05, 0.01, 0.5),  # two very different components
], ids=["caers", "openebgm", "dumouchel", "far-apart"])
def test_posterior_quantiles_match_an_independent_root_finder(hyper: Hyperparameters) -> None:
    # counts up to 1e5 and expected counts down to 1e-3, where the posterior is narrow and far from the prior
    n, e = (a.ravel() for a in np.meshgrid([1, 2, 3, 5, 10, 30, 100, 1_000, 10_000, 100_000],
                                           [1e-3, 3e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4]))
    s = ebgm_scores(n, e, hyper, quantiles=(0.05, 0.5, 0.95))
    assert s.attrs["quantiles_not_converged"] == 0
    for col, level in (("eb05", 0.05), ("eb50", 0.5), ("eb95", 0.95)):
        ref = np.array([_reference_quantile(a, b, hyper, level) for a, b in zip(n, e, strict=True)])
        rel = np.abs(s[col].to_numpy() / ref - 1)
        assert rel.max() < 1e-8, (col, n[np.argmax(rel)], e[np.argmax(rel)], rel.max())


def test_posterior_quantile_between_two_narrow_components_converges() -> None:
    # The prior fitted to the first 300 CAERS reports (alpha and beta at the upper bound): for n = 1 and
    # E = 0.27 the posterior is two narrow gammas far apart, and the 5% quantile lies in the tail of the upper
    # one, where Halley steps are small although the root is far; the solver used to stop there or give up.
    h = Hyperparameters(alpha1=1e4, beta1=3756.9171184041065, alpha2=3670.853971914527, beta2=1e4,
                        p=0.48645007132297235)
    s = ebgm_scores([1, 1, 2], [0.27, 0.05, 0.27], h)
    assert s.attrs["quantiles_not_converged"] == 0
    for i, (n, e) in enumerate(((1, 0.27), (1, 0.05), (2, 0.27))):
        for col, level in (("eb05", 0.05), ("eb95", 0.95)):
            assert s[col].iloc[i] == pytest.approx(_reference_quantile(n, e, h, level), rel=1e-8)


def test_shard_scoring_with_known_hyperparameters(caers_counts: pd.DataFrame) -> None:
    full = MGPS.from_hyperparameters(OPENEBGM).score(caers_counts)
    shard = caers_counts[caers_counts["product"].astype(str).str.startswith("C")]
    part = MGPS.from_hyperparameters(OPENEBGM).score(shard)
    cols = ["ebgm", "eb05", "eb95"]
    pd.testing.assert_frame_equal(part[cols], full.loc[shard.index, cols])


def test_a_fit_that_does_not_converge_says_so_and_publishes_no_ebgm(caers_counts: pd.DataFrame) -> None:
    m = MGPS(max_iter=2, subsample=None).fit(caers_counts)
    assert not m.converged_ and not m.summary["converged"].any()
    assert m.reason_ is not None and "did not converge" in m.reason_
    scored = m.score(caers_counts.head(50))
    assert scored[["ebgm", "eb05", "eb95"]].isna().all().all()
    assert scored.attrs["ebgm_withheld"] == m.reason_


def _first_reports(k: int) -> pd.DataFrame:
    raw = pd.read_csv(REAL_DATA / "caers_2012.csv")
    return raw[raw["id"].isin(raw["id"].drop_duplicates().iloc[:k])]


def test_a_prior_on_the_edge_of_the_parameter_space_is_reported_and_withheld() -> None:
    # The first 200 CAERS reports: the likelihood is largest at beta1 = alpha2 = 1e4 (a component with lambda
    # near 0 fits the n = 1 pairs, the other is a point mass at 2.6), whose posterior gives every one of the
    # 828 pairs EB05 >= 2, while 15 pairs meet Evans' PRR criteria.
    counts = count_table(_first_reports(200), product_col="var1", event_col="var2")
    assert len(counts) == 828
    m = MGPS().fit(counts)
    assert m.converged_ and m.at_bound_
    h = m.hyperparameters_
    assert h.beta1 == pytest.approx(1e4) and h.alpha2 == pytest.approx(1e4)
    assert m.reason_ is not None and "degenerate" in m.reason_ and "alpha2 = 1e+04 at its upper bound" in m.reason_
    # what the prior would have published
    raw_scores = ebgm_scores(counts["n"], counts["expected"], h)
    assert (raw_scores["eb05"] >= 2).all()
    # what is published: PRR, ROR and IC, and no EBGM
    table = disproportionality(_first_reports(200), product_col="var1", event_col="var2")
    assert table[["ebgm", "eb05", "eb95"]].isna().all().all() and not table["ebgm_signal"].any()
    assert (int(table["prr_signal"].sum()), int(table["ror_signal"].sum()), int(table["ic_signal"].sum())) == (
        15, 16, 11)
    assert table.attrs["converged"] and table.attrs["at_bound"] and table.attrs["reason"] == m.reason_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_small_subsets_of_caers_give_degenerate_priors(seed: int) -> None:
    raw = pd.read_csv(REAL_DATA / "caers_2012.csv")
    pick = np.random.default_rng(seed).choice(raw["id"].unique(), 400, replace=False)
    counts = count_table(raw[raw["id"].isin(pick)], product_col="var1", event_col="var2")
    m = MGPS().fit(counts)
    edges = [v for v in m.hyperparameters_.as_array()[:4] if v <= 1e-6 * (1 + 1e-6) or v >= 1e4 * (1 - 1e-6)]
    assert m.at_bound_ == bool(edges) and m.at_bound_
    assert m.score(counts)[["ebgm", "eb05", "eb95"]].isna().all().all()


def test_a_table_of_single_reports_gets_no_ebgm() -> None:
    # every n = 1: the truncated likelihood is maximised by a component with lambda near 0, and the posterior
    # mean of log lambda would put EBGM near 7e-5 for every pair
    e = np.random.default_rng(1).lognormal(-3, 1, 500)
    n = np.ones(500)
    m = MGPS().fit_arrays(n, e)
    assert m.at_bound_ and m.reason_ is not None
    assert ebgm_scores(n, e, m.hyperparameters_)["ebgm"].max() < 1e-3  # the artefact
    assert m.score_arrays(n, e).isna().all().all()


def test_a_known_prior_on_the_edge_is_withheld_too() -> None:
    ok = MGPS.from_hyperparameters(OPENEBGM)
    assert ok.reason_ is None and not ok.at_bound_ and ok.converged_
    edge = MGPS.from_hyperparameters(Hyperparameters(0.5, 1e4, 1e4, 3782.0, 0.3))
    assert edge.at_bound_ and edge.reason_ is not None and "beta1" in edge.reason_
    assert edge.score_arrays([1, 2], [0.1, 0.2]).isna().all().all()


@pytest.mark.parametrize("points", [100, 250, 400, 1000, 1500])
def test_exploring_on_a_squashed_table_reaches_the_best_maximum(caers_counts: pd.DataFrame, points: int) -> None:
    # CAERS has 1,867 distinct (n, E) pairs; exploring the starts on fewer points forces the exploration path.
    # A random subsample of 5,000 pairs reached openEBGM's lower maximum for 11 of 12 seeds.
    m = MGPS(subsample=points).fit(caers_counts)
    assert m.summary["stage"].iloc[0] == "squashed" and m.summary["points"].iloc[0] <= points
    assert m.loglik_ == pytest.approx(-4162.180837, abs=1e-3)
    assert m.reason_ is None
    again = MGPS(subsample=points).fit(caers_counts)  # deterministic: nothing random is left
    assert again.hyperparameters_ == m.hyperparameters_


def test_squashing_keeps_the_pairs_and_their_expected_counts() -> None:
    rng = np.random.default_rng(5)
    e = rng.lognormal(-2, 2, 30_000)
    n = rng.poisson(e * rng.gamma(1.0, 1.5, len(e))) + 1.0
    n_u, e_u, w, _ = mgps_module._unique_pairs(n, e)
    sn, se, sw = mgps_module._squash(n_u, e_u, w, 2_000)
    assert 1_500 <= len(sn) <= 2_000
    assert sw.sum() == len(n)  # every pair is in one point
    for v in np.unique(n):  # per count: the same pairs and the same total expected count
        assert sw[sn == v].sum() == (n == v).sum()
        assert (sw[sn == v] * se[sn == v]).sum() == pytest.approx(e[n == v].sum(), rel=1e-12)


def test_bad_input() -> None:
    with pytest.raises(InputError):
        MGPS().fit_arrays(np.array([1, 2, -1, 1, 1]), np.ones(5))
    with pytest.raises(InputError):
        MGPS().fit_arrays(np.array([1, 2, 1, 1, 1]), np.array([1.0, 0.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError):
        MGPS().fit_arrays(np.array([1, 2]), np.array([1.0, 1.0]))
    with pytest.raises(InputError):
        MGPS().score(pd.DataFrame({"n": [1]}))


def test_hyperparameters_are_frozen_and_canonical() -> None:
    h = Hyperparameters(1.0, 2.0, 3.0, 4.0, 0.9)
    with pytest.raises(AttributeError):
        h.p = 0.1  # type: ignore[misc]
    c = h.canonical()
    assert c == Hyperparameters(3.0, 4.0, 1.0, 2.0, pytest.approx(0.1))  # type: ignore[arg-type]


def test_stratified_fit_and_one_call_api() -> None:
    raw = pd.read_csv(REAL_DATA / "caers_2012.csv")
    table = disproportionality(raw, product_col="var1", event_col="var2", strata=["strat1"], min_count=3)
    assert list(table.columns[:15]) == RESULT_COLUMNS
    assert RESULT_COLUMNS == ["product", "event", "n", "expected", "prr", "prr_chi2", "ror", "ror_lower",
                              "ror_upper", "ic", "ic025", "ic975", "ebgm", "eb05", "eb95"]
    assert table["n"].min() == 3
    assert table.attrs["converged"] and table.attrs["strata"] == ["strat1"]
    unstrat = count_table(raw, product_col="var1", event_col="var2")
    strat = count_table(raw, product_col="var1", event_col="var2", strata="strat1")
    assert not np.allclose(unstrat["expected"], strat["expected"])
    m = MGPS().fit(strat)
    assert m.converged_ and math.isfinite(m.loglik_)
    assert (table["eb05"] <= table["ebgm"]).all() and (table["ebgm"] <= table["eb95"]).all()


def test_one_call_with_known_hyperparameters_and_fisher() -> None:
    raw = pd.read_csv(REAL_DATA / "caers_2012.csv")
    model = MGPS.from_hyperparameters(OPENEBGM)
    table = disproportionality(raw, product_col="var1", event_col="var2", model=model, fisher=True)
    ref = pd.read_csv(REFERENCE / "caers_openebgm_unstratified.csv")
    merged = table.astype({"product": str, "event": str}).merge(
        ref, left_on=["product", "event"], right_on=["var1", "var2"], validate="1:1")
    assert np.max(np.abs(merged["eb05"] / merged["QUANT_05"] - 1)) < 1e-4
    assert table.attrs["hyperparameters"] == OPENEBGM.to_dict()
    assert ((table["fisher_p"] > 0) & (table["fisher_p"] <= 1)).all()
    finite = np.isfinite(merged["PRR"])
    np.testing.assert_allclose(merged.loc[finite, "prr"], merged.loc[finite, "PRR"], rtol=1e-5)
    assert (merged.loc[~finite, "prr"] == np.inf).all()


def test_a_table_too_small_for_the_prior_still_gets_the_other_measures() -> None:
    rows = pd.DataFrame({"id": [1, 1, 2, 3, 4, 4], "product": ["A", "A", "A", "B", "B", "C"],
                         "event": ["x", "y", "x", "y", "y", "x"]})
    table, model = disproportionality(rows, return_model=True)
    assert len(table) == 4 and not hasattr(model, "hyperparameters_")
    assert table[["ebgm", "eb05", "eb95"]].isna().all().all() and not table["ebgm_signal"].any()
    assert table[["prr", "ror", "ror_lower", "ic", "ic025"]].notna().all().all()
    # product A, event x: a = 2 (cases 1, 2), b = 0 (A's cases without x), c = 1 (case 4), d = 1 (case 3)
    ax = table[(table["product"] == "A") & (table["event"] == "x")].iloc[0]
    assert ax["prr"] == pytest.approx((2 / 2) / (1 / 2))
    assert table.attrs["reason"] == "MGPS needs at least 5 pairs to fit its 5 hyperparameters, the table has 4"
    assert table.attrs["hyperparameters"] is None and not table.attrs["converged"]


def test_pairs_whose_quantiles_fail_are_counted_and_keep_their_ebgm(caers_counts: pd.DataFrame,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    solve = mgps_module._mixture_quantile

    def two_steps(*args, **kwargs):  # type: ignore[no-untyped-def]
        return solve(*args, **{**kwargs, "max_iter": 2})  # too few iterations for some pairs

    monkeypatch.setattr(mgps_module, "_mixture_quantile", two_steps)
    scored = MGPS.from_hyperparameters(OPENEBGM).score(caers_counts)
    failed = scored["eb05"].isna() | scored["eb95"].isna()
    assert 0 < failed.sum() < len(scored)
    assert scored.attrs["quantiles_not_converged"] == int(failed.sum())
    assert scored["ebgm"].notna().all()
