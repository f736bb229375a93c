"""Synthetic run results for the signal-registry tests."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pv.signals.rules import MEASURES, RuleSet


def row(product: str, event: str, level: str = "pt", *, stratified: bool = False, **measures: Any) -> dict:
    out: dict[str, Any] = {"product": product, "event": event, "level": level, "stratified": stratified}
    for m in MEASURES:
        out[m] = float(measures.get(m, math.nan))
    return out


def strong_row(product: str, event: str, level: str = "pt", *, eb05: float = 2.5, n: int = 6,
               serious: int = 4, deaths: int = 1, **extra: Any) -> dict:
    """A pair meeting the default rules (EB05 >= 2, n >= 3) with consistent PRR/ROR/IC figures."""
    return row(product, event, level, n=n, expected=n / (eb05 * 1.5), prr=eb05 * 1.4, prr_chi2=12.0,
               ror=eb05 * 1.5, ror_lower=eb05 * 0.8, ror_upper=eb05 * 3, ic=math.log2(eb05 * 1.3),
               ic025=math.log2(eb05) - 0.2, ic975=math.log2(eb05) + 1, ebgm=eb05 * 1.3, eb05=eb05,
               eb95=eb05 * 2, n_serious=serious, n_deaths=deaths, **extra)


def weak_row(product: str, event: str, level: str = "pt", *, n: int = 2) -> dict:
    """A pair below every criterion."""
    return row(product, event, level, n=n, expected=n, prr=1.0, prr_chi2=0.1, ror=1.0, ror_lower=0.4,
               ror_upper=2.0, ic=0.0, ic025=-1.5, ic975=1.0, ebgm=1.0, eb05=0.5, eb95=2.0, n_serious=1,
               n_deaths=0)


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def any_profile_rules(persistence: int = 2) -> RuleSet:
    """The shipped rules with the `any` threshold profile (EB05, Evans, ROR or IC) and a finding opening after
    ``persistence`` consecutive runs: the registry's own tests (opening, escalation, withdrawal) were written
    against them; the profiles are tested in test_rules, the shipped defaults in test_operating_characteristics."""
    import yaml

    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
    data["detection"]["profile"] = "any"
    data["opening"]["persistence"] = persistence
    return RuleSet.from_mapping(data)
