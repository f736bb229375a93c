"""Loading the YAML configuration under ``config/`` (settings.config_dir)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pv.errors import ConfigError
from pv.settings import get_settings


def config_path(name: str, config_dir: Path | None = None) -> Path:
    return (config_dir or get_settings().config_dir) / name


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


def load_section(path: str | Path | None, name: str, key: str) -> dict[str, Any]:
    """The mapping under ``key`` of the YAML file ``path`` (default: ``name`` in the configuration folder)."""
    data = load_yaml(path or config_path(name))
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ConfigError(f"{path or name}: expected a mapping under {key!r}")
    return data[key]


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, source: str, what: str) -> M:
    """``data`` (parsed YAML) validated as ``model``; a ConfigError names the source and every offending key,
    e.g. ``analysis.yaml: invalid analysis configuration: roles.1: Input should be 'PS', ...``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping ({what})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: invalid {what}: {problems}") from exc
