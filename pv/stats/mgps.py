"""MGPS: DuMouchel's empirical-Bayes gamma-Poisson shrinker (EBGM, EB05, EB95). See docs/methods.md.

Model (DuMouchel 1999): for a pair with observed count ``n`` and expected count ``E``,
``n | lambda ~ Poisson(lambda E)`` and ``lambda ~ P Gamma(alpha1, beta1) + (1 - P) Gamma(alpha2, beta2)``
(shape/rate). The marginal of ``n`` is a two-component negative-binomial mixture,
``f_i(n) = NB(n; size alpha_i, prob beta_i / (beta_i + E))``.

Fit: maximum likelihood over all pairs with ``n >= 1``, using the likelihood *conditional on n >= 1*
(each component divided by ``1 - f_i(0)``), exactly as openEBGM's ``autoHyper(..., squashed = FALSE,
zeroes = FALSE, N_star = 1)`` does (its ``negLL``). With ``truncated=False`` the unconditional likelihood is
used instead (openEBGM's ``negLLzero``, meant for tables that include the zero cells).

The likelihood and its analytic gradient are vectorised over all pairs, exactly (the final fit is never on a
squashed table): identical ``(n, E)`` pairs are merged with a weight (an exact rewrite of the sum), and the
terms are grouped by ``n`` so the common small counts use scalar shape terms. Several starting points are run
with L-BFGS-B on ``log alpha``, ``log beta`` and ``logit P`` within bounds. On a large table they are first
explored on a deterministic squash of it (no random subsample: the result does not depend on a seed) by a
projected BFGS written here (SciPy's optimisers, a tenth of a second to import, are then loaded only should a
refinement stall), and every distinct optimum they reach is refitted on all pairs (with the starts that led to
them, when there are several); the highest likelihood on all pairs wins.

The fit reports what happened instead of raising: ``converged_``, ``at_bound_`` and ``reason_``. An optimum
on the edge of the parameter box (some alpha or beta at 1e-6 or 1e4, or P at its bound) is a degenerate prior:
the likelihood increases towards a limit outside the model (e.g. a point mass, or a component with lambda
near 0 that the truncated likelihood uses to fit the n = 1 pairs), and its posterior scores are artefacts, so
``score`` leaves EBGM, EB05 and EB95 empty. ``ConvergenceError`` is raised only when no start gives a finite
likelihood.

Posterior (for any ``n``, including the pairs not used in the fit): mixture of
``Gamma(alpha_i + n, beta_i + E)`` with weights ``Q_n`` and ``1 - Q_n`` (DuMouchel eq. 6);
EBGM = ``exp(E[log lambda])``; EB05/EB95 are the 5% and 95% quantiles of that mixture, found for all pairs
at once by a bracketed Halley iteration on ``log x`` (relative error below 1e-8).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from pv.errors import ConvergenceError, InputError


@dataclass(frozen=True)
class Hyperparameters:
    """Prior ``P Gamma(alpha1, beta1) + (1 - P) Gamma(alpha2, beta2)`` (shape, rate)."""

    alpha1: float
    beta1: float
    alpha2: float
    beta2: float
    p: float

    def as_array(self) -> np.ndarray:
        return np.array([self.alpha1, self.beta1, self.alpha2, self.beta2, self.p], dtype=np.float64)

    @classmethod
    def from_array(cls, x: Sequence[float] | np.ndarray) -> Hyperparameters:
        a1, b1, a2, b2, p = (float(v) for v in x)
        return cls(a1, b1, a2, b2, p)

    def canonical(self) -> Hyperparameters:
        """The same prior labelled so that the first component has the smaller weight (``p <= 0.5``)."""
        if self.p > 0.5:
            return Hyperparameters(self.alpha2, self.beta2, self.alpha1, self.beta1, 1.0 - self.p)
        return self

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class _Result:
    """What one optimisation reached (the fields of SciPy's ``OptimizeResult`` the fit reads), with ``pgrad``,
    the projected gradient there, and ``ok``, whether it counts as converged."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    success: bool
    message: str
    pgrad: float = math.inf
    ok: bool = False


# openEBGM's vignette starting points (alpha1, beta1, alpha2, beta2, P).
DEFAULT_STARTS: tuple[Hyperparameters, ...] = (
    Hyperparameters(0.2, 0.1, 2.0, 4.0, 1 / 3),
    Hyperparameters(0.1, 0.1, 10.0, 10.0, 0.2),
    Hyperparameters(0.3, 0.5, 6.0, 6.0, 0.5),
    Hyperparameters(0.5, 0.3, 12.0, 12.0, 0.8),
    Hyperparameters(0.2, 0.2, 5.0, 5.0, 0.4),
)


# ----------------------------------------------------------------------------------------------------------
# data preparation


def _check_arrays(n: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    n_arr = np.asarray(n)
    e_arr = np.asarray(expected, dtype=np.float64)
    if n_arr.shape != e_arr.shape or n_arr.ndim != 1:
        raise InputError("n and expected must be one-dimensional arrays of the same length", field="n")
    n_f = n_arr.astype(np.float64)
    if len(n_f) and (not np.all(np.isfinite(n_f)) or n_f.min() < 0 or np.any(n_f != np.floor(n_f))):
        raise InputError("counts n must be whole numbers >= 0", field="n")
    if len(e_arr) and (not np.all(np.isfinite(e_arr)) or e_arr.min() <= 0):
        raise InputError("expected counts must be finite and > 0", field="expected")
    return n_f, e_arr


def _unique_pairs(n: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (n, E) pairs (sorted by E, then n), their multiplicities, and the index of each input in them.

    Sort-based: sort by E, rank the distinct E values, then a stable sort of rank x n (nearly sorted already).
    """
    if len(n) == 0:
        z = np.zeros(0)
        return z, z, z, np.zeros(0, dtype=np.int64)
    n_int = n.astype(np.int64)
    perm = np.argsort(e)
    es = e[perm]
    new = np.empty(len(es), dtype=bool)
    new[0] = True
    np.not_equal(es[1:], es[:-1], out=new[1:])
    key = np.cumsum(new, dtype=np.int64)
    key -= 1
    key *= int(n_int.max()) + 1
    key += n_int[perm]
    perm2 = np.argsort(key, kind="stable")
    ks = key[perm2]
    np.not_equal(ks[1:], ks[:-1], out=new[1:])
    gid = np.cumsum(new, dtype=np.int64)
    gid -= 1
    inverse = np.empty(len(n), dtype=np.int64)
    inverse[perm[perm2]] = gid
    starts = np.flatnonzero(new)
    weight = np.diff(np.append(starts, len(n))).astype(np.float64)
    src = perm[perm2[starts]]
    return n[src].astype(np.float64), e[src], weight, inverse


@dataclass
class _Group:
    """Pairs sharing one count ``n`` (scalar) or the tail of rarer counts (array ``n``)."""

    n: float | np.ndarray
    e: np.ndarray
    w: np.ndarray
    n_index: np.ndarray | None = None  # tail only: index of each pair's n in the distinct counts
    n_values: np.ndarray | None = None  # tail only: the distinct counts


@dataclass
class _Data:
    groups: list[_Group]
    total_weight: float
    n_points: int
    const: float = 0.0  # sum of w n log E, the part of the log-likelihood free of the hyperparameters
    n_values: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _prepare(n: np.ndarray, e: np.ndarray, weight: np.ndarray, *, min_group: int = 5000,
             max_groups: int = 12) -> _Data:
    order = np.argsort(n, kind="stable")
    n, e, weight = n[order], e[order], weight[order]
    values, starts, sizes = np.unique(n, return_index=True, return_counts=True)
    groups: list[_Group] = []
    tail_from = len(n)
    for k, (v, s, size) in enumerate(zip(values, starts, sizes, strict=True)):
        if size < min_group or k >= max_groups:
            tail_from = int(s)
            break
        sl = slice(int(s), int(s + size))
        groups.append(_Group(n=float(v), e=e[sl], w=weight[sl]))
    if tail_from < len(n):
        tn = n[tail_from:]
        tv, tidx = np.unique(tn, return_inverse=True)
        te = e[tail_from:]
        groups.append(_Group(n=tn, e=te, w=weight[tail_from:], n_index=tidx, n_values=tv))
    const = float(_dot(weight * n, np.log(e))) if len(n) else 0.0
    return _Data(groups=groups, total_weight=float(weight.sum()), n_points=len(n), const=const,
                 n_values=values)


# ----------------------------------------------------------------------------------------------------------
# likelihood


def _shape_terms(a: float, b: float, g: _Group) -> tuple[float | np.ndarray, float | np.ndarray]:
    """lgamma(a + n) - lgamma(a) - lgamma(n + 1) - n log b, and the a-derivative of the lgamma part."""
    if g.n_values is None:
        nn = float(g.n)  # type: ignore[arg-type]
        lg = special.gammaln(a + nn) - special.gammaln(a) - special.gammaln(nn + 1.0) - nn * math.log(b)
        dg = special.digamma(a + nn) - special.digamma(a)
        return float(lg), float(dg)
    assert g.n_index is not None
    v = g.n_values
    lg_v = special.gammaln(a + v) - special.gammaln(a) - special.gammaln(v + 1.0) - v * math.log(b)
    dg_v = special.digamma(a + v) - special.digamma(a)
    return lg_v[g.n_index], dg_v[g.n_index]


def _component(a: float, b: float, log_w: float, g: _Group, truncated: bool, grad: bool
               ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None, float | np.ndarray]:
    """log(weight x truncated NB probability) of each pair less the common n log E, and gradient pieces.

    With t = E/b and lp = log(1 + t): log NB = G(n) - n log b - (a + n) lp + n log E; the truncation adds
    -log(1 - (1 + t)^-a). The derivatives are d/dlog a = a (dG - lp/(1 - r^a)) and
    d/dlog b = a (1 - s)/(1 - r^a) - n s with s = 1/(1 + t) (without truncation 1 - r^a is 1).
    Returns ll, (lp / om, (1 - s) / om, s) and dG.
    """
    lg, dg = _shape_terms(a, b, g)
    t = g.e * (1.0 / b)
    lp = np.log1p(t)
    ll = lp * (-(a + g.n))
    ll += lg
    if log_w:
        ll += log_w
    om = None
    if truncated:
        om = np.multiply(lp, -a)
        np.expm1(om, out=om)
        np.negative(om, out=om)  # 1 - r^a
        ll -= np.log(om)
    if not grad:
        return ll, None, dg
    s_ = np.add(t, 1.0, out=t)
    np.reciprocal(s_, out=s_)  # s = 1 / (1 + t)
    one_minus_s = 1.0 - s_
    if om is not None:
        np.reciprocal(om, out=om)
        lp *= om
        one_minus_s *= om
    return ll, (lp, one_minus_s, s_), dg


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Inner product without BLAS (OpenBLAS threads cost far more than they save on a shared machine)."""
    return float(np.einsum("i,i->", x, y))


def _logaddexp(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log(exp(x) + exp(y)) with vectorised exp/log1p (numpy's logaddexp is many times slower)."""
    out = np.maximum(x, y)
    d = np.subtract(x, y)
    np.abs(d, out=d)
    np.negative(d, out=d)
    np.exp(d, out=d)
    np.log1p(d, out=d)
    out += d
    return out


def _unpack(theta: np.ndarray) -> tuple[float, float, float, float, float]:
    a1, b1, a2, b2 = (math.exp(float(v)) for v in theta[:4])
    p = float(special.expit(theta[4]))
    return a1, b1, a2, b2, p


def _pack(h: Hyperparameters) -> np.ndarray:
    return np.array([math.log(h.alpha1), math.log(h.beta1), math.log(h.alpha2), math.log(h.beta2),
                     float(special.logit(h.p))])


def _objective(theta: np.ndarray, data: _Data, truncated: bool, grad: bool = True
               ) -> tuple[float, np.ndarray] | float:
    """Mean negative log-likelihood (weights = multiplicities) and its gradient in the packed parameters."""
    a1, b1, a2, b2, p = _unpack(theta)
    if not (0.0 < p < 1.0):
        return (math.inf, np.zeros(5)) if grad else math.inf
    lp, lq = math.log(p), math.log1p(-p)
    total = data.const
    gvec = np.zeros(5)
    for g in data.groups:
        l1, pieces1, dg1 = _component(a1, b1, lp, g, truncated, grad)
        l2, pieces2, dg2 = _component(a2, b2, lq, g, truncated, grad)
        log_l = _logaddexp(l1, l2)
        total += float(_dot(g.w, log_l))
        if grad:
            assert pieces1 is not None and pieces2 is not None
            np.subtract(l1, log_l, out=l1)
            np.exp(l1, out=l1)  # q, the posterior weight of component 1
            wq = np.multiply(g.w, l1, out=l1)
            wr = np.subtract(g.w, wq, out=l2)
            sw_q, sw = float(wq.sum()), float(g.w.sum())
            for k, (a, wts, (lp_om, oms_om, s_), dg) in enumerate(
                    ((a1, wq, pieces1, dg1), (a2, wr, pieces2, dg2))):
                sw_k = sw_q if k == 0 else sw - sw_q
                if isinstance(dg, np.ndarray):
                    gvec[2 * k] += a * (_dot(wts, dg) - _dot(wts, lp_om))
                    gvec[2 * k + 1] += a * _dot(wts, oms_om) - _dot(wts * g.n, s_)
                else:
                    gvec[2 * k] += a * (float(dg) * sw_k - _dot(wts, lp_om))
                    gvec[2 * k + 1] += a * _dot(wts, oms_om) - float(g.n) * _dot(wts, s_)  # type: ignore[arg-type]
            gvec[4] += sw_q - p * sw
    scale = 1.0 / data.total_weight
    value = -total * scale
    if not math.isfinite(value):
        return (math.inf, np.zeros(5)) if grad else math.inf
    if grad:
        return value, -gvec * scale
    return value


def log_likelihood(n: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float],
                   hyper: Hyperparameters, *, truncated: bool = True) -> float:
    """Log-likelihood (natural log, summed over pairs) of the prior; truncated: pairs with n >= 1 only,
    each conditioned on n >= 1 (openEBGM ``-negLL(theta, N, E, N_star = 1)``)."""
    n_f, e = _check_arrays(n, expected)
    if truncated:
        keep = n_f >= 1
        n_f, e = n_f[keep], e[keep]
    n_u, e_u, w, _ = _unique_pairs(n_f, e)
    data = _prepare(n_u, e_u, w)
    if data.total_weight == 0:
        return 0.0
    value = _objective(_pack(hyper), data, truncated, grad=False)
    assert isinstance(value, float)
    return -value * data.total_weight


# ----------------------------------------------------------------------------------------------------------
# posterior


def _posterior_weights(n: np.ndarray, e: np.ndarray, h: Hyperparameters
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q_n (posterior weight of the first component), and the distinct counts with each pair's index."""
    un, idx = np.unique(n, return_inverse=True)
    logs = []
    for a, b in ((h.alpha1, h.beta1), (h.alpha2, h.beta2)):
        lg = (special.gammaln(a + un) - special.gammaln(a) - special.gammaln(un + 1.0))[idx]
        log_r = -np.log1p(e / b)
        log_t = np.log(e) - math.log(b)
        logs.append(lg + (a + n) * log_r + n * log_t)
    x1 = logs[0] + math.log(h.p)
    x2 = logs[1] + math.log1p(-h.p)
    q = np.exp(x1 - _logaddexp(x1, x2))
    return q, un, idx


def _mixture_quantile(target: float, q: np.ndarray, n_uniq: np.ndarray, idx: np.ndarray, e: np.ndarray,
                      h: Hyperparameters, *, step_tol: float = 1e-8, tol: float = 1e-12,
                      max_iter: int = 200) -> np.ndarray:
    """Quantile of Q Gamma(a1 + n, b1 + E) + (1 - Q) Gamma(a2 + n, b2 + E) for every pair at once; NaN for a
    pair whose iteration does not converge.

    Works on u = log x. The answer lies between the two component quantiles (each an inverse regularised gamma
    at a shape that depends on n only, so computed once per distinct n), and that bracket is narrowed at every
    step by the sign of F(u) - target. From the quantile of the moment-matched single gamma (Wilson-Hilferty),
    Halley steps (Newton where Halley's is unusable) run on the still-active pairs only; a step that leaves the
    bracket or does not at least halve the step before last is replaced by bisection (the safeguard of
    Numerical Recipes' rtsafe), so every pair converges within a bounded number of iterations.

    Stopping: with ``d = |F - target| / F'`` (the Newton distance to the root) and ``L`` the scale on which
    ``F'`` changes (the largest of 1, ``|F''/F'|`` and ``sqrt(|F'''/F'|)``, derivatives in ``u``), a pair stops
    after its step once ``d L <= 0.1`` and ``(d L)^2 d <= step_tol``: a Halley step leaves an error of order
    ``(d L)^2 d`` in ``u``, the relative error of the quantile (measured: at most 0.3 ``step_tol``, so below
    3e-9 by default; tests/test_stats_mgps.py compares with an independent root finder). The bracket stops a
    pair when it is narrower than ``tol``. The Newton distance, not the Halley step, is tested: in the far
    tail of a narrow component a Halley step is small although the root is far away.
    """
    k1 = h.alpha1 + n_uniq
    k2 = h.alpha2 + n_uniq
    r1 = h.beta1 + e
    r2 = h.beta2 + e
    lo = np.log(special.gammaincinv(k1, target))[idx] - np.log(r1)
    hi = np.log(special.gammaincinv(k2, target))[idx] - np.log(r2)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    # moment-matched gamma and its Wilson-Hilferty quantile as the starting point
    kk1, kk2 = k1[idx], k2[idx]
    mean = q * kk1 / r1 + (1.0 - q) * kk2 / r2
    second = q * kk1 * (kk1 + 1.0) / (r1 * r1) + (1.0 - q) * kk2 * (kk2 + 1.0) / (r2 * r2)
    var = np.maximum(second - mean * mean, 1e-300)
    shape = mean * mean / var
    z = float(special.ndtri(target))
    wh = np.maximum(1.0 - 1.0 / (9.0 * shape) + z * np.sqrt(1.0 / (9.0 * shape)), 1e-3)
    u = np.log(mean) + 3.0 * np.log(wh)
    width = hi - lo
    u = np.clip(u, lo + 0.01 * width, hi - 0.01 * width)
    del mean, second, var, shape, wh, kk1, kk2
    lgk1 = special.gammaln(k1)
    lgk2 = special.gammaln(k2)
    u[width <= tol] = lo[width <= tol]
    # rtsafe's safeguard: the step before last (bracket width to begin with)
    prev = width.copy()
    last = width.copy()
    active = np.flatnonzero(width > tol)
    for _ in range(max_iter):
        if len(active) == 0:
            break
        ua, qa, ia = u[active], q[active], idx[active]
        kk1, kk2 = k1[ia], k2[ia]
        y1 = np.exp(ua)
        y2 = y1 * r2[active]
        y1 *= r1[active]
        p2 = special.gammainc(kk2, y2)
        err = special.gammainc(kk1, y1)
        err -= p2
        err *= qa
        err += p2
        err -= target  # F(u) - target, F = q P(k1, y1) + (1 - q) P(k2, y2)
        # dF/du = g1 + g2 with g_i = w_i exp(k_i log y_i - y_i - lgamma(k_i)); dg_i/du = g_i c_i, c_i = k_i - y_i,
        # and dc_i/du = -y_i: F'' = sum g_i c_i, F''' = sum g_i (c_i^2 - y_i)
        g1 = np.log(y1)
        g1 *= kk1
        g1 -= y1
        g1 -= lgk1[ia]
        np.exp(g1, out=g1)
        g1 *= qa
        g2 = np.log(y2)
        g2 *= kk2
        g2 -= y2
        g2 -= lgk2[ia]
        np.exp(g2, out=g2)
        g2 *= 1.0 - qa
        del qa, ia, p2
        c1 = np.subtract(kk1, y1, out=kk1)
        c2 = np.subtract(kk2, y2, out=kk2)
        d1 = g1 + g2
        d2 = g1 * c1
        d2 += g2 * c2
        np.multiply(c1, c1, out=c1)
        c1 -= y1
        c1 *= g1
        np.multiply(c2, c2, out=c2)
        c2 -= y2
        c2 *= g2
        d3 = np.add(c1, c2, out=c1)
        del g1, g2, c2, y1, y2, kk2
        lo_a, hi_a = lo[active], hi[active]
        above = err > 0
        hi_a = np.where(above, ua, hi_a)
        lo_a = np.where(above, lo_a, ua)
        del above
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = err / d1
            step = 2.0 * err * d1 / (2.0 * d1 * d1 - err * d2)  # Halley
            step = np.where(np.isfinite(step) & (step * newton > 0), step, newton)
            # (d L)^2 with d the Newton distance and L^2 = max(1, (F''/F')^2, |F'''/F'|)
            scale = np.divide(d2, d1, out=d2)
            np.multiply(scale, scale, out=scale)
            np.divide(d3, d1, out=d3)
            np.abs(d3, out=d3)
            np.maximum(scale, d3, out=scale)
            np.maximum(scale, 1.0, out=scale)
            dist2 = np.multiply(newton, newton, out=d3)
            dist2 *= scale
            settled = (dist2 <= 0.01) & (dist2 * np.abs(newton) <= step_tol)
        del d1, d2, d3, dist2, scale, newton
        new = ua - step
        bisect = ~np.isfinite(new)
        bisect |= new <= lo_a
        bisect |= new >= hi_a
        bisect |= np.abs(step) > 0.5 * prev[active]
        del step
        mid = 0.5 * (lo_a + hi_a)
        new = np.where(bisect, mid, new)
        new = np.where(err == 0, ua, new)
        narrow = (hi_a - lo_a) <= tol
        new = np.where(narrow & (err != 0), mid, new)
        broken = ~np.isfinite(err)  # e.g. a posterior weight that overflowed: no answer rather than a wrong one
        new = np.where(broken, np.nan, new)
        done = (err == 0) | narrow | (~bisect & settled) | broken
        del mid, narrow, bisect, settled, broken, err
        prev[active] = last[active]
        last[active] = np.abs(new - ua)
        lo[active], hi[active] = lo_a, hi_a
        u[active] = new
        active = active[~done]
    u[active] = np.nan
    return np.exp(u)


#: ``attrs`` key of a scored table: the number of pairs whose posterior quantiles did not converge.
QUANTILE_FAILURES = "quantiles_not_converged"
#: ``attrs`` key of a table scored by :meth:`MGPS.score`: why its EBGM columns are empty (None when they are not).
EBGM_WITHHELD = "ebgm_withheld"


def _degenerate(edges: list[str]) -> str:
    return (f"the MGPS prior is degenerate: the likelihood is largest on the edge of the parameter space "
            f"({'; '.join(edges)}), so the data do not determine a two-gamma prior")


def _quantile_name(q: float) -> str:
    pct = q * 100.0
    return f"eb{int(round(pct)):02d}" if abs(pct - round(pct)) < 1e-9 else f"eb{pct:g}".replace(".", "_")


def ebgm_scores(n: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float],
                hyper: Hyperparameters, quantiles: Sequence[float] = (0.05, 0.95)) -> pd.DataFrame:
    """EBGM and posterior quantiles (columns ``ebgm``, ``eb05``, ``eb95`` for the default quantiles) per pair.

    Works for any subset of pairs (e.g. a shard of products) given hyperparameters fitted on the whole table.
    Pairs with ``n = 0`` get the prior-to-posterior update with ``n = 0``. A pair whose posterior quantile
    iteration does not converge gets NaN in that quantile's column (its EBGM, a closed form, is kept); the
    number of such pairs is ``result.attrs["quantiles_not_converged"]``.
    """
    n_f, e = _check_arrays(n, expected)
    for qv in quantiles:
        if not 0.0 < qv < 1.0:
            raise InputError(f"quantile {qv} is not in (0, 1)", field="quantiles")
    cols = ["ebgm", *(_quantile_name(qv) for qv in quantiles)]
    if len(n_f) == 0:
        empty = pd.DataFrame({c: np.zeros(0) for c in cols})
        empty.attrs[QUANTILE_FAILURES] = 0
        return empty
    n_u, e_u, _, inverse = _unique_pairs(n_f, e)
    qn, un, idx = _posterior_weights(n_u, e_u, hyper)
    m1 = special.digamma(hyper.alpha1 + un)[idx] - np.log(hyper.beta1 + e_u)
    m2 = special.digamma(hyper.alpha2 + un)[idx] - np.log(hyper.beta2 + e_u)
    out = {"ebgm": np.exp(qn * m1 + (1.0 - qn) * m2)[inverse]}
    # the quantiles are independent; numpy and scipy release the GIL in their loops, so threads overlap them
    workers = max(1, min(len(quantiles), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(lambda qv: _mixture_quantile(qv, qn, un, idx, e_u, hyper), quantiles))
    failed = np.zeros(len(n_f), dtype=bool)
    for name, values in zip(cols[1:], found, strict=True):
        out[name] = values[inverse]
        failed |= np.isnan(out[name]) & ~np.isnan(out["ebgm"])
    frame = pd.DataFrame(out)
    frame.attrs[QUANTILE_FAILURES] = int(failed.sum())
    return frame


def _squash(n: np.ndarray, e: np.ndarray, w: np.ndarray, max_points: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (n, E) pairs (weights ``w``, sorted by E) reduced to at most about ``max_points`` points.

    Data squashing (DuMouchel et al. 1999; openEBGM's ``squashData`` merges fixed numbers of pairs instead):
    pairs with the same ``n`` whose ``E`` fall in one bin of width ``delta`` on the log scale become one point at
    their weighted mean ``E``, with their total weight, so the squashed log-likelihood approximates the full one
    on the same scale. ``delta`` is the narrowest width (by bisection on ``log delta``) that gives at most
    ``max_points`` points; with more distinct counts than that, each count keeps one point. Deterministic: the
    same table always gives the same points.
    """
    order = np.argsort(n, kind="stable")  # sorted by n, and by E within each n (the input is sorted by E)
    n, e, w = n[order], e[order], w[order]
    log_e = np.log(e)
    new_n = np.empty(len(n), dtype=bool)
    new_n[0] = True
    np.not_equal(n[1:], n[:-1], out=new_n[1:])

    def bin_starts(delta: float) -> np.ndarray:
        b = np.floor(log_e * (1.0 / delta))
        starts = new_n.copy()
        starts[1:] |= b[1:] != b[:-1]
        return starts

    lo, hi = math.log(1e-6), math.log(1e3)  # log delta: far finer than any table needs; one bin per count
    starts = bin_starts(math.exp(hi))
    if int(starts.sum()) <= max_points:
        for _ in range(14):  # log delta to within 0.002: the point count to within a fraction of a percent
            mid = 0.5 * (lo + hi)
            trial = bin_starts(math.exp(mid))
            if int(trial.sum()) <= max_points:
                hi, starts = mid, trial
            else:
                lo = mid
    idx = np.flatnonzero(starts)
    sw = np.add.reduceat(w, idx)
    se = np.add.reduceat(w * e, idx) / sw
    return n[idx], se, sw


#: Fewest pairs (with n >= 1) an MGPS prior is fitted on: one per hyperparameter.
MIN_PAIRS = 5
_NAMES = ("alpha1", "beta1", "alpha2", "beta2", "p")


# ----------------------------------------------------------------------------------------------------------
# estimator


class MGPS:
    """Two-component gamma-Poisson shrinker, fitted by maximum likelihood (see the module docstring).

    Parameters: ``starts`` (starting hyperparameters; default openEBGM's vignette five), ``truncated``
    (likelihood conditional on n >= 1, default, as openEBGM ``zeroes = FALSE``), ``bounds`` (lower, upper) for
    every alpha and beta, ``p_bounds``, ``max_iter`` (L-BFGS-B iterations per start), ``tol`` (gradient
    tolerance on the mean log-likelihood), ``subsample`` (when the table has more distinct (n, E) pairs than
    this, the starts are explored on a squashed table of at most this many points, and every distinct optimum
    they reach is then refitted on all pairs; ``None``: every start on all pairs), ``subsample_tol`` (gradient
    tolerance of that exploration), ``quantiles`` (posterior quantiles reported by ``score``).

    Fitted attributes: ``hyperparameters_`` (the highest likelihood found, converged starts first),
    ``loglik_`` (on all pairs with n >= 1), ``converged_`` (that optimum meets the gradient tolerance),
    ``at_bound_`` (it lies on the edge of the parameter box), ``reason_`` (why the prior must not be used for
    scores: no convergence, or a degenerate prior on the edge of the box; None when it is sound), ``n_iter_``,
    ``n_pairs_``, ``fit_seconds_``, and ``summary`` (one row per start and stage). ``score`` withholds EBGM,
    EB05 and EB95 (empty) when ``reason_`` is set.
    """

    def __init__(self, *, starts: Sequence[Hyperparameters] | None = None, truncated: bool = True,
                 bounds: tuple[float, float] = (1e-6, 1e4), p_bounds: tuple[float, float] = (1e-8, 1 - 1e-8),
                 max_iter: int = 1000, tol: float = 1e-7, subsample: int | None = 10_000,
                 subsample_tol: float = 1e-5, quantiles: Sequence[float] = (0.05, 0.95)) -> None:
        self.starts = tuple(starts) if starts is not None else DEFAULT_STARTS
        self.truncated = truncated
        self.bounds = bounds
        self.p_bounds = p_bounds
        self.max_iter = max_iter
        self.tol = tol
        self.subsample = subsample
        self.subsample_tol = subsample_tol
        self.quantiles = tuple(quantiles)

    @classmethod
    def from_hyperparameters(cls, hyper: Hyperparameters, **params: object) -> MGPS:
        """An MGPS that scores with known hyperparameters (e.g. fitted once per run, then used per shard).

        Nothing is fitted: ``converged_`` is True and ``loglik_`` NaN; a prior on the edge of the parameter box
        is still degenerate (``at_bound_``, ``reason_``) and gets no scores.
        """
        model = cls(**params)  # type: ignore[arg-type]
        model.hyperparameters_ = hyper
        model.loglik_ = math.nan
        model.converged_ = True
        edges = model._edges(hyper)
        model.at_bound_ = bool(edges)
        model.reason_ = _degenerate(edges) if edges else None
        model.n_iter_ = 0
        model.n_pairs_ = 0
        model.fit_seconds_ = 0.0
        model._summary = pd.DataFrame()
        return model

    # -- fitting ------------------------------------------------------------------------------------------
    def fit(self, counts: pd.DataFrame) -> MGPS:
        """Fit on a count table (uses its ``n`` and ``expected`` columns)."""
        for col in ("n", "expected"):
            if col not in counts.columns:
                raise InputError(f"count table lacks column {col!r}", field=col)
        return self.fit_arrays(counts["n"].to_numpy(), counts["expected"].to_numpy())

    def _box(self) -> list[tuple[float, float]]:
        lo, hi = self.bounds
        plo, phi = self.p_bounds
        return [(math.log(lo), math.log(hi))] * 4 + [(float(special.logit(plo)), float(special.logit(phi)))]

    def _clip_start(self, h: Hyperparameters) -> np.ndarray:
        box = self._box()
        x = _pack(h)
        return np.array([min(max(v, lo), hi) for v, (lo, hi) in zip(x, box, strict=True)])

    def _run(self, x0: np.ndarray, data: _Data, gtol: float) -> _Result:
        from scipy import optimize  # only fits that need L-BFGS-B load it (a tenth of a second)

        res = optimize.minimize(_objective, x0, args=(data, self.truncated), jac=True, method="L-BFGS-B",
                                bounds=self._box(),
                                options={"maxiter": self.max_iter, "maxfun": 2 * self.max_iter + 50,
                                         "ftol": 1e-15, "gtol": gtol, "maxcor": 20})
        # L-BFGS-B stops with an "abnormal" line search once f no longer changes in double precision; that is
        # convergence when the projected gradient is already small.
        pgrad = self._projected_gradient(res.x, res.jac)
        ok = bool(math.isfinite(res.fun) and (res.success or pgrad <= max(10.0 * gtol, 1e-6))
                  and res.nit < self.max_iter)
        return _Result(x=np.asarray(res.x, dtype=np.float64), fun=float(res.fun),
                       jac=np.asarray(res.jac, dtype=np.float64), nit=int(res.nit), success=bool(res.success),
                       message=str(res.message), pgrad=pgrad, ok=ok)

    def _explore(self, x0: np.ndarray, data: _Data, gtol: float) -> _Result:
        """A start on the squashed table: projected BFGS in the box (the variables on a bound that the gradient
        pushes out stay there; BFGS on the others), with a backtracking (Armijo) line search along the clipped
        path. It only has to find where each start leads: the optimum it reaches is refined on all pairs."""
        box = self._box()
        lo = np.array([b[0] for b in box])
        hi = np.array([b[1] for b in box])
        x = np.clip(np.asarray(x0, dtype=np.float64), lo, hi)
        f, g = _objective(x, data, self.truncated)  # type: ignore[misc]
        if not math.isfinite(f):
            return _Result(x=x, fun=math.inf, jac=g, nit=0, success=False, message="no finite likelihood at the start")
        inv_h = np.eye(5)
        scaled = False
        for it in range(self.max_iter):
            pg = self._projected_gradient(x, g)
            if pg <= gtol:
                return _Result(x=x, fun=f, jac=g, nit=it, success=True, pgrad=pg, ok=True,
                               message="CONVERGENCE: projected gradient below the tolerance (projected BFGS)")
            free = ~(((x <= lo + 1e-10) & (g > 0)) | ((x >= hi - 1e-10) & (g < 0)))
            d = np.zeros(5)
            d[free] = -(inv_h[np.ix_(free, free)] @ g[free])
            if not float(g @ d) < 0.0:  # not a descent direction: start the curvature again
                inv_h = np.eye(5)
                scaled = False
                d = np.where(free, -g, 0.0)
            t = 1.0 if scaled else min(1.0, 1.0 / float(np.max(np.abs(d))))
            for _ in range(40):
                xn = np.clip(x + t * d, lo, hi)
                fn, gn = _objective(xn, data, self.truncated)  # type: ignore[misc]
                if math.isfinite(fn) and fn <= f + 1e-4 * float(g @ (xn - x)) and np.any(xn != x):
                    break
                t *= 0.5
            else:  # no decrease left in double precision: converged when the gradient is already small
                return _Result(x=x, fun=f, jac=g, nit=it, success=False, pgrad=pg, ok=pg <= max(10.0 * gtol, 1e-6),
                               message="ABNORMAL: no decrease along the search direction (projected BFGS)")
            s_, y_ = xn - x, gn - g
            sy = float(s_ @ y_)
            if sy > 1e-10 * math.sqrt(float(s_ @ s_) * float(y_ @ y_)):  # BFGS update of the inverse Hessian
                if not scaled:  # the first: scaled as Shanno and Phua suggest
                    inv_h = np.eye(5) * (sy / float(y_ @ y_))
                    scaled = True
                rho = 1.0 / sy
                left = np.eye(5) - rho * np.outer(s_, y_)
                inv_h = left @ inv_h @ left.T + rho * np.outer(s_, s_)
            x, f, g = xn, fn, gn
        pg = self._projected_gradient(x, g)
        return _Result(x=x, fun=f, jac=g, nit=self.max_iter, success=False, pgrad=pg, ok=False,
                       message="STOP: the iteration limit (projected BFGS)")

    def _projected_gradient(self, x: np.ndarray, g: np.ndarray) -> float:
        pg = np.array(g, dtype=np.float64)
        for i, (lo, hi) in enumerate(self._box()):
            if (x[i] <= lo + 1e-10 and pg[i] > 0) or (x[i] >= hi - 1e-10 and pg[i] < 0):
                pg[i] = 0.0
        return float(np.max(np.abs(pg))) if np.all(np.isfinite(pg)) else math.inf

    def _at_bound(self, x: np.ndarray) -> bool:
        box = self._box()
        return any(abs(v - lo) < 1e-6 or abs(v - hi) < 1e-6 for v, (lo, hi) in zip(x, box, strict=True))

    def _edges(self, h: Hyperparameters) -> list[str]:
        """The hyperparameters of ``h`` on (or beyond) the edge of the parameter box, described."""
        lo, hi = self.bounds
        plo, phi = self.p_bounds
        out = []
        for name, v in zip(_NAMES, h.as_array(), strict=True):
            low, high = (plo, phi) if name == "p" else (lo, hi)
            if v <= low * (1 + 1e-6):
                out.append(f"{name} = {v:.3g} at its lower bound")
            elif v >= high * (1 - 1e-6):
                out.append(f"{name} = {v:.3g} at its upper bound")
        return out

    def _distinct(self, results: list[_Result]) -> list[int]:
        """Indices of the finite results, best first, without those at the same point as a better one."""
        order = sorted((i for i, r in enumerate(results) if math.isfinite(r.fun)), key=lambda i: results[i].fun)
        kept: list[int] = []
        points: list[np.ndarray] = []
        for i in order:
            x = _pack(Hyperparameters.from_array(_unpack(results[i].x)).canonical())
            if all(np.max(np.abs(x - y)) > 0.05 for y in points):
                kept.append(i)
                points.append(x)
        return kept

    def fit_arrays(self, n: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float]) -> MGPS:
        """Fit on arrays of observed and expected counts (pairs with n = 0 are ignored when truncated).

        Raises InputError for invalid counts, fewer than ``MIN_PAIRS`` pairs or no starting point, and
        ConvergenceError only when no start gives a finite likelihood. A fit that does not converge, or whose
        optimum lies on the edge of the parameter box, is returned with ``reason_`` saying so.
        """
        t0 = time.perf_counter()
        n_f, e = _check_arrays(n, expected)
        if self.truncated:
            keep = n_f >= 1
            n_f, e = n_f[keep], e[keep]
        if len(n_f) < MIN_PAIRS:
            raise InputError(f"MGPS needs at least {MIN_PAIRS} pairs to fit 5 hyperparameters, got {len(n_f)}",
                             field="n")
        if not self.starts:
            raise InputError("MGPS needs at least one starting point", field="starts")
        n_u, e_u, w, _ = _unique_pairs(n_f, e)
        full = _prepare(n_u, e_u, w)
        rows: list[dict[str, object]] = []
        explore = self.subsample is not None and len(n_u) > self.subsample
        stage_data, gtol, stage = full, self.tol, "full"
        if explore:
            assert self.subsample is not None
            stage_data = _prepare(*_squash(n_u, e_u, w, self.subsample))
            gtol, stage = max(self.tol, self.subsample_tol), "squashed"
        results = []
        for i, start in enumerate(self.starts):
            res = (self._explore if explore else self._run)(self._clip_start(start), stage_data, gtol)
            results.append(res)
            rows.append(self._row(i, stage, start, res, stage_data))
        n_iter = sum(int(r.nit) for r in results)
        finals = list(enumerate(results))
        if explore:
            # The squashed likelihood only approximates the full one: every distinct optimum it leads to is
            # refitted on all pairs, and the full likelihood decides between them. When the starts reach more
            # than one optimum the likelihood has several maxima, whose basins on all pairs need not be those
            # on the squashed table: the start that led to each is then also run on all pairs, as it would be
            # without exploration.
            finals = []
            distinct = self._distinct(results)
            for i in distinct:
                refined = self._refine(results[i].x, stage_data, full, self.tol)
                # when the quasi-Newton refinement gives up: plain L-BFGS-B from the same point
                res = refined if refined is not None else self._run(results[i].x, full, self.tol)
                n_iter += int(res.nit)
                rows.append(self._row(i, "full", Hyperparameters.from_array(_unpack(results[i].x)), res, full))
                finals.append((i, res))
            if len(distinct) > 1:
                for i in distinct:
                    res = self._run(self._clip_start(self.starts[i]), full, self.tol)
                    n_iter += int(res.nit)
                    rows.append(self._row(i, "full", self.starts[i], res, full))
                    finals.append((i, res))
        finite = [r for _, r in finals if math.isfinite(r.fun)]
        if not finite:
            raise ConvergenceError(
                "MGPS hyperparameter fit found no finite likelihood from any of "
                f"{len(self.starts)} starting points ({'; '.join(str(r.message) for _, r in finals)})")
        best = min([r for r in finite if r.ok] or finite, key=lambda r: r.fun)
        self.hyperparameters_ = Hyperparameters.from_array(_unpack(best.x)).canonical()
        self.loglik_ = -float(best.fun) * full.total_weight
        self.converged_ = bool(best.ok)
        edges = self._edges(self.hyperparameters_)
        self.at_bound_ = bool(edges)
        if not self.converged_:
            self.reason_: str | None = (
                f"the MGPS fit did not converge from any of {len(self.starts)} starting points (best: gradient "
                f"{best.pgrad:.2g} above the tolerance {self.tol:g}; {best.message})")
        elif edges:
            self.reason_ = _degenerate(edges)
        else:
            self.reason_ = None
        self.n_iter_ = n_iter
        self.n_pairs_ = int(full.total_weight)
        self._summary = pd.DataFrame(rows)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _refine(self, x0: np.ndarray, sub: _Data, full: _Data, gtol: float,
                max_iter: int = 40) -> _Result | None:
        """Quasi-Newton steps on all pairs from an optimum of the squashed table, with that table's Hessian as
        the starting inverse-Hessian (BFGS updates after that): a handful of passes over all pairs instead of a
        cold L-BFGS-B. None when the start is on a bound or the steps stop decreasing the objective."""
        box = self._box()
        lo = np.array([b[0] for b in box])
        hi = np.array([b[1] for b in box])
        if self._at_bound(x0):
            return None
        step = 1e-4
        hess = np.zeros((5, 5))
        for i in range(5):
            d = np.zeros(5)
            d[i] = step
            gp = _objective(x0 + d, sub, self.truncated)[1]  # type: ignore[index]
            gm = _objective(x0 - d, sub, self.truncated)[1]  # type: ignore[index]
            hess[:, i] = (gp - gm) / (2 * step)
        hess = 0.5 * (hess + hess.T)
        if not np.all(np.isfinite(hess)) or np.linalg.eigvalsh(hess).min() <= 0:
            return None
        inv_h = np.linalg.inv(hess)
        x = np.array(x0, dtype=np.float64)
        f, g = _objective(x, full, self.truncated)  # type: ignore[misc]
        for it in range(max_iter):
            pg = self._projected_gradient(x, g)
            if pg <= gtol:
                return _Result(x=x, fun=f, jac=g, nit=it, success=True, pgrad=pg, ok=True,
                               message="CONVERGENCE: quasi-Newton from the squashed table's Hessian")
            direction = -inv_h @ g
            t = 1.0
            for _ in range(10):
                xn = np.clip(x + t * direction, lo, hi)
                fn, gn = _objective(xn, full, self.truncated)  # type: ignore[misc]
                if math.isfinite(fn) and fn <= f + 1e-4 * t * float(g @ direction) + 4e-16 * abs(f):
                    break
                t *= 0.5
            else:
                return None
            s_, y_ = xn - x, gn - g
            sy = float(s_ @ y_)
            if sy > 1e-300:  # BFGS update of the inverse Hessian
                rho = 1.0 / sy
                left = np.eye(5) - rho * np.outer(s_, y_)
                inv_h = left @ inv_h @ left.T + rho * np.outer(s_, s_)
            x, f, g = xn, fn, gn
        return None

    def _row(self, i: int, stage: str, start: Hyperparameters, res: _Result, data: _Data
             ) -> dict[str, object]:
        h = Hyperparameters.from_array(_unpack(res.x)).canonical()
        return {"start": i, "stage": stage, "pairs": int(data.total_weight), "points": data.n_points,
                **{f"start_{k}": v for k, v in start.to_dict().items()},
                **h.to_dict(), "loglik": -float(res.fun) * data.total_weight, "converged": res.ok,
                "gradient": res.pgrad,
                "at_bound": self._at_bound(res.x), "n_iter": int(res.nit), "message": str(res.message)}

    @property
    def summary(self) -> pd.DataFrame:
        """One row per start and stage ("squashed" exploration, "full" fits on all pairs): the start, the
        points used, the result, its log-likelihood, gradient, convergence, whether it is on a bound."""
        self._check_fitted()
        return self._summary.copy()

    def _check_fitted(self) -> None:
        if not hasattr(self, "hyperparameters_"):
            raise InputError("this MGPS is not fitted: call fit() or use MGPS.from_hyperparameters()")

    # -- scoring ------------------------------------------------------------------------------------------
    def score_arrays(self, n: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float]
                     ) -> pd.DataFrame:
        """EBGM and the posterior quantiles per pair (see :func:`ebgm_scores`); all empty (NaN) when the prior
        must not be used (``reason_``, also in ``result.attrs["ebgm_withheld"]``)."""
        self._check_fitted()
        if self.reason_ is not None:
            n_f, _ = _check_arrays(n, expected)
            cols = ["ebgm", *(_quantile_name(qv) for qv in self.quantiles)]
            withheld = pd.DataFrame({c: np.full(len(n_f), np.nan) for c in cols})
            withheld.attrs.update({QUANTILE_FAILURES: 0, EBGM_WITHHELD: self.reason_})
            return withheld
        scores = ebgm_scores(n, expected, self.hyperparameters_, self.quantiles)
        scores.attrs[EBGM_WITHHELD] = None
        return scores

    def score(self, counts: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``counts`` with ``ebgm``, ``eb05`` and ``eb95`` added (any subset of pairs); ``attrs`` of
        the copy carry ``quantiles_not_converged`` and ``ebgm_withheld`` (None, or why the columns are empty)."""
        for col in ("n", "expected"):
            if col not in counts.columns:
                raise InputError(f"count table lacks column {col!r}", field=col)
        scores = self.score_arrays(counts["n"].to_numpy(), counts["expected"].to_numpy())
        out = counts.copy(deep=False)  # new columns only: the caller's frame is left as it was
        for col in scores.columns:
            out[col] = scores[col].to_numpy()
        out.attrs.update(scores.attrs)
        return out
