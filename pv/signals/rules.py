"""Signal detection rules as data (config/signals.yaml) and their pure evaluation on a run's pair results.

Nothing here touches the database: :class:`RuleSet` is parsed and validated from YAML (a
:class:`~pv.errors.ConfigError` names the file and the offending key), :func:`evaluate_rules` marks the rows
of a results DataFrame that meet the rules, :func:`select_result_set` picks the stratified or unstratified
row of each pair. See docs/signals.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from pv.analysis.results import PAIR_KEYS, PAIR_VALUES
from pv.config import config_path, load_yaml, validated
from pv.errors import InputError

#: What a rule may name: the values of a pair in a run's results.
MEASURES: tuple[str, ...] = PAIR_VALUES


def _known_measure(v: str) -> str:
    if v not in MEASURES:
        raise ValueError(f"unknown measure {v!r}; known: {', '.join(MEASURES)}")
    return v


Measure = Annotated[str, AfterValidator(_known_measure)]
LEVELS: tuple[str, ...] = ("pt", "group")
Jurisdiction = Literal["FDA", "NMPA", "EMA"]
Section = Literal["boxed_warning", "warnings_and_precautions", "adverse_reactions"]
Component = Literal["strength", "seriousness", "novelty", "trend"]
JURISDICTIONS: tuple[Jurisdiction, ...] = ("FDA", "NMPA", "EMA")
SECTIONS: tuple[Section, ...] = ("boxed_warning", "warnings_and_precautions", "adverse_reactions")
DEFAULT_WEIGHTS: dict[Component, float] = {
    "strength": 0.4, "seriousness": 0.25, "novelty": 0.2, "trend": 0.15,
}

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(rf"^\s*([a-z0-9_]+)\s*(>=|<=|==|>|<)\s*({_NUMBER})\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """``measure op value``; a missing (NaN/None) measure never holds."""

    measure: Measure
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            m = _CONDITION.match(data)
            if not m:
                raise ValueError(f"invalid condition {data!r}: expected 'MEASURE OP VALUE', e.g. 'eb05 >= 2'")
            return {"measure": m.group(1), "op": m.group(2), "value": float(m.group(3))}
        return data

    def holds(self, values: Mapping[str, Any]) -> bool:
        x = values.get(self.measure)
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return False
        return bool(_OPS[self.op](float(x), self.value))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        col = pd.to_numeric(frame[self.measure], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            out = _OPS[self.op](col, self.value)
        return np.asarray(out, dtype=bool) & ~np.isnan(col)

    def __str__(self) -> str:
        return f"{self.measure} {self.op} {self.value:g}"


class Criterion(_Model):
    """A named conjunction of conditions (e.g. Evans: PRR >= 2, chi2 >= 4, n >= 3)."""

    name: str = "criterion"
    conditions: list[Condition] = Field(min_length=1)

    def holds(self, values: Mapping[str, Any]) -> bool:
        return all(c.holds(values) for c in self.conditions)

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.ones(len(frame), dtype=bool)
        for c in self.conditions:
            out &= c.mask(frame)
        return out

    def describe(self, values: Mapping[str, Any]) -> str:
        parts = []
        for c in self.conditions:
            x = values.get(c.measure)
            shown = "NA" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x):.3g}"
            parts.append(f"{c.measure} {shown} {c.op} {c.value:g}")
        return f"{self.name} ({', '.join(parts)})"


class LevelRule(_Model):
    """How criteria combine at one level (pt or group), with a minimum case count."""

    min_n: int = Field(default=3, ge=0)
    combine: Literal["any", "all", "at_least"] = "any"
    k: int = Field(default=1, ge=1)
    criteria: list[Criterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _k_fits(self) -> LevelRule:
        if self.combine == "at_least" and self.k > len(self.criteria):
            raise ValueError(f"combine at_least k={self.k} but only {len(self.criteria)} criteria")
        names = [c.name for c in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError(f"criteria names must be unique, got {names}")
        return self

    def criteria_masks(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {c.name: c.mask(frame) for c in self.criteria}

    def combine_masks(self, frame: pd.DataFrame, masks: Mapping[str, np.ndarray]) -> np.ndarray:
        stacked = np.vstack(list(masks.values())) if masks else np.zeros((0, len(frame)), dtype=bool)
        hits = stacked.sum(axis=0)
        if self.combine == "any":
            ok = hits >= 1
        elif self.combine == "all":
            ok = hits == len(self.criteria)
        else:
            ok = hits >= self.k
        n = pd.to_numeric(frame["n"], errors="coerce").fillna(0).to_numpy(dtype=float)
        return np.asarray(ok & (n >= self.min_n), dtype=bool)


def _profile(criteria: list[tuple[str, list[str]]], min_n: int = 3, k: int = 1) -> dict[str, Any]:
    return {"min_n": min_n, "combine": "any", "k": k,
            "criteria": [{"name": name, "conditions": conditions} for name, conditions in criteria]}


#: Named threshold profiles: the criteria of a level, selected by ``detection.profile`` (docs/signals.md,
#: "Threshold profiles"). ``any`` is the union of the four classical criteria (the shipped rules before profiles).
PROFILES: dict[str, dict[str, Any]] = {
    "evans": _profile([("prr_evans", ["prr >= 2", "prr_chi2 >= 4", "n >= 3"])]),
    "ror": _profile([("ror025", ["ror_lower > 1", "n >= 5"])], min_n=5),
    "mhra": _profile([("mhra", ["eb05 >= 1.8", "ebgm >= 2.5", "n >= 3"])]),
    "eb05": _profile([("mgps", ["eb05 >= 2"])]),
    "bcpnn": _profile([("bcpnn", ["ic025 > 0"])]),
    "any": _profile([
        ("mgps", ["eb05 >= 2"]),
        ("prr_evans", ["prr >= 2", "prr_chi2 >= 4", "n >= 3"]),
        ("ror", ["ror_lower > 1", "n >= 3"]),
        ("bcpnn", ["ic025 > 0"]),
    ], k=2),  # k: used when a file sets combine: at_least
}


class Detection(_Model):
    result_set: Literal["unstratified", "stratified"] = "unstratified"
    products: Literal["dictionary", "all"] | list[str] = "dictionary"
    # A named threshold profile (PROFILES, or one of ``profiles``) giving the rule of every level; a level
    # listed under ``levels`` replaces the profile's rule at that level. Without a profile every level is
    # given under ``levels``.
    profile: str | None = None
    # Profiles of this file, added to (or replacing) the built-in PROFILES.
    profiles: dict[str, LevelRule] = Field(default_factory=dict)
    levels: dict[Literal["pt", "group"], LevelRule] = Field(min_length=1)
    # PTs that are not adverse reactions of a product (the treated disease, its progression, death without a
    # cause, use and product-quality terms): never raised as signals. Matched case-insensitively.
    exclude_events: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _resolve_profile(cls, data: Any) -> Any:
        """Fill ``levels`` from the named profile (levels given explicitly win)."""
        if not isinstance(data, Mapping) or data.get("profile") is None:
            return data
        name = data["profile"]
        own = data.get("profiles") or {}
        known = {**PROFILES, **(own if isinstance(own, Mapping) else {})}
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"unknown detection profile {name!r}; known profiles: {', '.join(sorted(known))}")
        explicit = data.get("levels") or {}
        levels = {level: known[name] for level in LEVELS}
        if isinstance(explicit, Mapping):
            levels.update(explicit)
        return {**data, "levels": levels}


class Escalation(_Model):
    consecutive_unlabelled_runs: int = Field(default=3, ge=1)
    strong: Criterion | None = None


class Reopening(_Model):
    measure: Measure = "eb05"
    factor: float = Field(default=2.0, gt=1.0)


class Withdrawal(_Model):
    """A label-update recommendation is withdrawn when the signal has not met the detection rules in this many
    consecutive runs (a run that does not measure the pair counts as not meeting them)."""

    runs_not_meeting: int = Field(default=1, ge=1)


class LabelSectionRule(_Model):
    """Which label section a recommended update would belong in (recorded with the flag), first match wins:
    ``boxed_warning`` for an event in ``boxed_warning_groups`` (malignancies) or with at least
    ``boxed_warning_death_share`` of its cases fatal; ``warnings_and_precautions`` with at least
    ``warnings_death_share`` of its cases fatal or ``warnings_serious_share`` serious; ``adverse_reactions``
    otherwise. CAR-T reports are mostly serious and often fatal (the disease): the shares are set high."""

    boxed_warning_groups: list[str] = Field(default_factory=lambda: ["secondary_malignancy"])
    boxed_warning_death_share: float = Field(default=0.5, gt=0.0, le=1.0)
    warnings_death_share: float = Field(default=0.2, gt=0.0, le=1.0)
    warnings_serious_share: float = Field(default=0.8, gt=0.0, le=1.0)


class Feedback(_Model):
    jurisdictions: list[Jurisdiction] = Field(default_factory=lambda: list(JURISDICTIONS))
    labelled_sections: list[Section] = Field(default_factory=lambda: list(SECTIONS), min_length=1)
    escalation: Escalation = Field(default_factory=Escalation)
    reopening: Reopening = Field(default_factory=Reopening)
    withdrawal: Withdrawal = Field(default_factory=Withdrawal)
    label_section: LabelSectionRule = Field(default_factory=LabelSectionRule)
    #: event group -> the label section a risk of that group belongs in: an entry in a lower section does not
    #: make it labelled (a signal then asks for the section to be raised)
    required_sections: dict[str, Section] = Field(default_factory=dict)
    #: jurisdiction -> the highest section its labels have (an EU SmPC has no boxed warning): caps the above
    highest_sections: dict[Jurisdiction, Section] = Field(default_factory=dict)


class Opening(_Model):
    """When a tracked finding (an SDR) opens as a signal for a person (``tracked`` -> ``new``). All must hold:

    1. it meets the detection rules in ``persistence`` consecutive runs, or meets ``strong`` in this run;
    2. it brings new cases: its n exceeds the n when it was first tracked (every case is new at first
       detection);
    3. it is unlabelled in at least one judged jurisdiction, or (labelled in every one: a known risk) its
       ``feedback.reopening`` measure reached ``factor`` x its value when it was first tracked, that value
       counted as at least ``known_risk_floor`` (EB05 is a lower bound that rises as cases accumulate: a finding
       first tracked with EB05 0.6 would otherwise "double" on data volume alone).
    """

    persistence: int = Field(default=1, ge=1)
    strong: Criterion | None = None
    known_risk_floor: float = Field(default=2.0, ge=0.0)


class PriorityConfig(_Model):
    weights: dict[Component, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    strength_cap: float = Field(default=16.0, gt=1.0)
    novelty_days: int = Field(default=730, ge=1)
    trend_runs: int = Field(default=4, ge=2)
    trend_cap: float = Field(default=0.5, gt=0.0)

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[Component, float]) -> dict[Component, float]:
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 and not all zero")
        return v


class RuleSet(_Model):
    """The whole of config/signals.yaml."""

    detection: Detection
    opening: Opening = Field(default_factory=Opening)
    feedback: Feedback = Field(default_factory=Feedback)
    priority: PriorityConfig = Field(default_factory=PriorityConfig)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "signals.yaml") -> RuleSet:
        return validated(cls, data, source, "signal rules with 'detection', 'opening', 'feedback', 'priority'")

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        path = Path(path) if path else config_path("signals.yaml")
        return cls.from_mapping(load_yaml(path), str(path))

    def snapshot(self) -> dict[str, Any]:
        """The rules as plain JSON-able data (stored with each run)."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.snapshot(), sort_keys=True).encode()).hexdigest()


def check_results(results: pd.DataFrame) -> None:
    """Raise InputError when the results frame lacks a required column or has a bad level."""
    missing = [c for c in (*PAIR_KEYS, *PAIR_VALUES) if c not in results.columns]
    if missing:
        raise InputError(f"run results lack column(s) {', '.join(missing)}", field=missing[0])
    bad = set(results["level"].astype(str)) - set(LEVELS)
    if bad:
        raise InputError(
            f"run results have unknown level(s) {sorted(bad)}; expected pt or group", field="level"
        )


def select_result_set(results: pd.DataFrame, result_set: str) -> pd.DataFrame:
    """One row per (product, event, level): from ``result_set`` when present, else from the other set."""
    if results.empty:
        return results.copy()
    want = result_set == "stratified"
    frame = results.copy()
    frame["_pref"] = (frame["stratified"].astype(bool) != want).astype(int)
    frame = frame.sort_values(["product", "event", "level", "_pref"], kind="stable")
    frame = frame.drop_duplicates(["product", "event", "level"], keep="first")
    return frame.drop(columns="_pref").reset_index(drop=True)


def evaluate_rules(results: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """The results with two added columns: ``meets`` (bool) and ``criteria_met`` (list of criterion names).

    Rows at a level without rules never meet them. Pure: no I/O.
    """
    frame = results.reset_index(drop=True).copy()
    meets = np.zeros(len(frame), dtype=bool)
    criteria_met: list[list[str]] = [[] for _ in range(len(frame))]
    for level, rule in rules.detection.levels.items():
        idx = np.flatnonzero(frame["level"].astype(str).to_numpy() == level)
        if idx.size == 0:
            continue
        sub = frame.iloc[idx]
        masks = rule.criteria_masks(sub)
        ok = rule.combine_masks(sub, masks)
        meets[idx] = ok
        for j, row in enumerate(idx):
            criteria_met[row] = [name for name, m in masks.items() if m[j]]
    frame["meets"] = meets
    frame["criteria_met"] = criteria_met
    return frame


def describe_detection(values: Mapping[str, Any], rule: LevelRule) -> str:
    """Human-readable reason: which criteria held, with the values."""
    held = [c.describe(values) for c in rule.criteria if c.holds(values)]
    return "; ".join(held) if held else "no criterion held"


__all__ = [
    "JURISDICTIONS",
    "PROFILES",
    "LEVELS",
    "MEASURES",
    "SECTIONS",
    "Condition",
    "Criterion",
    "LevelRule",
    "RuleSet",
    "check_results",
    "describe_detection",
    "evaluate_rules",
    "select_result_set",
]
