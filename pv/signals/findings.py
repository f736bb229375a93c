"""One finding, one row: the signals of one product that describe the same thing at different levels.

A PT signal, the event group that holds it and the parent group (e.g. T-cell lymphoma, Secondary T-cell
malignancy, Secondary malignancy (all)) are three rows of the registry but one finding for a person. For one
product, two signals belong to the same finding when one contains the other:

- a PT signal and a group signal, when the group (nested groups flattened, config/event_groups.yaml) holds the PT;
- two group signals, when the terms of one are all terms of the other (a group within a parent group).

A finding is a connected set of such signals (so two PTs of one group join when the group's own signal is there,
and stay apart when it is not). Its *head* is its outermost member (the group with the most terms, or the PT
itself when it stands alone), which names the finding; its members are listed head first, then the inner groups,
then the PTs, each with its *depth* (how many other members contain it). Findings keep the order of their most
urgent member in the input: callers pass their signals most urgent first (e.g. by priority) and get findings in
that order.

Pure: no database. Works on anything with ``product``, ``event`` and ``level`` (registry signals, signal changes,
rows of a report); ``key`` reads them from other shapes (e.g. dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pv.normalise import EventGroups, normalise_pt

T = TypeVar("T")
Key = Callable[[Any], tuple[str, str, str]]


def attribute_key(item: Any) -> tuple[str, str, str]:
    """(product, event, level) of an object with those attributes."""
    return str(item.product), str(item.event), str(item.level)


def mapping_key(item: Any) -> tuple[str, str, str]:
    """(product, event, level) of a mapping with those keys."""
    return str(item["product"]), str(item["event"]), str(item["level"])


@dataclass(frozen=True)
class Member(Generic[T]):
    """A signal of a finding and its depth beneath the finding's head (0 for the head)."""

    item: T
    depth: int


@dataclass(frozen=True)
class Finding(Generic[T]):
    """The signals of one product that are one finding: ``members[0]`` is the head; ``lead`` is the most urgent
    member (the first of them in the caller's order)."""

    product: str
    title: str
    members: tuple[Member[T], ...]
    lead: T

    @property
    def head(self) -> T:
        return self.members[0].item

    @property
    def items(self) -> list[T]:
        return [m.item for m in self.members]

    def __len__(self) -> int:
        return len(self.members)


def event_title(event: str, level: str, groups: EventGroups) -> str:
    """How an event is named to people: a group by its label, a PT by its spelling in the config when known."""
    if level == "group":
        return groups.labels.get(event, event)
    return groups.display.get(normalise_pt(event), event)


def _terms(event: str, level: str, groups: EventGroups) -> frozenset[str]:
    if level == "group":
        return groups.groups.get(event, frozenset())
    return frozenset({normalise_pt(event)})


def _contains(outer: tuple[str, str], inner: tuple[str, str], groups: EventGroups) -> bool:
    """Whether signal ``outer`` (event, level) contains ``inner``, for one product (strictly, or equal terms)."""
    if outer == inner or outer[1] != "group":
        return False
    outer_terms = _terms(*outer, groups)
    inner_terms = _terms(*inner, groups)
    return bool(inner_terms) and inner_terms <= outer_terms


def group_findings(items: Sequence[T], groups: EventGroups, *, key: Key = attribute_key) -> list[Finding[T]]:
    """Group ``items`` (most urgent first) into findings, in the order of their most urgent member."""
    keys = [key(x) for x in items]
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_product: dict[str, list[int]] = {}
    for i, (product, _, _) in enumerate(keys):
        by_product.setdefault(product, []).append(i)
    contains: dict[int, set[int]] = {i: set() for i in range(len(items))}  # i -> members that contain i
    for indices in by_product.values():
        group_indices = [i for i in indices if keys[i][2] == "group"]
        for g in group_indices:
            for i in indices:
                if i == g or not _contains(keys[g][1:], keys[i][1:], groups):
                    continue
                if keys[i][2] == "group" and _contains(keys[i][1:], keys[g][1:], groups) and i < g:
                    continue  # two groups of the same terms: the first contains the second, not both ways
                contains[i].add(g)
                a, b = find(i), find(g)
                if a != b:
                    parent[max(a, b)] = min(a, b)

    components: dict[int, list[int]] = {}
    for i in range(len(items)):
        components.setdefault(find(i), []).append(i)

    findings = []
    for root in sorted(components, key=lambda r: min(components[r])):
        indices = components[root]
        depth = {i: len(contains[i] & set(indices)) for i in indices}
        ordered = sorted(indices, key=lambda i, depth=depth: (  # type: ignore[misc]
            depth[i], 0 if keys[i][2] == "group" else 1, -len(_terms(keys[i][1], keys[i][2], groups)), i))
        head = ordered[0]
        product, event, level = keys[head]
        findings.append(Finding(
            product=product,
            title=event_title(event, level, groups),
            members=tuple(Member(items[i], depth[i]) for i in ordered),
            lead=items[min(indices)],
        ))
    return findings
