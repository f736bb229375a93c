"""Fine-Gray proportional subdistribution hazards regression, as R's ``cmprsk::crr`` (time-fixed covariates).

The subdistribution hazard of the cause of interest is ``h_1(t | x) = h_10(t) exp(x' beta)``. Subjects who
fail from a competing cause stay in the risk set after their failure with inverse-probability-of-censoring
weights: at a failure time ``t`` of the cause of interest, subject ``i`` has weight

    w_i(t) = 1                          if T_i >= t
           = G(t-) / G(T_i-)            if T_i < t and i failed from a competing cause
           = 0                          otherwise (censored or failed from the cause before t)

with ``G`` the Kaplan-Meier estimate of the censoring distribution (left limits; one censoring group). The
estimate maximises the weighted partial likelihood (Breslow ties)

    l(beta) = sum_{cause failures i} [x_i' beta - log sum_j w_j(T_i) exp(x_j' beta)]

by Newton-Raphson with step halving (cmprsk's algorithm). The variance is Fine & Gray's sandwich
``I^-1 (sum_i (eta_i + psi_i)(eta_i + psi_i)') I^-1``, where ``eta_i`` is subject ``i``'s score residual and
``psi_i`` the correction for estimating ``G`` (crr's ``crrvv``), computed here in closed vectorised form.

Covariates that have no finite, unique estimate are refused before or during the fit, naming them (see
:func:`check_design` and :class:`FineGray`): a singular information matrix would otherwise give an arbitrary
hazard ratio with a meaningless standard error.

Reference: Fine JP, Gray RJ (1999) A proportional hazards model for the subdistribution of a competing risk.
J Am Stat Assoc 94:496-509.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pv.errors import ConvergenceError, InputError
from pv.stats.checks import as_code, event_codes, validate_time_event

_EPS = np.finfo(float).eps


def censoring_survival_left(time: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Kaplan-Meier of the censoring distribution just before each time, G(T_i-), evaluated as crr does.

    crr evaluates survfit's step function at ``T_i (1 - 100 eps)``: the left limit for ``T_i > 0`` and, for
    ``T_i = 0``, the value at 0 (censorings at 0 included). Reproduced here for exact agreement.
    """
    uniq, inverse = np.unique(time, return_inverse=True)
    n_obs = np.bincount(inverse, minlength=len(uniq)).astype(float)
    n_cens = np.bincount(inverse[censored], minlength=len(uniq)).astype(float)
    at_risk = len(time) - np.concatenate(([0.0], np.cumsum(n_obs)[:-1]))
    g = np.cumprod(1.0 - n_cens / at_risk)
    idx = np.searchsorted(uniq, time * (1 - 100 * _EPS), side="right") - 1
    return np.where(idx >= 0, g[np.clip(idx, 0, None)], 1.0)


class _Design:
    """Sorted data and the weight matrix W (distinct cause-failure times x subjects)."""

    def __init__(self, t: np.ndarray, status: np.ndarray, x: np.ndarray) -> None:
        order = np.argsort(t, kind="stable")
        self.t = t[order]
        self.status = status[order]  # 1 cause of interest, 2 competing, 0 censored
        self.x = x[order]
        self.order = order
        self.g_left = censoring_survival_left(self.t, self.status == 0)
        fail = self.status == 1
        self.fail_times, self.d = np.unique(self.t[fail], return_counts=True)
        self.d = self.d.astype(float)
        # G(t-) at each distinct failure time (same for all tied rows)
        first = np.searchsorted(self.t, self.fail_times, side="left")
        self.g_fail = self.g_left[first]
        at_risk = self.t[None, :] >= self.fail_times[:, None]
        competing_before = (self.status[None, :] == 2) & ~at_risk
        self.w = np.where(at_risk, 1.0, 0.0)
        ratio = self.g_fail[:, None] / np.where(self.g_left > 0, self.g_left, 1.0)[None, :]
        self.w = np.where(competing_before, ratio, self.w)
        self.sum_x_fail = self.x[fail].sum(axis=0)

    def moments(self, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        eta = self.x @ beta
        r = np.exp(eta)
        wr = self.w * r[None, :]
        s0 = wr.sum(axis=1)
        s1 = wr @ self.x
        return eta, r, s0, s1

    def loglik(self, beta: np.ndarray) -> float:
        eta, _, s0, _ = self.moments(beta)
        return float(eta[self.status == 1].sum() - (self.d * np.log(s0)).sum())

    def loglik_score_info(self, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta, r, s0, s1 = self.moments(beta)
        ll = float(eta[self.status == 1].sum() - (self.d * np.log(s0)).sum())
        xbar = s1 / s0[:, None]
        score = self.sum_x_fail - (self.d[:, None] * xbar).sum(axis=0)
        wr = self.w * r[None, :]
        # sum_j d_j (S2_j/S0_j - xbar_j xbar_j')
        subject_w = (self.d / s0) @ wr
        s2_over = self.x.T @ (subject_w[:, None] * self.x)
        info = s2_over - np.einsum("j,ja,jb->ab", self.d, xbar, xbar)
        return ll, score, info

    def sandwich_middle(self, beta: np.ndarray) -> np.ndarray:
        """sum_i (eta_i + psi_i)(eta_i + psi_i)' as crr's crrvv (one censoring group)."""
        eta_lin, r, s0, s1 = self.moments(beta)
        x, t, status = self.x, self.t, self.status
        n = len(t)
        xbar = s1 / s0[:, None]
        # eta_i: dN part minus the compensator
        a = (self.d / s0)[:, None] * self.w * r[None, :]  # J x n
        resid = -(a.sum(axis=0)[:, None] * x - a.T @ xbar)
        fail = status == 1
        fidx = np.searchsorted(self.fail_times, t[fail])
        resid[fail] += x[fail] - xbar[fidx]
        # psi_i: q(u) at censoring times u
        comp = status == 2
        ginv = np.where(comp, r / np.where(self.g_left > 0, self.g_left, 1.0), 0.0)
        c0_cum = np.concatenate(([0.0], np.cumsum(ginv)))
        c1_cum = np.vstack((np.zeros((1, x.shape[1])), np.cumsum(ginv[:, None] * x, axis=0)))
        first_at = np.searchsorted(t, t, side="left")  # rows with time < t_i are 0..first_at-1
        c0 = c0_cum[first_at]
        c1 = c1_cum[first_at]
        coef = self.d * self.g_fail / s0
        a_rev = np.concatenate((np.cumsum(coef[::-1])[::-1], [0.0]))
        b_rev = np.vstack((np.cumsum((coef[:, None] * xbar)[::-1], axis=0)[::-1], np.zeros((1, x.shape[1]))))
        jpos = np.searchsorted(self.fail_times, t, side="left")  # failure times >= t_i
        q = c1 * a_rev[jpos][:, None] - c0[:, None] * b_rev[jpos]
        at_risk = n - first_at  # Y(t_i): subjects with time >= t_i
        cens = status == 0
        contrib = np.where(cens[:, None], q / at_risk[:, None] ** 2, 0.0)
        cum_contrib = np.cumsum(contrib, axis=0)
        last_at = np.searchsorted(t, t, side="right") - 1
        psi = -cum_contrib[last_at]
        psi[cens] += q[cens] / at_risk[cens][:, None]
        total = resid + psi
        return total.T @ total


# Smallest eigenvalue of a correlation-scaled matrix (the design's, the information's at beta = 0, or the
# information at beta scaled by that at 0) below which it is taken as singular: two standardised covariates
# closer than 1e-4 apart, or an estimate going to infinity (the information left is about exp(-|beta|)).
_SINGULAR = 1e-8


def _names(names: list[str], which: np.ndarray | list[int]) -> str:
    return ", ".join(names[i] for i in which)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _relation(v: np.ndarray, mean: np.ndarray, sd: np.ndarray, names: list[str]) -> str:
    """The linear relation ``sum_j v_j (x_j - mean_j) / sd_j = 0`` solved for its largest term, in the
    covariates' own units, e.g. ``x3 = x1 + 2 * x2 - 1``."""
    k = int(np.argmax(np.abs(v)))
    coef = -(v / v[k]) * (sd[k] / sd)
    used = [j for j in range(len(v)) if j != k and abs(v[j]) > 1e-3 * abs(v[k])]
    const = mean[k] - sum(coef[j] * mean[j] for j in used)
    terms = [names[j] if abs(coef[j] - 1) < 5e-5 else f"-{names[j]}" if abs(coef[j] + 1) < 5e-5
             else f"{_number(coef[j])} * {names[j]}" for j in used]
    if abs(const) > 1e-8 * (abs(mean[k]) + sd[k]) or not terms:
        terms.append(_number(const))
    return f"{names[k]} = " + " + ".join(terms).replace("+ -", "- ")


def check_design(x: np.ndarray, names: list[str]) -> None:
    """Refuse a design without a hazard ratio for every column: constant columns, and columns that are
    (numerically) linear combinations of others, naming them (``InputError`` on ``covariates``)."""
    constant = np.flatnonzero(np.ptp(x, axis=0) == 0) if len(x) else np.arange(x.shape[1])
    if len(constant):
        values = ", ".join(_number(x[0, j]) for j in constant) if len(x) else "no value"
        plural = len(constant) > 1
        raise InputError(f"covariate{'s' if plural else ''} {_names(names, constant)} "
                         f"{'are' if plural else 'is'} constant ({values} in every row used): "
                         f"{'they have' if plural else 'it has'} no hazard ratio; leave "
                         f"{'them' if plural else 'it'} out", field="covariates")
    mean, sd = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / sd
    eig, vec = np.linalg.eigh(z.T @ z / len(x))  # the correlation matrix of the covariates
    null = vec[:, eig < _SINGULAR].T
    if len(null):
        involved = np.flatnonzero(np.any(np.abs(null) > 1e-3 * np.abs(null).max(axis=1, keepdims=True), axis=0))
        raise InputError(f"covariates {_names(names, involved)} are collinear: "
                         f"{_relation(null[0], mean, sd, names)}; a hazard ratio for each cannot be estimated, "
                         "leave one of them out", field="covariates")


class FineGray:
    """Fine-Gray subdistribution hazards regression (cmprsk::crr's estimate and sandwich variance).

    Parameters: ``event_of_interest`` (the cause modelled), ``censored`` (the event value meaning censored;
    any other value is a competing cause; codes are compared as the type of the event values, see
    :func:`pv.stats.checks.event_codes`), ``alpha`` (for the HR interval), ``tol`` (convergence: max |score|
    * max(|beta|, 1) < tol * max(|loglik|, 1), crr's rule), ``max_iter``.

    After :meth:`fit`: ``coef_``, ``se_``, ``var_`` (sandwich), ``information_``, ``loglik_``,
    ``loglik_null_``, ``converged_``, ``n_``, ``n_iter_``, ``covariates_`` and the ``summary`` DataFrame
    (covariate, coef, se, hr, hr_lower, hr_upper, z, p_value). Rows with missing covariates are dropped (as
    crr's na.omit), counted in ``n_missing_``.

    Where crr would return an arbitrary hazard ratio (or fail), :meth:`fit` raises ``InputError`` on
    ``covariates`` naming the covariates at fault: a column constant among the rows used, columns that are
    (numerically) linear combinations of others (with the relation, e.g. ``x3 = x1 + 2 * x2 - 1``), a column
    without information on the event (one value in every risk set of the likelihood), and an estimate that
    goes to infinity (monotone likelihood, e.g. every event of interest in one level of a covariate).
    """

    def __init__(self, event_of_interest: Any = 1, censored: Any = 0, alpha: float = 0.05, tol: float = 1e-10,
                 max_iter: int = 50) -> None:
        self.event_of_interest = event_of_interest
        self.censored = censored
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, time: Any, event: Any, covariates: pd.DataFrame | np.ndarray,
            names: list[str] | None = None) -> FineGray:
        t, e = validate_time_event(time, event)
        e = event_codes(e)
        target = as_code(self.event_of_interest, e, "event_of_interest")
        censored = as_code(self.censored, e, "censored")
        if isinstance(covariates, pd.DataFrame):
            names = list(covariates.columns) if names is None else names
            try:
                x = covariates.to_numpy(dtype=float)
            except (TypeError, ValueError) as exc:
                raise InputError(f"covariates must be numeric: {exc}", field="covariates") from exc
        else:
            x = np.asarray(covariates, dtype=float)
            if x.ndim == 1:
                x = x[:, None]
            names = names or [f"x{i + 1}" for i in range(x.shape[1])]
        if x.shape[0] != len(t):
            raise InputError(f"covariates have {x.shape[0]} rows but time has {len(t)}", field="covariates")
        if len(names) != x.shape[1]:
            raise InputError("one name per covariate column is needed", field="covariates")
        if x.shape[1] == 0:
            raise InputError("no covariate to fit", field="covariates")
        keep = np.isfinite(x).all(axis=1)
        self.n_missing_ = int((~keep).sum())
        t, e, x = t[keep], e[keep], x[keep]
        status = np.where(e == censored, 0, np.where(e == target, 1, 2))
        if not (status == 1).any():
            among = (f" among the {len(t)} rows with every covariate ({self.n_missing_} dropped for a missing "
                     "covariate)" if self.n_missing_ else "")
            raise InputError(f"no events of type {self.event_of_interest!r}{among}: "
                             "the Fine-Gray model cannot be fitted", field="event")
        self.covariates_ = list(names)
        self.n_ = len(t)
        check_design(x, self.covariates_)
        design = _Design(t, status, x)
        p = x.shape[1]
        at_zero = design.loglik_score_info(np.zeros(p))
        info0 = at_zero[2]
        self._check_information(info0, x, int((status == 1).sum()), target)
        beta = np.zeros(p)
        converged = False
        it = 0
        for it in range(self.max_iter + 1):  # noqa: B007 - it is reported
            ll, score, info = design.loglik_score_info(beta) if it else at_zero
            if it:
                self._check_divergence(info, info0)
            if np.max(np.abs(score) * np.maximum(np.abs(beta), 1)) < max(abs(ll), 1) * self.tol:
                converged = True
                break
            if it == self.max_iter:
                break
            try:
                step = np.linalg.solve(info, score)
            except np.linalg.LinAlgError as exc:
                raise ConvergenceError(f"Fine-Gray information matrix is singular: {exc}") from exc
            # cmprsk's backtracking on f = -loglik: accept when f(new) <= f(old) - 1e-4 * step'score
            for _ in range(21):
                new = beta + step
                ll_new = design.loglik(new)
                if np.isfinite(ll_new) and -ll_new <= -ll - 1e-4 * float(step @ score):
                    break
                step = step * 0.5
            else:
                raise ConvergenceError("Fine-Gray line search failed (step halved 20 times)")
            beta = new
        if not converged:
            raise ConvergenceError(f"Fine-Gray regression did not converge in {self.max_iter} iterations")
        self.n_iter_ = it  # ll, score and info are those at beta, computed in the last iteration
        self.coef_ = beta
        self.loglik_ = ll
        self.loglik_null_ = at_zero[0]
        self.information_ = info
        inv = np.linalg.inv(info)
        self.var_ = inv @ design.sandwich_middle(beta) @ inv.T
        self.se_ = np.sqrt(np.diag(self.var_))
        self.converged_ = converged
        return self

    def _check_information(self, info0: np.ndarray, x: np.ndarray, n_events: int, target: Any) -> None:
        """Refuse covariates on which the likelihood has no information although their column varies: constant
        (or collinear) within the risk set of every event of interest."""
        names = self.covariates_
        diag = np.diag(info0)
        none = np.flatnonzero(diag <= _SINGULAR * n_events * x.var(axis=0))
        if len(none):
            plural = len(none) > 1
            raise InputError(
                f"covariate{'s' if plural else ''} {_names(names, none)} carr{'y' if plural else 'ies'} no "
                f"information on event {target!r}: {'they take' if plural else 'it takes'} one value among the "
                "subjects at risk at every time of an event of interest (it varies only among subjects who left "
                f"before); leave {'them' if plural else 'it'} out", field="covariates")
        d = np.sqrt(diag)
        eig, vec = np.linalg.eigh(info0 / np.outer(d, d))
        if eig[0] < _SINGULAR:
            involved = np.flatnonzero(np.abs(vec[:, 0]) > 1e-3 * np.abs(vec[:, 0]).max())
            raise InputError(f"covariates {_names(names, involved)} are collinear among the subjects at risk at "
                             "the times of events of interest (they differ only among subjects who left before); "
                             "leave one of them out", field="covariates")

    def _check_divergence(self, info: np.ndarray, info0: np.ndarray) -> None:
        """Refuse an estimate going to infinity (monotone likelihood): the information left in some direction,
        relative to that at beta = 0, vanishes as the coefficient grows."""
        d = np.sqrt(np.diag(info0))
        eig, vec = np.linalg.eigh(info / np.outer(d, d))
        if eig[0] >= _SINGULAR:
            return
        involved = np.flatnonzero(np.abs(vec[:, 0]) > 0.1 * np.abs(vec[:, 0]).max())
        plural = len(involved) > 1
        raise InputError(
            f"the Fine-Gray estimate{'s' if plural else ''} for {_names(self.covariates_, involved)} "
            f"go{'' if plural else 'es'} to infinity (monotone likelihood, e.g. every event of interest, or none, in "
            f"one level of the covariate): no finite hazard ratio fits; leave {'them' if plural else 'it'} out or "
            f"regroup {'them' if plural else 'it'}", field="covariates")

    @property
    def summary(self) -> pd.DataFrame:
        if not hasattr(self, "coef_"):
            raise InputError("FineGray is not fitted: call fit() first")
        z = self.coef_ / self.se_
        q = sps.norm.ppf(1 - self.alpha / 2)
        return pd.DataFrame({
            "covariate": self.covariates_,
            "coef": self.coef_,
            "se": self.se_,
            "hr": np.exp(self.coef_),
            "hr_lower": np.exp(self.coef_ - q * self.se_),
            "hr_upper": np.exp(self.coef_ + q * self.se_),
            "z": z,
            "p_value": 2 * sps.norm.sf(np.abs(z)),
        })
