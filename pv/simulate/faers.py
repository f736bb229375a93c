"""Synthetic FAERS quarterly ASCII extracts with a realistic background and known injected signals.

``write_quarters(out_dir, quarters, reports_per_quarter, seed)`` writes one ``faers_ascii_yyyyqN.zip`` per
quarter, laid out like the current FAERS extracts (``ASCII/DEMOyyQN.txt``, DRUG, REAC, OUTC, RPSR, THER,
INDI with the real column headers, ``$``-separated, UTF-8; ``Deleted/DELETEyyQN.txt`` with caseids to drop,
one per line), plus the truth file (``truth.csv`` and ``truth.json``, see :mod:`pv.simulate.truth`).
docs/simulation.md describes the model.

The model, in short:

* a *universe* (fixed for the seed): the CAR-T products of config/products.yaml and a few hundred background
  products (real common ones and invented INNs built from class stems); each product has a reaction profile,
  a lognormally perturbed preference over a few hundred PTs (class-typical PTs boosted; CAR-T dominated by
  CRS and ICANS), indications, a route and an onset-delay scale;
* per report: a primary suspect (CAR-T with probability ``cart_share``), 0-3 further drugs (SS/C/I; CAR-T
  reports carry lymphodepletion and CRS-management concomitants), 1-5 PTs drawn from the drugs' profiles,
  the scenario's *tracked events* drawn independently at their controlled rates, demographics, outcomes,
  report sources, therapy dates (event date = therapy start + a product-event-specific delay), indications;
* follow-up versions (caseversion 2 and 3, ``i_f_code`` F, changed drugs/reactions) in the same or later
  quarters, and deletions listed in later DELETE files.

Everything is vectorised with numpy/pandas and deterministic for a seed: quarter ``Q`` draws from
``np.random.default_rng([seed, Q.index])`` and the universe from ``np.random.default_rng([seed, 0])``.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pv.errors import ConfigError
from pv.normalise import EventGroups, ProductDictionary, default_event_groups, default_products, normalise_pt
from pv.periods import Quarter, parse_quarters
from pv.simulate import vocab
from pv.simulate.truth import Scenario, TrackedEvent, Truth, default_scenario

DEMO_COLUMNS = [
    "primaryid",
    "caseid",
    "caseversion",
    "i_f_code",
    "event_dt",
    "mfr_dt",
    "init_fda_dt",
    "fda_dt",
    "rept_cod",
    "auth_num",
    "mfr_num",
    "mfr_sndr",
    "lit_ref",
    "age",
    "age_cod",
    "age_grp",
    "sex",
    "e_sub",
    "wt",
    "wt_cod",
    "rept_dt",
    "to_mfr",
    "occp_cod",
    "reporter_country",
    "occr_country",
]
DRUG_COLUMNS = [
    "primaryid",
    "caseid",
    "drug_seq",
    "role_cod",
    "drugname",
    "prod_ai",
    "val_vbm",
    "route",
    "dose_vbm",
    "cum_dose_chr",
    "cum_dose_unit",
    "dechal",
    "rechal",
    "lot_num",
    "exp_dt",
    "nda_num",
    "dose_amt",
    "dose_unit",
    "dose_form",
    "dose_freq",
]
REAC_COLUMNS = ["primaryid", "caseid", "pt", "drug_rec_act"]
OUTC_COLUMNS = ["primaryid", "caseid", "outc_cod"]
RPSR_COLUMNS = ["primaryid", "caseid", "rpsr_cod"]
THER_COLUMNS = ["primaryid", "caseid", "dsg_drug_seq", "start_dt", "end_dt", "dur", "dur_cod"]
INDI_COLUMNS = ["primaryid", "caseid", "indi_drug_seq", "indi_pt"]
FILE_COLUMNS = {
    "DEMO": DEMO_COLUMNS,
    "DRUG": DRUG_COLUMNS,
    "REAC": REAC_COLUMNS,
    "OUTC": OUTC_COLUMNS,
    "RPSR": RPSR_COLUMNS,
    "THER": THER_COLUMNS,
    "INDI": INDI_COLUMNS,
}
ROLE_CODES = np.array(["PS", "SS", "C", "I"], dtype=object)
OUTC_CODES = np.array(["DE", "LT", "HO", "DS", "CA", "RI", "OT"], dtype=object)
_EPOCH = np.datetime64("1970-01-01", "D")
_NA = np.array(None, dtype=object)  # a missing field in np.where
UNKNOWN_INDICATION = "Product used for unknown indication"


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the generator; the defaults give the demo data set (docs/simulation.md)."""

    cart_share: float = 0.20  # share of initial reports whose primary suspect is a CAR-T product
    n_background_products: int = 400
    followup_rate: float = 0.10  # share of initial reports that get a caseversion 2
    second_followup_rate: float = 0.25  # share of version-2 cases that get a version 3
    deletion_rate: float = 0.004  # share of initial reports deleted in a later quarter's DELETE file
    phantom_deletions: int = 3  # caseids in each DELETE file that match no generated case (as in real files)
    compresslevel: int = 1
    scenario: Scenario = field(default_factory=default_scenario)


def zip_name(quarter: Quarter) -> str:
    return f"faers_ascii_{quarter.year}q{quarter.q}.zip"


# ----------------------------------------------------------------------------------------------------
# The universe: products, PT vocabulary, reaction profiles


def _normalised(w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return w / total if total > 0 else w


class Universe:
    """Products and their reaction profiles, fixed for a seed. Index space: CAR-T products first."""

    def __init__(self, seed: int, config: SimulationConfig, products: ProductDictionary, groups: EventGroups) -> None:
        rng = np.random.default_rng([seed, 0])
        self.config = config
        scenario = config.scenario
        cart = [p for p, spec in products.products.items() if spec.get("class", "car_t") == "car_t"]
        if not cart:
            raise ConfigError("products.yaml defines no CAR-T products to simulate")
        self.cart_names = cart
        self.n_cart = len(cart)

        # --- background products: real, then invented; scenario products that are neither are invented here
        real = list(vocab.REAL_PRODUCTS)
        real_names = {r[0] for r in real}
        wanted = [p.product for p in scenario.pairs if p.product not in products.products]
        bg: list[tuple[str, str, str]] = list(real)
        taken = set(real_names)
        for name in wanted:
            if name not in taken:
                bg.append((name, self._class_of(name, rng), ""))
                taken.add(name)
        classes = list(vocab.DRUG_CLASSES)
        while len(bg) < max(config.n_background_products, len(bg)):
            cls = classes[int(rng.integers(len(classes)))]
            stems = vocab.DRUG_CLASSES[cls]["stem"]
            name = (
                vocab.NAME_PREFIXES[int(rng.integers(len(vocab.NAME_PREFIXES)))]
                + vocab.NAME_MIDDLES[int(rng.integers(len(vocab.NAME_MIDDLES)))]
                + stems[int(rng.integers(len(stems)))]
            ).upper()
            if name in taken or products.match(name) is not None:
                continue
            taken.add(name)
            bg.append((name, cls, ""))
        self.names = np.array(cart + [b[0] for b in bg], dtype=object)
        self.classes = ["car_t"] * self.n_cart + [b[1] for b in bg]
        brands = [""] * self.n_cart + [b[2] for b in bg]
        n_prod = len(self.names)
        self.n_products = n_prod
        self.index = {str(n): i for i, n in enumerate(self.names)}
        for p in scenario.pairs:
            if p.product not in self.index:
                raise ConfigError(f"scenario product {p.product!r} is not a simulated product")
        self.is_cart = np.arange(n_prod) < self.n_cart

        # --- tracked events of the scenario
        display_order = {pt: i for i, pt in enumerate(groups.display)}
        tracked: list[TrackedEvent] = []
        for event, (level, rate) in scenario.events.items():
            if level == "group":
                if event not in groups.groups:
                    raise ConfigError(f"scenario event group {event!r} is not in event_groups.yaml")
                keys = sorted(groups.groups[event], key=lambda k: display_order.get(k, len(display_order)))
                pts = tuple(groups.display.get(k, k) for k in keys)
                weights = _normalised(1.0 / np.arange(1, len(pts) + 1))
            elif level == "pt":
                pts, weights = (event,), np.ones(1)
            else:
                raise ConfigError(f"scenario event {event!r}: level must be 'pt' or 'group'")
            tracked.append(TrackedEvent(event, level, float(rate), pts, tuple(float(w) for w in weights)))
        self.tracked = tracked
        seen: dict[str, str] = {}
        for t in tracked:
            for pt in t.pts:
                if normalise_pt(pt) in seen:
                    raise ConfigError(f"PT {pt!r} belongs to two tracked events ({seen[normalise_pt(pt)]}, {t.event})")
                seen[normalise_pt(pt)] = t.event

        # --- PT vocabulary
        vocab_list: list[str] = []
        known: set[str] = set()

        def add(pt: str) -> None:
            key = normalise_pt(pt)
            if key not in known:
                known.add(key)
                vocab_list.append(pt)

        for pt in vocab.COMMON_PTS:
            add(pt)
        n_common = len(vocab_list)
        for spec in vocab.DRUG_CLASSES.values():
            for pt in spec["pts"]:
                add(pt)
        for pt in [*vocab.CART_PROFILE, *vocab.BISPECIFIC_PROFILE]:
            add(pt)
        for extra in [*vocab.CART_TARGET_EXTRA.values(), *vocab.CART_PRODUCT_EXTRA.values()]:
            for pt in extra:
                add(pt)
        domain = list(groups.display.values())
        for pt in domain:
            add(pt)
        for t in tracked:
            for pt in t.pts:
                add(pt)
        self.pts = np.array(vocab_list, dtype=object)
        self.pt_index = {normalise_pt(pt): i for i, pt in enumerate(vocab_list)}
        n_pt = len(vocab_list)
        self.n_pts = n_pt
        tracked_cols = np.array([self.pt_index[normalise_pt(pt)] for t in tracked for pt in t.pts], dtype=np.int64)
        self.tracked_pt_ids = [np.array([self.pt_index[normalise_pt(pt)] for pt in t.pts]) for t in tracked]
        self.tracked_mask = np.zeros(n_pt, dtype=bool)
        self.tracked_mask[tracked_cols] = True

        base = np.full(n_pt, 0.0005)
        base[:n_common] = 0.95 * _normalised(1.0 / (np.arange(n_common) + 8.0))
        for pt in domain:
            base[self.pt_index[normalise_pt(pt)]] = vocab.DOMAIN_BACKGROUND.get(pt, vocab.DOMAIN_DEFAULT)

        def vec(weights: dict[str, float]) -> np.ndarray:
            out = np.zeros(n_pt)
            for pt, w in weights.items():
                out[self.pt_index[normalise_pt(pt)]] += w
            return np.clip(out, 0, None)

        # --- reaction profiles (rows: products, columns: PTs)
        profiles = np.empty((n_prod, n_pt))
        for i in range(n_prod):
            generic = base * rng.lognormal(0.0, 0.8, n_pt)
            cls = self.classes[i]
            if cls == "car_t":
                product = cart[i]
                target = str(products.products[product].get("target", ""))
                weights_t = dict(vocab.CART_PROFILE)
                for extra in (
                    vocab.CART_TARGET_EXTRA.get(target, {}),
                    vocab.CART_PRODUCT_EXTRA.get(product, {}),
                ):
                    for pt, w in extra.items():
                        weights_t[pt] = weights_t.get(pt, 0.0) + w
                own = vec(weights_t) * rng.lognormal(0.0, 0.2, n_pt)
                row = 0.85 * _normalised(own) + 0.15 * _normalised(generic)
            elif cls == "bispecific":
                row = 0.6 * _normalised(vec(vocab.BISPECIFIC_PROFILE)) + 0.4 * _normalised(generic)
            else:
                row = _normalised(generic)
                for pt in vocab.DRUG_CLASSES[cls]["pts"]:
                    row[self.pt_index[normalise_pt(pt)]] += rng.lognormal(np.log(0.04), 0.5)
                for j in rng.choice(min(200, n_common), size=1 + rng.poisson(2), replace=False):
                    row[j] += rng.lognormal(np.log(0.03), 0.7)
            row[self.tracked_mask] = 0.0
            profiles[i] = _normalised(row)
        self.cum_profiles = np.cumsum(profiles, axis=1)
        self.cum_profiles[:, -1] = 1.0 + 1e-9

        # --- report volumes
        n_bg = n_prod - self.n_cart
        ranks = rng.permutation(n_bg).astype(float)
        real_mask = np.zeros(n_bg, dtype=bool)
        real_mask[: len(real)] = True
        ranks[real_mask] = rng.permutation(len(real)) * 1.5  # real products rank among the most reported
        pop = 1.0 / (ranks + 5.0) * rng.lognormal(0.0, 0.3, n_bg)
        for i, cls in enumerate(self.classes[self.n_cart :]):
            if cls == "bispecific":
                pop[i] = 0.0
        fixed = [self.index[n] - self.n_cart for n in dict.fromkeys(wanted)]
        pop[fixed] = 0.0
        pop = _normalised(pop) * (1.0 - 0.05 * len(fixed))
        pop[fixed] = 0.05  # background scenario products: 5% of background primary suspects each
        bispecific = [i for i, c in enumerate(self.classes[self.n_cart :]) if c == "bispecific"]
        pop[bispecific] = 0.002
        self.ps_weights = _normalised(pop)
        conc = self.ps_weights**0.7
        conc[bispecific] = 0.0
        self.conc_weights = _normalised(conc)
        self.cart_conc = np.array([self.index[n] for n in vocab.CART_CONCOMITANTS if n in self.index])
        self.cart_conc_weights = _normalised(
            np.array([vocab.CART_CONCOMITANTS[str(self.names[i])] for i in self.cart_conc])
        )
        self.cart_volume = np.array([vocab.CART_VOLUME.get(p, vocab.CART_VOLUME_DEFAULT) for p in cart])
        self.cart_approved: list[str | None] = []
        for prod_name in cart:
            approvals = products.products[prod_name].get("first_approvals") or {}
            dates = sorted(str(d) for d in approvals.values()) if isinstance(approvals, dict) else []
            self.cart_approved.append(dates[0] if dates else None)
        self.chinese = np.array([str(products.products[p].get("first_approvals") or {}).find("FDA") < 0 for p in cart])

        # --- tracked-event multipliers per product (exactly 1 for products of the scenario's pairs)
        self.tracked_rate = np.array([t.background_rate for t in tracked])
        self.tracked_mult = rng.lognormal(0.0, 0.25, (n_prod, len(tracked)))
        # report-weighted mean 1, so that the background rate of a tracked event is its nominal rate
        mix = np.concatenate(
            [config.cart_share * _normalised(self.cart_volume), (1 - config.cart_share) * self.ps_weights]
        )
        self.tracked_mult /= mix @ self.tracked_mult
        event_pos = {t.event: k for k, t in enumerate(tracked)}
        self.pairs = []
        for p in scenario.pairs:
            k = event_pos[p.event]
            self.tracked_mult[self.index[p.product], k] = 1.0
            self.pairs.append((self.index[p.product], k, float(p.relative_rate), p.start_quarter))

        # --- onset delays: PT-specific median (days) and spread; product-specific scale
        median = np.full(n_pt, 20.0)
        sigma = np.full(n_pt, 1.2)
        for group, (m, s) in {
            "icans": (6.0, 0.5),
            "movement_nerve_toxicity": (30.0, 0.6),
            "crs": (2.0, 0.6),
            "hbv_reactivation": (120.0, 0.7),
            "malignancy_t_cell": (300.0, 0.6),
            "malignancy_myeloid": (450.0, 0.5),
            "malignancy_other": (400.0, 0.6),
        }.items():
            for key in groups.groups.get(group, ()):
                if key in self.pt_index:
                    median[self.pt_index[key]] = m
                    sigma[self.pt_index[key]] = s
        self.onset_log_median = np.log(median)
        self.onset_sigma = sigma
        self.onset_default = median == 20.0
        self.delay_scale = rng.lognormal(0.0, 0.25, n_prod)

        # --- per-product attributes for the DRUG/INDI rows
        indications: list[tuple[str, ...]] = []
        routes = []
        for i in range(n_prod):
            cls = self.classes[i]
            if cls == "car_t":
                indications.append(vocab.CART_INDICATIONS.get(cart[i], ("Lymphoma",)))
                routes.append("Intravenous")
            elif cls == "bispecific":
                indications.append(vocab.BISPECIFIC_INDICATIONS)
                routes.append("Intravenous")
            else:
                indications.append(vocab.DRUG_CLASSES[cls]["indi"])
                routes.append(vocab.DRUG_CLASSES[cls]["route"][0])
        self.indi_flat = np.array([x for ind in indications for x in ind], dtype=object)
        self.indi_len = np.array([len(ind) for ind in indications])
        self.indi_off = np.concatenate([[0], np.cumsum(self.indi_len)[:-1]])
        self.routes = np.array(routes, dtype=object)
        self.prod_ai = np.array([str(n).upper() for n in self.names], dtype=object)
        self.brand = np.array([b or None for b in brands], dtype=object)
        scenario_products = {p.product for p in scenario.pairs}
        self.brand_prob = np.array(
            [0.4 if (b and str(self.names[i]) not in scenario_products) else 0.0 for i, b in enumerate(brands)]
        )
        nda = rng.integers(10000, 220000, n_prod).astype(str).astype(object)
        for i, prod_name in enumerate(cart):
            nda[i] = vocab.CART_NDA.get(prod_name)
        self.nda = nda
        self.mfr = np.array(
            [str(products.products[p].get("manufacturer", "")).split("/")[0].strip().upper() for p in cart]
            + [vocab.COMPANIES[int(j)] for j in rng.integers(len(vocab.COMPANIES), size=n_bg)],
            dtype=object,
        )
        self.mfr_code = np.array([re.sub(r"[^A-Z]", "", str(m))[:10] for m in self.mfr])
        self.dose_form = np.array(
            [
                "SUSPENSION" if c == "car_t" else ("INJECTION" if r != "Oral" else "TABLET")
                for c, r in zip(self.classes, routes, strict=True)
            ],
            dtype=object,
        )

        # --- CAR-T spellings in drugname / prod_ai
        self.variants: list[np.ndarray] = []
        self.variant_cum: list[np.ndarray] = []
        for prod_name in cart:
            names, freq = cart_spellings(prod_name, products.products[prod_name])
            self.variants.append(np.array(names, dtype=object))
            self.variant_cum.append(np.cumsum(_normalised(np.array(freq))))

    @staticmethod
    def _class_of(name: str, rng: np.random.Generator) -> str:
        low = name.lower()
        for cls, spec in vocab.DRUG_CLASSES.items():
            if any(low.endswith(stem) for stem in spec["stem"]):
                return cls
        classes = list(vocab.DRUG_CLASSES)
        return classes[int(rng.integers(len(classes)))]

    # ------------------------------------------------------------------------------------------------
    def cart_weights(self, quarter: Quarter) -> np.ndarray:
        """Report volume per CAR-T product in a quarter: x0.15 (trial reports) before the first approval."""
        end = quarter.end.isoformat()
        approved = np.array([d is not None and d <= end for d in self.cart_approved])
        return _normalised(self.cart_volume * np.where(approved, 1.0, 0.15))

    def sample_pts(self, product: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One PT id per element, drawn from that product's profile (grouped inverse-CDF sampling)."""
        u = rng.random(len(product))
        out = np.empty(len(product), dtype=np.int64)
        order = np.argsort(product, kind="stable")
        sorted_prod = product[order]
        bounds = np.flatnonzero(np.diff(sorted_prod)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(product)]])
        for s, e in zip(starts, ends, strict=True):
            if e > s:
                idx = order[s:e]
                out[idx] = np.searchsorted(self.cum_profiles[sorted_prod[s]], u[idx], side="right")
        return out

    def cart_drugnames(self, product: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A spelling (brand, INN, 'BRAND (INN)', code, Chinese brand...) per CAR-T drug row."""
        out = np.empty(len(product), dtype=object)
        u = rng.random(len(product))
        for i in range(self.n_cart):
            m = product == i
            if m.any():
                out[m] = self.variants[i][
                    np.searchsorted(self.variant_cum[i], u[m], side="right").clip(0, len(self.variants[i]) - 1)
                ]
        return out


def cart_spellings(product: str, spec: Mapping[str, object]) -> tuple[list[str], list[float]]:
    """Drug-name spellings of a CAR-T product as reporters write them, with relative frequencies.

    Every spelling maps back to the product with :class:`pv.normalise.ProductDictionary` (the tests check).
    """
    raw = spec.get("spellings") or []
    raw = list(raw) if isinstance(raw, list | tuple) else []
    spellings = [str(s) for s in raw]
    latin = [s for s in spellings if s.isascii()]
    chinese = [s for s in spellings if not s.isascii()]
    brand = latin[0] if latin else product
    inn = product
    out: dict[str, float] = {}

    def put(name: str, w: float) -> None:
        out[name] = out.get(name, 0.0) + w

    put(brand.upper(), 0.30)
    put(f"{brand.upper()} ({inn.upper()})", 0.15)
    put(inn.upper(), 0.15)
    put(brand.capitalize() if brand.islower() else brand, 0.06)
    put(inn, 0.04)
    put(inn.title(), 0.03)
    put(f"{brand.upper()}.", 0.01)
    put(f"{brand}®", 0.01)
    put(f"{brand.upper()} SUSPENSION FOR IV INFUSION", 0.02)
    put(f"UNKNOWN ({inn.upper()})", 0.01)
    put(f"{inn} ({brand})", 0.02)
    put("".join(c.upper() if k % 2 else c.lower() for k, c in enumerate(brand)), 0.01)  # mixed case
    for s in latin[1:]:
        put(s, 0.03)
        put(s.upper(), 0.02)
    for s in chinese:
        put(s, 0.04)
        put(f"{s}（{inn}）", 0.01)
    names = list(out)
    return names, [out[n] for n in names]


# ----------------------------------------------------------------------------------------------------
# One quarter's tables


@dataclass
class Tables:
    """The seven FAERS tables of a set of reports (FAERS columns plus internal ``_`` columns)."""

    demo: pd.DataFrame
    drug: pd.DataFrame
    reac: pd.DataFrame
    outc: pd.DataFrame
    rpsr: pd.DataFrame
    ther: pd.DataFrame
    indi: pd.DataFrame

    NAMES = ("demo", "drug", "reac", "outc", "rpsr", "ther", "indi")

    @classmethod
    def concat(cls, parts: Sequence[Tables]) -> Tables:
        if len(parts) == 1:
            return parts[0]
        return cls(*[pd.concat([getattr(p, n) for p in parts], ignore_index=True) for n in cls.NAMES])

    def subset(self, caseids: np.ndarray) -> Tables:
        return Tables(*[getattr(self, n)[getattr(self, n)["caseid"].isin(caseids)].copy() for n in self.NAMES])

    def __len__(self) -> int:
        return len(self.demo)


def _dates(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = pd.DatetimeIndex((days.astype("int64") + _EPOCH).astype("datetime64[s]"))
    return idx.year.to_numpy(), idx.month.to_numpy(), idx.day.to_numpy()


def _fmt_dates(days: np.ndarray, precision: np.ndarray | None = None) -> pd.Series:
    """YYYYMMDD integers; precision 1 -> YYYYMM, 2 -> YYYY, 3 -> missing (also NaN days -> missing)."""
    missing = np.isnan(days) if days.dtype.kind == "f" else np.zeros(len(days), dtype=bool)
    safe = np.where(missing, 0, days).astype(np.int64)
    y, m, d = _dates(safe)
    val = y * 10000 + m * 100 + d
    if precision is not None:
        val = np.where(precision == 1, y * 100 + m, val)
        val = np.where(precision == 2, y, val)
        missing = missing | (precision >= 3)
    return pd.Series(pd.array(np.where(missing, 0, val), dtype="Int64")).mask(missing)


def _choice(rng: np.random.Generator, options: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    labels = np.array([o[0] for o in options], dtype=object)
    p = _normalised(np.array([o[1] for o in options], dtype=float))
    return labels[rng.choice(len(labels), size=n, p=p)]


def _blank(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


@dataclass(frozen=True)
class Core:
    """The first draws of a batch of initial reports: drugs (``drugmat``, -1 padded; ``rolemat`` 0 PS, 1 SS,
    2 C, 3 I), the probability ``p`` and occurrence ``occ`` of each tracked event (reports x tracked events),
    the tracked PTs drawn (``t_rep``, ``t_pt``) and the number of PT draws from the drugs' profiles."""

    is_cart: np.ndarray
    ps: np.ndarray
    drugmat: np.ndarray
    rolemat: np.ndarray
    n_drugs: np.ndarray
    p: np.ndarray
    occ: np.ndarray
    t_rep: np.ndarray
    t_pt: np.ndarray
    n_prof: np.ndarray


class QuarterGenerator:
    """Generates the initial reports of a quarter and the follow-ups derived from them."""

    def __init__(self, universe: Universe) -> None:
        self.u = universe

    # ------------------------------------------------------------------------------------------------
    def draw_core(self, quarter: Quarter, n: int, rng: np.random.Generator) -> Core:
        """The drugs, roles, tracked events and number of profile PTs of ``n`` initial reports (the first
        draws of :meth:`initial`, in its order; :mod:`pv.simulate.ratios` uses them to compute true ratios)."""
        u = self.u
        cfg = u.config

        # --- drugs
        is_cart = rng.random(n) < cfg.cart_share
        n_cart = int(is_cart.sum())
        ps = np.empty(n, dtype=np.int64)
        ps[is_cart] = rng.choice(u.n_cart, size=n_cart, p=u.cart_weights(quarter))
        ps[~is_cart] = u.n_cart + rng.choice(u.n_products - u.n_cart, size=n - n_cart, p=u.ps_weights)
        n_drugs = (
            np.where(
                is_cart,
                rng.choice(4, size=n, p=[0.35, 0.15, 0.25, 0.25]),
                rng.choice(4, size=n, p=[0.55, 0.22, 0.13, 0.10]),
            )
            + 1
        )
        others = u.n_cart + rng.choice(u.n_products - u.n_cart, size=(n, 3), p=u.conc_weights)
        cart_conc = u.cart_conc[rng.choice(len(u.cart_conc), size=(n, 3), p=u.cart_conc_weights)]
        use_cc = is_cart[:, None] & (rng.random((n, 3)) < 0.8)
        others = np.where(use_cc, cart_conc, others)
        drugmat = np.full((n, 4), -1, dtype=np.int64)
        drugmat[:, 0] = ps
        for j in range(1, 4):
            col = others[:, j - 1]
            dup = (drugmat[:, :j] == col[:, None]).any(axis=1)
            drugmat[:, j] = np.where((j < n_drugs) & ~dup, col, -1)
        rolemat = np.full((n, 4), -1, dtype=np.int64)
        rolemat[:, 0] = 0
        r_bg = rng.choice(3, size=(n, 3), p=[0.22, 0.73, 0.05]) + 1
        r_ct = rng.choice(2, size=(n, 3), p=[0.05, 0.95]) + 1
        rolemat[:, 1:] = np.where(is_cart[:, None], r_ct, r_bg)
        order = np.argsort(drugmat < 0, axis=1, kind="stable")
        drugmat = np.take_along_axis(drugmat, order, axis=1)
        rolemat = np.where(drugmat >= 0, np.take_along_axis(rolemat, order, axis=1), -1)
        n_drugs = (drugmat >= 0).sum(axis=1)

        # --- tracked events (controlled rates) and profile PTs
        n_t = len(u.tracked)
        p = u.tracked_rate[None, :] * u.tracked_mult[ps]
        suspect = rolemat.copy()
        suspect[(rolemat < 0) | (rolemat > 1)] = -1
        for prod, k, rr, start in u.pairs:
            if rr == 1.0 or (start is not None and quarter < start):
                continue
            has = ((drugmat == prod) & (suspect >= 0)).any(axis=1)
            p[has, k] = np.maximum(p[has, k], rr * u.tracked_rate[k])
        occ = rng.random((n, n_t)) < np.clip(p, 0.0, 1.0)
        t_rep, t_evt = np.nonzero(occ)
        t_pt = np.empty(len(t_rep), dtype=np.int64)
        for k, ev in enumerate(u.tracked):
            m = t_evt == k
            t_pt[m] = u.tracked_pt_ids[k][rng.choice(len(ev.pts), size=int(m.sum()), p=ev.weights)]
        n_tracked = occ.sum(axis=1)
        n_total = (
            np.where(
                is_cart,
                rng.choice(5, size=n, p=[0.25, 0.25, 0.22, 0.15, 0.13]),
                rng.choice(5, size=n, p=[0.42, 0.24, 0.16, 0.10, 0.08]),
            )
            + 1
        )
        n_prof = np.where(n_tracked > 0, np.maximum(n_total - n_tracked, 0), n_total)
        return Core(is_cart, ps, drugmat, rolemat, n_drugs, p, occ, t_rep, t_pt, n_prof)

    def initial(self, quarter: Quarter, n: int, rng: np.random.Generator, first_caseid: int) -> Tables:
        u = self.u
        caseid = first_caseid + np.arange(n, dtype=np.int64)
        primaryid = caseid * 10 + 1
        core = self.draw_core(quarter, n, rng)
        is_cart, ps, drugmat, rolemat, n_drugs = core.is_cart, core.ps, core.drugmat, core.rolemat, core.n_drugs
        t_rep, t_pt, n_prof = core.t_rep, core.t_pt, core.n_prof
        s_rep = np.repeat(np.arange(n), n_prof)
        nd = n_drugs[s_rep]
        pick_other = (nd > 1) & (rng.random(len(s_rep)) >= 0.75)
        col = np.where(pick_other, 1 + (rng.random(len(s_rep)) * (nd - 1)).astype(np.int64), 0)
        s_pt = u.sample_pts(drugmat[s_rep, col], rng)
        r_rep = np.concatenate([t_rep, s_rep])
        r_pt = np.concatenate([t_pt, s_pt])
        _, first = np.unique(r_rep * u.n_pts + r_pt, return_index=True)
        first.sort()
        r_rep, r_pt = r_rep[first], r_pt[first]
        o = np.argsort(r_rep, kind="stable")
        r_rep, r_pt = r_rep[o], r_pt[o]
        primary_pt = r_pt[np.unique(r_rep, return_index=True)[1]]

        # --- dates: receipt within the quarter; event before receipt; therapy start before the event
        q0 = int((np.datetime64(quarter.start.isoformat(), "D") - _EPOCH).astype(int))
        fda = q0 + rng.integers(0, quarter.days, n)
        lag = np.minimum(rng.lognormal(np.log(30.0), 1.0, n), 900.0).astype(np.int64)
        event = fda - lag
        log_delay = (
            u.onset_log_median[primary_pt]
            + np.log(u.delay_scale[ps])
            + np.where(~is_cart & u.onset_default[primary_pt], np.log(4.0), 0.0)
            + u.onset_sigma[primary_pt] * rng.standard_normal(n)
        )
        delay = np.minimum(np.exp(log_delay), 3650.0).astype(np.int64)
        start_ps = event - delay
        rept_cod = np.where(
            is_cart,
            _choice(rng, [("EXP", 0.85), ("PER", 0.1), ("DIR", 0.05)], n),
            _choice(rng, [("EXP", 0.62), ("PER", 0.22), ("DIR", 0.16)], n),
        )
        direct = rept_cod == "DIR"
        mfr_days = (fda - rng.integers(0, 15, n)).astype(float)
        mfr_days[direct] = np.nan
        ev_prec = rng.choice(4, size=n, p=[0.66, 0.12, 0.04, 0.18])

        # --- demographics
        indication_young = np.zeros(n, dtype=bool)
        cart_ps = np.where(is_cart, ps, 0)
        all_ps = is_cart & (
            np.isin(
                cart_ps,
                [
                    u.index[p]
                    for p in (
                        "tisagenlecleucel",
                        "brexucabtagene autoleucel",
                        "obecabtagene autoleucel",
                        "inaticabtagene autoleucel",
                    )
                    if p in u.index
                ],
            )
        )
        indication_young[all_ps] = rng.random(int(all_ps.sum())) < 0.35
        age = np.where(is_cart, rng.normal(61.0, 11.0, n), rng.normal(56.0, 18.0, n))
        age = np.where(indication_young, rng.uniform(2.0, 26.0, n), age)
        age = np.clip(age, 0.05, 99.0)
        age_known = rng.random(n) < 0.78
        age_cod = _choice(rng, [("YR", 0.88), ("DEC", 0.09), ("MON", 0.02), ("WK", 0.01)], n)
        age_cod = np.where(age < 2.0, np.where(rng.random(n) < 0.8, "MON", "DY"), age_cod)
        age_val = np.select(
            [age_cod == "YR", age_cod == "DEC", age_cod == "MON", age_cod == "WK"],
            [np.floor(age), np.floor(age / 10.0), np.floor(age * 12.0), np.floor(age * 52.18)],
            np.floor(age * 365.25),
        ).astype(np.int64)
        age_val = np.maximum(age_val, np.where(age_cod == "DEC", 0, 1))
        age_grp = np.select(
            [age < 28 / 365.25, age < 2, age < 12, age < 18, age < 65], ["N", "I", "C", "T", "A"], "E"
        ).astype(object)
        age_grp_known = rng.random(n) < np.where(age_known, 0.45, 0.08)
        sex = np.where(
            is_cart,
            _choice(rng, [("M", 0.58), ("F", 0.39), ("", 0.03)], n),
            _choice(rng, [("F", 0.55), ("M", 0.40), ("", 0.05)], n),
        )
        wt_known = rng.random(n) < 0.35
        wt_kg = np.clip(rng.normal(76.0, 18.0, n) * np.where(age < 18, (age + 2) / 20.0, 1.0), 3.0, 220.0)
        lbs = rng.random(n) < 0.12
        wt = np.round(np.where(lbs, wt_kg * 2.20462, wt_kg), 1)
        china = is_cart & np.isin(cart_ps, np.flatnonzero(u.chinese))
        country = np.where(is_cart, _choice(rng, vocab.CART_COUNTRIES_US, n), _choice(rng, vocab.COUNTRIES, n))
        country = np.where(china & (rng.random(n) < 0.95), "CN", country)
        occr = np.where(rng.random(n) < 0.95, country, _choice(rng, vocab.COUNTRIES, n))
        mfr_sndr = u.mfr[ps].copy()
        mfr_sndr[direct] = "FDA-CTU"
        year = str(quarter.year)
        number = np.char.zfill(rng.integers(0, 999999, n).astype("U6"), 6)
        mfr_num = pc.binary_join_element_wise(
            pa.array(country.astype(str)), pa.array(u.mfr_code[ps]), pa.array(np.char.add(year, number)), "-"
        )
        mfr_num = np.asarray(mfr_num.to_numpy(zero_copy_only=False), dtype=object)
        mfr_num[direct] = None
        mfr_sndr[direct & (rng.random(n) < 0.7)] = None
        lit = rng.random(n) < 0.01
        lit_ref = _blank(n)
        lit_ref[lit] = "CASE REPORT OF AN ADVERSE REACTION. J CLIN PHARMACOL. " + year

        demo = pd.DataFrame(
            {
                "primaryid": primaryid,
                "caseid": caseid,
                "caseversion": np.ones(n, dtype=np.int64),
                "i_f_code": np.full(n, "I", dtype=object),
                "event_dt": _fmt_dates(event, ev_prec),
                "mfr_dt": _fmt_dates(mfr_days),
                "init_fda_dt": _fmt_dates(fda),
                "fda_dt": _fmt_dates(fda),
                "rept_cod": rept_cod,
                "auth_num": _blank(n),
                "mfr_num": mfr_num,
                "mfr_sndr": mfr_sndr,
                "lit_ref": lit_ref,
                "age": pd.Series(age_val, dtype="Int64").mask(~age_known).to_numpy(),
                "age_cod": np.where(age_known, age_cod, _NA),
                "age_grp": np.where(age_grp_known, age_grp, _NA),
                "sex": np.where(sex == "", _NA, sex),
                "e_sub": np.where(rng.random(n) < 0.9, "Y", "N").astype(object),
                "wt": np.where(wt_known, wt, np.nan),
                "wt_cod": np.where(wt_known, np.where(lbs, "LBS", "KG"), _NA),
                "rept_dt": _fmt_dates(fda),
                "to_mfr": _blank(n),
                "occp_cod": _choice(rng, vocab.OCCP_CODES, n),
                "reporter_country": country,
                "occr_country": occr,
                "_ps": ps,
                "_fda": fda,
            },
            copy=False,
        )

        # --- DRUG rows
        d_rep, d_col = np.nonzero(drugmat >= 0)
        d_prod = drugmat[d_rep, d_col]
        d_role = rolemat[d_rep, d_col]
        drug = self.drug_rows(primaryid[d_rep], caseid[d_rep], d_col + 1, d_prod, d_role, rng)

        # --- THER rows: therapy start/end for most suspects and some concomitants
        d_start = start_ps[d_rep].astype(float)
        d_end = np.full(len(d_rep), np.nan)
        cart_row = d_prod < u.n_cart
        d_end[cart_row] = d_start[cart_row]
        names = u.names[d_prod]
        lymphodep = np.isin(names, ["FLUDARABINE", "CYCLOPHOSPHAMIDE"]) & is_cart[d_rep]
        rescue = np.isin(names, ["TOCILIZUMAB", "DEXAMETHASONE", "ANAKINRA"]) & is_cart[d_rep]
        other = (d_col > 0) & ~lymphodep & ~rescue
        d_start[lymphodep] -= 5 - rng.integers(0, 2, int(lymphodep.sum()))
        d_end[lymphodep] = d_start[lymphodep] + 2
        ev_rows = event[d_rep].astype(float)
        d_start[rescue] = ev_rows[rescue] + rng.integers(0, 3, int(rescue.sum()))
        d_end[rescue] = d_start[rescue] + rng.integers(0, 4, int(rescue.sum()))
        d_start[other] -= rng.integers(0, 400, int(other.sum()))
        bg_ps = (d_col == 0) & ~cart_row
        ends = bg_ps & (rng.random(len(d_rep)) < 0.4)
        d_end[ends] = ev_rows[ends] + rng.integers(0, 30, int(ends.sum()))
        keep = rng.random(len(d_rep)) < np.where(cart_row, 0.9, np.where(d_col == 0, 0.7, 0.45))
        prec = rng.choice(4, size=len(d_rep), p=[0.84, 0.1, 0.03, 0.03])
        ther = pd.DataFrame(
            {
                "primaryid": primaryid[d_rep][keep],
                "caseid": caseid[d_rep][keep],
                "dsg_drug_seq": (d_col + 1)[keep],
                "start_dt": _fmt_dates(d_start[keep], prec[keep]),
                "end_dt": _fmt_dates(d_end[keep], np.where(prec[keep] == 3, 0, prec[keep])),
                "dur": pd.Series(np.ones(int(keep.sum()), dtype=np.int64), dtype="Int64")
                .mask(~cart_row[keep])
                .to_numpy(),
                "dur_cod": np.where(cart_row[keep], "DAY", _NA),
            },
            copy=False,
        )

        # --- INDI rows
        indi = self.indi_rows(primaryid[d_rep], caseid[d_rep], d_col + 1, d_prod, rng, np.where(cart_row, 0.95, 0.7))

        # --- REAC rows
        reac = pd.DataFrame(
            {
                "primaryid": primaryid[r_rep],
                "caseid": caseid[r_rep],
                "pt": u.pts[r_pt],
                "drug_rec_act": _blank(len(r_rep)),
                "_tracked": u.tracked_mask[r_pt],
            },
            copy=False,
        )

        # --- OUTC: seriousness codes, death forced for reports with the PT Death
        death_pt = u.pt_index.get("death")
        died = np.zeros(n, dtype=bool)
        if death_pt is not None:
            died[r_rep[r_pt == death_pt]] = True
        p_cart = np.array([0.12, 0.15, 0.55, 0.03, 0.0, 0.03, 0.45])
        p_bg = np.array([0.05, 0.05, 0.30, 0.03, 0.002, 0.02, 0.35])
        probs = np.where(is_cart[:, None], p_cart[None, :], p_bg[None, :])
        outc_mat = rng.random((n, 7)) < probs
        outc_mat[died, 0] = True
        o_rep, o_code = np.nonzero(outc_mat)
        outc = pd.DataFrame(
            {"primaryid": primaryid[o_rep], "caseid": caseid[o_rep], "outc_cod": OUTC_CODES[o_code]}, copy=False
        )

        # --- RPSR
        has_src = rng.random(n) < 0.25
        rpsr = pd.DataFrame(
            {
                "primaryid": primaryid[has_src],
                "caseid": caseid[has_src],
                "rpsr_cod": _choice(rng, vocab.RPSR_CODES, int(has_src.sum())),
            },
            copy=False,
        )
        return Tables(demo, drug, reac, outc, rpsr, ther, indi)

    # ------------------------------------------------------------------------------------------------
    def drug_rows(
        self,
        primaryid: np.ndarray,
        caseid: np.ndarray,
        seq: np.ndarray,
        prod: np.ndarray,
        role: np.ndarray,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        u = self.u
        m = len(prod)
        cart_row = prod < u.n_cart
        drugname = u.names[prod].copy()
        use_brand = rng.random(m) < u.brand_prob[prod]
        drugname[use_brand] = u.brand[prod[use_brand]]
        drugname[cart_row] = u.cart_drugnames(prod[cart_row], rng)
        prod_ai = u.prod_ai[prod].copy()
        ai_var = rng.random(m)
        prod_ai[cart_row & (ai_var < 0.10)] = None
        lower = cart_row & (ai_var >= 0.10) & (ai_var < 0.15)
        prod_ai[lower] = u.names[prod[lower]]
        as_reported = cart_row & (ai_var >= 0.15) & (ai_var < 0.19)  # the reporter's spelling, not the INN
        prod_ai[as_reported] = drugname[as_reported]
        route = u.routes[prod].copy()
        route[rng.random(m) < 0.1] = "Unknown"
        suspect = role <= 1
        dechal = np.where(suspect, _choice(rng, [("U", 0.5), ("N", 0.2), ("Y", 0.15), ("D", 0.15)], m), _NA)
        rechal = np.where(suspect, _choice(rng, [("U", 0.7), ("N", 0.2), ("Y", 0.1)], m), _NA)
        has_lot = cart_row & (rng.random(m) < 0.3)
        lot = _blank(m)
        lot[has_lot] = np.char.add("L", rng.integers(100000, 999999, int(has_lot.sum())).astype("U6")).astype(object)
        has_amt = ~cart_row & (rng.random(m) < 0.5)
        dose_amt = pd.Series(rng.choice([5, 10, 20, 40, 50, 100, 200, 500], m), dtype="Int64").mask(~has_amt)
        dose_vbm = np.where(
            cart_row, np.where(rng.random(m) < 0.5, "SINGLE INFUSION", "UNK"), np.where(has_amt, "UNK", _NA)
        )
        return pd.DataFrame(
            {
                "primaryid": primaryid,
                "caseid": caseid,
                "drug_seq": seq,
                "role_cod": ROLE_CODES[role],
                "drugname": drugname,
                "prod_ai": prod_ai,
                "val_vbm": np.where(rng.random(m) < 0.7, 1, 2),
                "route": route,
                "dose_vbm": dose_vbm,
                "cum_dose_chr": _blank(m),
                "cum_dose_unit": _blank(m),
                "dechal": dechal,
                "rechal": rechal,
                "lot_num": lot,
                "exp_dt": _blank(m),
                "nda_num": u.nda[prod],
                "dose_amt": dose_amt.to_numpy(),
                "dose_unit": np.where(has_amt, "MG", _NA),
                "dose_form": u.dose_form[prod],
                "dose_freq": np.where(cart_row, "ONCE", np.where(has_amt, "QD", _NA)),
                "_product": prod,
            },
            copy=False,
        )

    def indi_rows(
        self,
        primaryid: np.ndarray,
        caseid: np.ndarray,
        seq: np.ndarray,
        prod: np.ndarray,
        rng: np.random.Generator,
        keep_prob: np.ndarray | float,
    ) -> pd.DataFrame:
        u = self.u
        keep = rng.random(len(prod)) < keep_prob
        pr = prod[keep]
        pick = u.indi_off[pr] + (rng.random(len(pr)) * u.indi_len[pr]).astype(np.int64)
        term = u.indi_flat[pick]
        term[(pr >= u.n_cart) & (rng.random(len(pr)) < 0.2)] = UNKNOWN_INDICATION
        return pd.DataFrame(
            {
                "primaryid": primaryid[keep],
                "caseid": caseid[keep],
                "indi_drug_seq": seq[keep],
                "indi_pt": term,
            },
            copy=False,
        )

    # ------------------------------------------------------------------------------------------------
    def followup(self, prev: Tables, fda_new: np.ndarray, rng: np.random.Generator) -> Tables:
        """The next version of every case in ``prev`` (one version per case), received on ``fda_new``
        (epoch days, aligned with ``prev.demo`` rows): new primaryid, i_f_code F, and changed reactions
        and/or drugs."""
        u = self.u
        demo = prev.demo.copy()
        n = len(demo)
        demo["caseversion"] += 1
        demo["primaryid"] += 1
        demo["i_f_code"] = "F"
        demo["_fda"] = fda_new
        demo["fda_dt"] = _fmt_dates(fda_new).to_numpy()
        demo["rept_dt"] = demo["fda_dt"]
        has_mfr = demo["mfr_dt"].notna().to_numpy()
        mfr = np.where(has_mfr, fda_new - rng.integers(0, 10, n), np.nan)
        demo["mfr_dt"] = _fmt_dates(mfr).to_numpy()
        fill_wt = demo["wt"].isna().to_numpy() & (rng.random(n) < 0.3)
        demo.loc[fill_wt, "wt"] = np.round(rng.normal(76.0, 15.0, int(fill_wt.sum())).clip(30, 200), 1)
        demo.loc[fill_wt, "wt_cod"] = "KG"

        def renumber(df: pd.DataFrame) -> pd.DataFrame:
            df = df.copy()
            df["primaryid"] += 1
            return df

        change = rng.random(n)
        reac_change = set(demo["caseid"].to_numpy()[change < 0.65])
        drug_change = set(demo["caseid"].to_numpy()[(change >= 0.65) | (rng.random(n) < 0.3)])

        # reactions: add one PT drawn from the primary suspect's profile (replacing the last untracked PT of a
        # report that already has five)
        reac = renumber(prev.reac)
        counts = reac.groupby("caseid")["pt"].transform("size").to_numpy()
        last = ~reac.duplicated("caseid", keep="last").to_numpy()
        in_change = reac["caseid"].isin(reac_change).to_numpy()
        drop = in_change & last & (counts >= 5) & ~reac["_tracked"].to_numpy()
        reac = reac[~drop]
        full = set(reac.loc[reac.groupby("caseid")["pt"].transform("size") >= 5, "caseid"])
        targets = demo[demo["caseid"].isin(reac_change - full)]
        new_pt = u.sample_pts(targets["_ps"].to_numpy(), rng)
        added = pd.DataFrame(
            {
                "primaryid": targets["primaryid"].to_numpy(),
                "caseid": targets["caseid"].to_numpy(),
                "pt": u.pts[new_pt],
                "drug_rec_act": _blank(len(targets)),
                "_tracked": np.zeros(len(targets), dtype=bool),
            },
            copy=False,
        )
        reac = pd.concat([reac, added], ignore_index=True).drop_duplicates(["caseid", "pt"])

        # drugs: add a concomitant (or, with four drugs already, change the role of the last one)
        drug = renumber(prev.drug)
        n_per = drug.groupby("caseid")["drug_seq"].transform("max").to_numpy()
        is_last = drug["drug_seq"].to_numpy() == n_per
        chg = drug["caseid"].isin(drug_change).to_numpy()
        flip = chg & is_last & (n_per >= 4) & (drug["role_cod"].to_numpy() != "PS")
        drug.loc[flip, "role_cod"] = np.where(drug.loc[flip, "role_cod"] == "C", "SS", "C")
        grow = drug[chg & is_last & (n_per < 4)]
        conc = u.n_cart + rng.choice(u.n_products - u.n_cart, size=len(grow), p=u.conc_weights)
        if len(grow):
            extra = self.drug_rows(
                grow["primaryid"].to_numpy(),
                grow["caseid"].to_numpy(),
                grow["drug_seq"].to_numpy() + 1,
                conc,
                np.full(len(grow), 2),
                rng,
            )
            drug = pd.concat([drug, extra], ignore_index=True)
            drug = drug.drop_duplicates(["caseid", "_product"], keep="first")
            drug = drug.sort_values(["caseid", "drug_seq"], kind="stable")

        outc = renumber(prev.outc)
        hosp = demo[rng.random(n) < 0.3]
        outc = pd.concat(
            [
                outc,
                pd.DataFrame(
                    {
                        "primaryid": hosp["primaryid"].to_numpy(),
                        "caseid": hosp["caseid"].to_numpy(),
                        "outc_cod": "HO",
                    },
                    copy=False,
                ),
            ],
            ignore_index=True,
        ).drop_duplicates(["caseid", "outc_cod"])
        return Tables(demo, drug, reac, outc, renumber(prev.rpsr), renumber(prev.ther), renumber(prev.indi))


# ----------------------------------------------------------------------------------------------------
# Writing


def _table_bytes(df: pd.DataFrame, columns: list[str]) -> bytes:
    table = pa.Table.from_pandas(df[columns], preserve_index=False)
    table = table.cast(
        pa.schema(
            [
                pa.field(c, pa.string() if pa.types.is_null(t) else t)
                for c, t in zip(table.column_names, table.schema.types, strict=True)
            ]
        )
    )
    buf = io.BytesIO()
    buf.write(("$".join(columns) + "\n").encode())
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, delimiter="$", quoting_style="none"))
    return buf.getvalue()


def write_zip(path: Path, quarter: Quarter, tables: Tables, deleted: Iterable[int], compresslevel: int = 1) -> Path:
    """One FAERS quarterly extract: ASCII/<FILE>yyQn.txt for the seven tables, Deleted/DELETEyyQn.txt.

    Member timestamps are the quarter's last day, so the same tables give byte-identical zips.
    """
    tmp = path.with_suffix(".zip.part")
    stamp = (quarter.end.year, quarter.end.month, quarter.end.day, 0, 0, 0)

    def member(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for name, columns in FILE_COLUMNS.items():
            df = getattr(tables, name.lower())
            zf.writestr(
                member(f"ASCII/{name}{quarter.short}.txt"),
                _table_bytes(df, columns),
                compresslevel=compresslevel,
            )
        ids = sorted(set(int(c) for c in deleted))
        zf.writestr(
            member(f"Deleted/DELETE{quarter.short}.txt"),
            "".join(f"{c}\n" for c in ids),
            compresslevel=compresslevel,
        )
    tmp.replace(path)
    return path


def _quarter_days(q: Quarter) -> tuple[int, int]:
    start = int((np.datetime64(q.start.isoformat(), "D") - _EPOCH).astype(int))
    return start, q.days


def write_quarters(
    out_dir: str | Path,
    quarters: str | Sequence[Quarter],
    reports_per_quarter: int,
    seed: int,
    *,
    config: SimulationConfig | None = None,
    products: ProductDictionary | None = None,
    groups: EventGroups | None = None,
    progress: Callable[[str], None] | None = print,
) -> list[Path]:
    """Write one FAERS-layout zip per quarter into ``out_dir`` plus truth.csv/truth.json; return the zips.

    ``reports_per_quarter`` counts initial reports; follow-up versions come on top (about 12%). The true
    reporting ratio of every pair comes on top with :func:`pv.simulate.ratios.write_quarters_with_ratios`.
    """
    if reports_per_quarter < 1:
        raise ConfigError("reports per quarter must be at least 1")
    qs = parse_quarters(quarters) if isinstance(quarters, str) else sorted(set(quarters))
    cfg = config or SimulationConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    universe = Universe(seed, cfg, products or default_products(), groups or default_event_groups())
    gen = QuarterGenerator(universe)
    wanted = {q.index for q in qs}
    stride = max(1_000_000, 10 ** len(str(reports_per_quarter)))
    pending: dict[int, list[Tables]] = {}
    pending_del: dict[int, list[np.ndarray]] = {}
    paths: list[Path] = []
    # the zip of quarter q is written (pyarrow CSV and zlib release the GIL) while quarter q+1 is generated
    with ThreadPoolExecutor(max_workers=1) as pool:
        writing: Future[str] | None = None
        for q in qs:
            t0 = time.perf_counter()
            rng = np.random.default_rng([seed, q.index])
            first_caseid = 10_000_000 + (q.index - Quarter(2000, 1).index) * stride
            base = gen.initial(q, reports_per_quarter, rng, first_caseid)
            own = [base]
            # follow-ups: version 2 in this or the next two quarters, some version 3 later still
            n = len(base)
            is_fu = rng.random(n) < cfg.followup_rate
            is_del = ~is_fu & (rng.random(n) < cfg.deletion_rate)
            fu = base.subset(base.demo["caseid"].to_numpy()[is_fu])
            fda = fu.demo["_fda"].to_numpy()
            offset = rng.choice(3, size=len(fda), p=[0.3, 0.5, 0.2])
            v2_fda, v2_q = _followup_dates(q, fda, offset, rng)
            v2 = gen.followup(fu, v2_fda, rng)
            third = rng.random(len(v2)) < cfg.second_followup_rate
            v3_prev = v2.subset(v2.demo["caseid"].to_numpy()[third])
            v3_fda, v3_q = _followup_dates_rel(v2_q[third], v2_fda[third], rng)
            v3 = gen.followup(v3_prev, v3_fda, rng)
            for tables, target in ((v2, v2_q), (v3, v3_q)):
                for tq in np.unique(target):
                    part = tables.subset(tables.demo["caseid"].to_numpy()[target == tq])
                    if tq == q.index:
                        own.append(part)
                    elif tq in wanted:
                        pending.setdefault(int(tq), []).append(part)
            del_ids = base.demo["caseid"].to_numpy()[is_del]
            del_q = q.index + rng.choice([1, 2], size=len(del_ids), p=[0.6, 0.4])
            for tq in np.unique(del_q):
                if tq in wanted:
                    pending_del.setdefault(int(tq), []).append(del_ids[del_q == tq])
            tables = Tables.concat(own + pending.pop(q.index, []))
            phantom = 1_000_000 + rng.integers(0, 8_999_999, cfg.phantom_deletions)
            deleted = np.concatenate([*pending_del.pop(q.index, []), phantom])
            path = out / zip_name(q)
            paths.append(path)
            generated = time.perf_counter() - t0
            if writing is not None:
                line = writing.result()
                if progress:
                    progress(line)
            writing = pool.submit(
                _write_and_describe, path, q, tables, deleted, reports_per_quarter, cfg.compresslevel, generated
            )
            del base, own, tables, fu, v2, v3, v3_prev
        if writing is not None:
            line = writing.result()
            if progress:
                progress(line)
    truth = Truth.from_scenario(
        cfg.scenario,
        qs[0],
        metadata={
            "generator": "pv.simulate.faers",
            "format_version": 1,
            "seed": seed,
            "quarters": [str(q) for q in qs],
            "reports_per_quarter": reports_per_quarter,
            "cart_share": cfg.cart_share,
            "files": [p.name for p in paths],
            "known_risks": [{"product": p, "event": e, "level": "group"} for p, e in cfg.scenario.known_risks],
        },
    )
    truth.write(out)
    return paths


def _write_and_describe(
    path: Path,
    q: Quarter,
    tables: Tables,
    deleted: np.ndarray,
    initial: int,
    compresslevel: int,
    generated: float,
) -> str:
    t0 = time.perf_counter()
    write_zip(path, q, tables, deleted.tolist(), compresslevel)
    n_fu = int((tables.demo["caseversion"] > 1).sum())
    return (
        f"{q}: {len(tables.demo):,} reports ({initial:,} initial, {n_fu:,} follow-up versions), "
        f"{len(deleted):,} deletions -> {path.name} (generated in {generated:.1f} s, "
        f"written in {time.perf_counter() - t0:.1f} s)"
    )


def _followup_dates(
    q: Quarter, fda: np.ndarray, offset: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Day and quarter index of follow-ups ``offset`` quarters after a version received on ``fda``."""
    q0, days = _quarter_days(q)
    rem = q0 + days - 1 - fda
    offset = np.where((offset == 0) & (rem < 1), 1, offset)
    new = np.empty(len(fda), dtype=np.int64)
    same = offset == 0
    new[same] = fda[same] + 1 + (rng.random(int(same.sum())) * rem[same]).astype(np.int64)
    for k in (1, 2):
        m = offset == k
        s, d = _quarter_days(q + k)
        new[m] = s + rng.integers(0, d, int(m.sum()))
    return new, q.index + offset


def _followup_dates_rel(
    q_index: np.ndarray, fda: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    new = np.empty(len(fda), dtype=np.int64)
    out_q = np.empty(len(fda), dtype=np.int64)
    offset = rng.choice(2, size=len(fda), p=[0.4, 0.6])
    for qi in np.unique(q_index):
        m = q_index == qi
        d, tq = _followup_dates(Quarter.from_index(int(qi)), fda[m], offset[m], rng)
        new[m], out_q[m] = d, tq
    return new, out_q
