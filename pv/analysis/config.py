"""The analysis configuration (config/analysis.yaml): validated, snapshotted into each run with its hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pv.config import config_path, load_yaml, validated

ROLES = ("PS", "SS", "C", "I")
LEVELS = ("pt", "group")
STRATA = ("sex", "age_band", "report_year")


Level = Literal["pt", "group"]
Role = Literal["PS", "SS", "C", "I"]


def _levels() -> list[Level]:
    return ["pt", "group"]


def _roles() -> list[Role]:
    return ["PS", "SS"]


def _groups() -> list[Level]:
    return ["group"]


def _bands() -> list[float]:
    return [0.0, 18.0, 45.0, 65.0, 75.0]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrataConfig(_Strict):
    by: list[Literal["sex", "age_band", "report_year"]] = Field(default_factory=list)
    levels: list[Literal["pt", "group"]] = Field(default_factory=list)


class BackgroundConfig(_Strict):
    kind: Literal["all", "indication", "product_class"] = "all"
    indications: list[str] = Field(default_factory=list)
    product_class: str | None = None


class TrendConfig(_Strict):
    product_classes: list[str] = Field(default_factory=lambda: ["car_t"])
    products: list[str] = Field(default_factory=list)
    levels: list[Level] = Field(default_factory=_groups)
    pts: list[str] = Field(default_factory=list)
    since: dt.date = dt.date(2017, 1, 1)


class AnalysisConfig(_Strict):
    roles: list[Role] = Field(default_factory=_roles)
    levels: list[Level] = Field(default_factory=_levels)
    strata: StrataConfig = Field(default_factory=StrataConfig)
    age_bands: list[float] = Field(default_factory=_bands)
    min_count: int = Field(default=1, ge=1)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    trend: TrendConfig = Field(default_factory=TrendConfig)
    shards: int = Field(default=4, ge=1, le=256)
    mgps_fit: Literal["per_run", "per_table"] = "per_table"
    mgps_subsample: int | None = Field(default=20_000, ge=1000)

    @field_validator("roles", "levels")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one value")
        return sorted(set(v), key=v.index)

    @field_validator("age_bands")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("age band edges must increase")
        return v

    def analyses(self) -> list[tuple[str, bool]]:
        """(level, stratified) tables this configuration computes."""
        out: list[tuple[str, bool]] = [(level, False) for level in self.levels]
        if self.strata.by:
            out += [(level, True) for level in self.levels if level in self.strata.levels]
        return out

    @classmethod
    def load(cls, path: str | Path | None = None) -> AnalysisConfig:
        path = Path(path) if path else config_path("analysis.yaml")
        data = load_yaml(path) or {}
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: Any, source: str = "analysis configuration") -> AnalysisConfig:
        return validated(cls, data, source, "analysis configuration")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def config_hash(snapshot: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a configuration snapshot."""
    return hashlib.sha256(canonical_json(snapshot).encode("utf-8")).hexdigest()
