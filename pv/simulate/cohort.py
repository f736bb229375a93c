"""Synthetic CAR-T cohorts with realistic follow-up, for the demo and tests (``pv simulate cohort``).

Each patient gets a product (and its disease), an infusion date spread uniformly over 2018-01-01 .. 2023-06-30
(staggered entry), administrative censoring at the data cut-off 2024-12-31 and a small loss to follow-up.
Latent times (independent, from infusion) drive the outcomes; what is observed is what happens before death
and censoring:

- death: Weibull (shape 0.8), about 50% dead by 5 years (relapse-driven mortality): the large competing risk;
- secondary malignancies, constant cause-specific hazards chosen so that with death competing the 5-year
  cumulative incidence is about 15% for other (solid and skin) malignancies, about 3% for myeloid (MDS/AML)
  and about 0.3% for T-cell malignancies; older age raises the solid-tumour hazard (HR 1.03 per year);
- CRS and ICANS early (days 1-14) with product-specific frequencies; HBV reactivation only in patients with
  chronic or resolved HBV infection (about 15% of those, months 1-12).

The output is one row per patient in the layout of config/mappings/cohort.yaml. Same seed, same cohort.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

START = dt.date(2018, 1, 1)
LAST_INFUSION = dt.date(2023, 6, 30)
CUTOFF = dt.date(2024, 12, 31)
DAYS_PER_YEAR = 365.25

# product: (disease, share, P(CRS), P(ICANS))
PRODUCTS = {
    "axicabtagene ciloleucel": ("LBCL", 0.30, 0.90, 0.60),
    "tisagenlecleucel": ("LBCL", 0.20, 0.55, 0.20),
    "lisocabtagene maraleucel": ("LBCL", 0.15, 0.45, 0.30),
    "brexucabtagene autoleucel": ("MCL", 0.07, 0.90, 0.60),
    "idecabtagene vicleucel": ("MM", 0.13, 0.85, 0.18),
    "ciltacabtagene autoleucel": ("MM", 0.15, 0.95, 0.21),
}
# Cause-specific hazards per year, tuned so that the 5-year CIFs with death competing match the figures above.
RATE_OTHER = 0.049
RATE_MYELOID = 0.0085
RATE_T_CELL = 0.00085
AGE_HR_OTHER = 1.03
DEATH_SHAPE = 0.8
DEATH_SCALE_YEARS = 6.2  # S(5y) = exp(-(5/6.2)^0.8) ~ 0.45
DROPOUT_RATE = 0.03  # per year


def _date_plus(base: np.ndarray, years: np.ndarray) -> list[dt.date | None]:
    out: list[dt.date | None] = []
    for b, y in zip(base, years, strict=True):
        out.append(None if not np.isfinite(y) else b + dt.timedelta(days=int(np.floor(y * DAYS_PER_YEAR))))
    return out


def simulate_cohort(patients: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic cohort of ``patients`` patients (columns of config/mappings/cohort.yaml)."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    rng = np.random.default_rng(seed)
    n = patients
    names = list(PRODUCTS)
    shares = np.array([PRODUCTS[p][1] for p in names])
    prod_idx = rng.choice(len(names), size=n, p=shares / shares.sum())
    product = np.array(names, dtype=object)[prod_idx]
    disease = np.array([PRODUCTS[p][0] for p in product], dtype=object)
    span = (LAST_INFUSION - START).days
    infusion = np.array([START + dt.timedelta(days=int(d)) for d in rng.integers(0, span + 1, size=n)])
    age = np.clip(np.round(rng.normal(61, 11, size=n)), 18, 85)
    sex = np.where(rng.random(n) < 0.62, "M", "F")
    hbv = rng.choice(
        np.array(["negative", "resolved", "chronic"], dtype=object), size=n, p=[0.86, 0.11, 0.03]
    )
    prior_lines = rng.integers(2, 7, size=n)

    admin = np.array([(CUTOFF - d).days / DAYS_PER_YEAR for d in infusion])
    dropout = rng.exponential(1 / DROPOUT_RATE, size=n)
    censor = np.minimum(admin, dropout)
    death = DEATH_SCALE_YEARS * rng.weibull(DEATH_SHAPE, size=n)
    end = np.minimum(censor, death)
    died = death <= censor

    rate_other = RATE_OTHER * AGE_HR_OTHER ** (age - 61)
    t_other = rng.exponential(1 / rate_other)
    t_myeloid = rng.exponential(1 / RATE_MYELOID, size=n)
    t_tcell = rng.exponential(1 / RATE_T_CELL, size=n)
    p_crs = np.array([PRODUCTS[p][2] for p in product])
    p_icans = np.array([PRODUCTS[p][3] for p in product])
    t_crs = np.where(rng.random(n) < p_crs, rng.gamma(2.0, 1.5, size=n) / DAYS_PER_YEAR, np.inf)
    t_icans = np.where(rng.random(n) < p_icans, (3 + rng.gamma(2.0, 2.0, size=n)) / DAYS_PER_YEAR, np.inf)
    at_risk_hbv = hbv != "negative"
    t_hbv = np.where(at_risk_hbv & (rng.random(n) < 0.15), rng.uniform(1, 12, size=n) / 12, np.inf)

    def observed(t: np.ndarray) -> np.ndarray:
        return np.where(t <= end, t, np.nan)

    frame = pd.DataFrame(
        {
            "patient_id": [f"SIM{seed:04d}-{i + 1:06d}" for i in range(n)],
            "product": product,
            "disease": disease,
            "infusion_date": infusion,
            "age": age.astype(int),
            "sex": sex,
            "hbv_status": hbv,
            "prior_lines": prior_lines,
            "death_date": _date_plus(infusion, np.where(died, death, np.nan)),
            "last_followup_date": _date_plus(infusion, end),
            "crs_date": _date_plus(infusion, observed(t_crs)),
            "icans_date": _date_plus(infusion, observed(t_icans)),
            "hbv_reactivation_date": _date_plus(infusion, observed(t_hbv)),
            "t_cell_malignancy_date": _date_plus(infusion, observed(t_tcell)),
            "myeloid_malignancy_date": _date_plus(infusion, observed(t_myeloid)),
            "other_malignancy_date": _date_plus(infusion, observed(t_other)),
        }
    )
    return frame
