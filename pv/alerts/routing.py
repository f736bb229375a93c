"""Who gets what in the alert digests: ``config/alerts.yaml`` routes per product and per event group.

A route matches a change when its ``products`` contain the change's product (or ``*``), its ``groups``
intersect the groups of the change's event (or are ``*``) and its ``kinds`` contain the change's kind. The
groups of a PT-level signal are those listing its PT (:meth:`pv.normalise.EventGroups.groups_of`); a
group-level signal belongs to its own group and to every group whose terms include all of its terms (so a
route on ``secondary_malignancy`` also receives ``malignancy_t_cell`` signals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pv.config import config_path, load_yaml
from pv.errors import ConfigError
from pv.normalise import EventGroups, ProductDictionary
from pv.signals.changes import ChangeKind, SignalChange

CHANGE_KINDS: tuple[str, ...] = get_args(ChangeKind)
#: The actionable kinds a route alerts on unless it says otherwise (``created`` only for a new signal that is not a
#: known risk: see :func:`pv.alerts.digest.actionable`).
DEFAULT_KINDS: tuple[str, ...] = ("opened", "created", "escalated", "label_update_recommended",
                                  "label_update_withdrawn", "reopened")
DEFAULT_MAX_FINDINGS = 30
ANY = "*"
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_TOP_KEYS = {"subject_prefix", "kinds", "max_findings", "routes"}
_ROUTE_KEYS = {"name", "products", "groups", "kinds", "recipients"}


@dataclass(frozen=True)
class Route:
    name: str
    products: frozenset[str]  # INNs, or {"*"}
    groups: frozenset[str]  # event groups, or {"*"}
    kinds: frozenset[str]
    recipients: tuple[str, ...]

    def matches(self, change: SignalChange, groups: Sequence[str]) -> bool:
        if change.kind not in self.kinds:
            return False
        if ANY not in self.products and change.product not in self.products:
            return False
        return ANY in self.groups or bool(self.groups.intersection(groups))


@dataclass(frozen=True)
class AlertRouting:
    """The validated routing configuration, with the event groups it routes by."""

    routes: tuple[Route, ...]
    event_groups: EventGroups
    subject_prefix: str = "[pv]"
    #: the product dictionary the routes were checked against (brand names for the digests)
    products: ProductDictionary | None = None
    #: findings listed in full in one digest; the rest are counted, with where to see them
    max_findings: int = DEFAULT_MAX_FINDINGS

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        event_groups: EventGroups | None = None,
        products: ProductDictionary | None = None,
    ) -> AlertRouting:
        """Read and validate ``alerts.yaml`` (default: ``<config_dir>/alerts.yaml``).

        Products and event groups are checked against ``products.yaml`` and ``event_groups.yaml`` of the
        same folder unless given.
        """
        path = Path(path) if path is not None else config_path("alerts.yaml")
        folder = path.parent
        if event_groups is None:
            event_groups = EventGroups.load(folder / "event_groups.yaml")
        if products is None:
            products = ProductDictionary.load(folder / "products.yaml")
        data = load_yaml(path)
        return cls.from_mapping(data, event_groups=event_groups, products=products, source=str(path))

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        *,
        event_groups: EventGroups,
        products: ProductDictionary,
        source: str = "alerts.yaml",
    ) -> AlertRouting:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping with 'routes'")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
        prefix = data.get("subject_prefix", "[pv]")
        if not isinstance(prefix, str):
            raise ConfigError(f"{source}: subject_prefix: expected a string, got {prefix!r}")
        default_kinds = _kinds(data.get("kinds", list(DEFAULT_KINDS)), f"{source}: kinds")
        max_findings = data.get("max_findings", DEFAULT_MAX_FINDINGS)
        if isinstance(max_findings, bool) or not isinstance(max_findings, int) or max_findings < 1:
            raise ConfigError(f"{source}: max_findings: expected a whole number >= 1, got {max_findings!r}")
        raw_routes = data.get("routes")
        if not isinstance(raw_routes, list) or not raw_routes:
            raise ConfigError(f"{source}: routes: expected a non-empty list of routes")
        routes = []
        names: set[str] = set()
        for i, raw in enumerate(raw_routes):
            where = f"{source}: routes[{i}]"
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
            name = str(raw.get("name", f"route{i + 1}"))
            where = f"{where} ({name!r})"
            if name in names:
                raise ConfigError(f"{where}: name: route name used twice")
            names.add(name)
            unknown = set(raw) - _ROUTE_KEYS
            if unknown:
                allowed = sorted(_ROUTE_KEYS)
                raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {allowed})")
            prods = _known(raw.get("products", [ANY]), products.products, f"{where}: products",
                           "product(s)", "an INN from products.yaml")
            groups = _known(raw.get("groups", [ANY]), event_groups.groups, f"{where}: groups",
                            "event group(s)", "a group from event_groups.yaml")
            kinds = _kinds(raw["kinds"], f"{where}: kinds") if "kinds" in raw else default_kinds
            recipients = _recipients(raw.get("recipients"), f"{where}: recipients")
            routes.append(Route(name, frozenset(prods), frozenset(groups), kinds, recipients))
        return cls(routes=tuple(routes), event_groups=event_groups, subject_prefix=prefix, products=products,
                   max_findings=max_findings)

    def groups_of(self, change: SignalChange) -> list[str]:
        """The event groups the change's event belongs to (see the module docstring)."""
        if change.level == "group":
            own = self.event_groups.groups.get(change.event)
            if own is None:
                return [change.event]
            within = {g for g, terms in self.event_groups.groups.items() if own and own <= terms}
            return sorted(within | {change.event})
        return self.event_groups.groups_of(change.event)

    def routes_for(self, change: SignalChange) -> list[Route]:
        groups = self.groups_of(change)
        return [r for r in self.routes if r.matches(change, groups)]

    def recipients_for(self, change: SignalChange) -> list[str]:
        """Every recipient of the matching routes, once each (first spelling kept), in route order."""
        return list(self.recipient_routes(change))

    def recipient_routes(self, change: SignalChange) -> dict[str, list[str]]:
        """Each recipient of the matching routes (first spelling kept, in route order) -> the names of the routes
        that send it the change."""
        spelled: dict[str, str] = {}
        out: dict[str, list[str]] = {}
        for route in self.routes_for(change):
            for r in route.recipients:
                key = spelled.setdefault(r.casefold(), r)
                names = out.setdefault(key, [])
                if route.name not in names:
                    names.append(route.name)
        return out


def _known(value: Any, known: Iterable[str], where: str, what: str, use: str) -> list[str]:
    """The names of ``value`` (see :func:`_names`), each '*' or one of ``known``."""
    names = _names(value, where)
    known = set(known)
    bad = sorted(n for n in names if n != ANY and n not in known)
    if bad:
        raise ConfigError(f"{where}: unknown {what} {bad} (use {use} or '*'; known: {sorted(known)})")
    return names


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list, got {value!r}")
    out = []
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where}: expected names (strings), got {v!r}")
        out.append(v.strip())
    return out


def _kinds(value: Any, where: str) -> frozenset[str]:
    kinds = _names(value, where)
    bad = sorted(k for k in kinds if k not in CHANGE_KINDS)
    if bad:
        raise ConfigError(f"{where}: unknown change kind(s) {bad} (known: {list(CHANGE_KINDS)})")
    return frozenset(kinds)


def _recipients(value: Any, where: str) -> tuple[str, ...]:
    addrs = _names(value, where) if value is not None else []
    if not addrs:
        raise ConfigError(f"{where}: expected a non-empty list of email addresses")
    bad = [a for a in addrs if not _EMAIL.match(a)]
    if bad:
        raise ConfigError(f"{where}: not an email address: {bad}")
    return tuple(addrs)
