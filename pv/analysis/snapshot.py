"""The configuration snapshot of a run: everything its results depend on besides the data.

A run stores its snapshot as JSON (``runs.config``) and is identified by the sha256 of that JSON
(``runs.config_hash``), so the same data and the same snapshot give the same run. :class:`RunSnapshot` is the
typed form the stages work with.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import pv
from pv.analysis.config import AnalysisConfig, config_hash
from pv.errors import ConfigError
from pv.models.casestore import EventGroupTerm
from pv.normalise import EventGroups, ProductDictionary
from pv.settings import get_settings


@dataclass(frozen=True)
class RunSnapshot:
    """The analysis configuration, the event groups (group -> PTs) and the resolved product lists of the trend
    and of a product-class background, as a run was requested with."""

    analysis: AnalysisConfig
    event_groups: Mapping[str, Sequence[str]]
    trend_products: tuple[str, ...]
    background_products: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The stored form (``runs.config``); its canonical JSON is hashed into ``runs.config_hash``."""
        return {
            "analysis": self.analysis.model_dump(mode="json"),
            "event_groups": {g: list(pts) for g, pts in self.event_groups.items()},
            "trend_products": list(self.trend_products),
            "background_products": list(self.background_products),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "run configuration") -> RunSnapshot:
        return cls(
            analysis=AnalysisConfig.parse(data["analysis"], source=source),
            event_groups={g: tuple(pts) for g, pts in (data.get("event_groups") or {}).items()},
            trend_products=tuple(data.get("trend_products") or ()),
            background_products=tuple(data.get("background_products") or ()),
        )

    @property
    def digest(self) -> str:
        return config_hash(self.to_json())


def take_snapshot(session: Session, cfg: AnalysisConfig, config_dir: Path | None = None) -> RunSnapshot:
    """The snapshot of ``cfg`` now: event groups from the store's ``event_group_terms`` (synced from
    config/event_groups.yaml when empty) and products from config/products.yaml."""
    config_dir = config_dir or get_settings().config_dir
    terms: list[tuple[str, str]] = [
        (g, pt) for g, pt in session.execute(select(EventGroupTerm.group_name, EventGroupTerm.pt)).all()
    ]
    if not terms:
        groups_cfg = EventGroups.load(config_dir / "event_groups.yaml")
        session.add_all(EventGroupTerm(group_name=g, pt=pt) for g, pt in groups_cfg.pairs())
        session.flush()
        terms = list(groups_cfg.pairs())
    groups: dict[str, list[str]] = {}
    for g, pt in sorted(terms):
        groups.setdefault(g, []).append(pt)
    products = ProductDictionary.load(config_dir / "products.yaml").products

    def of_classes(classes: Sequence[str]) -> list[str]:
        return sorted(p for p, spec in products.items() if spec.get("class") in set(classes))

    trend_products = sorted(set(of_classes(cfg.trend.product_classes)) | set(cfg.trend.products))
    background_products: list[str] = []
    if cfg.background.kind == "product_class":
        if not cfg.background.product_class:
            raise ConfigError("analysis.yaml: background.product_class must be set when kind is product_class")
        background_products = of_classes([cfg.background.product_class])
        if not background_products:
            raise ConfigError(f"analysis.yaml: no product has class {cfg.background.product_class!r}")
    return RunSnapshot(analysis=cfg, event_groups={g: tuple(pts) for g, pts in groups.items()},
                       trend_products=tuple(trend_products), background_products=tuple(background_products))


@lru_cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    version = pv.__version__
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(pv.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+{sha}" if sha else version
