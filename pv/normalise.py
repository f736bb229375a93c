"""Normalisation of drug names to products and of reaction terms to PTs and event groups.

Products: ``config/products.yaml`` maps every spelling to one product (INN). A name is matched
case-insensitively after removing bracketed parts and punctuation; when the whole name is not a spelling, a
spelling that appears in it as whole words matches ("KYMRIAH INJECTION"), then the bracketed text is tried
("UNKNOWN (TISAGENLECLEUCEL)"). Names that match nothing are kept verbatim (normalised key) and stay part of
every background.

Event groups: ``config/event_groups.yaml``; groups may include other groups, flattened here.

The YAML loading (:mod:`pv.config`, which brings YAML, pydantic and the settings) is imported by the ``load``
methods only, so that the text functions here (``normalise_pt``, used when counting) import without it: the
``pv disproportionality`` command reads no configuration.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pv.errors import ConfigError

_BRACKETS = re.compile(r"[\(\[\{（][^\)\]\}）]*[\)\]\}）]")
_BRACKET_TEXT = re.compile(r"[\(\[\{（]([^\)\]\}）]*)[\)\]\}）]")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> str:
    """Lower case, punctuation replaced by spaces, single-spaced: 'Axi-Cel.' -> 'axi cel'."""
    return _SPACES.sub(" ", _NON_WORD.sub(" ", _fold(text)).replace("_", " ")).strip()


def compact(text: str) -> str:
    """Lower case with every non-alphanumeric character removed: 'KTE-C19' -> 'ktec19'."""
    return words(text).replace(" ", "")


def strip_brackets(text: str) -> str:
    return _BRACKETS.sub(" ", text)


def drug_key(name: str | None) -> str:
    """The key of an unmapped drug name: brackets removed, upper case, single-spaced ('' when empty)."""
    if not name:
        return ""
    base = words(strip_brackets(name)) or words(name)
    return base.upper()


def normalise_pt(term: str | None) -> str:
    """The matching form of a MedDRA term: NFKC, case-folded, single-spaced."""
    if term is None:
        return ""
    return _SPACES.sub(" ", _fold(term)).strip()


@dataclass(frozen=True)
class ProductDictionary:
    """Spelling -> product lookups built from config/products.yaml."""

    products: Mapping[str, Mapping[str, object]]
    _exact: Mapping[str, str] = field(repr=False)
    _pattern: re.Pattern[str] | None = field(repr=False)
    _by_words: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_mapping(cls, products: Mapping[str, Mapping[str, object]]) -> ProductDictionary:
        exact: dict[str, str] = {}
        by_words: dict[str, str] = {}
        for product, spec in products.items():
            spellings = [product, *list(spec.get("spellings", []) or [])]  # type: ignore[call-overload]
            for spelling in spellings:
                key = compact(str(spelling))
                if not key:
                    continue
                if exact.get(key, product) != product:
                    raise ConfigError(f"products.yaml: spelling {spelling!r} maps to two products")
                exact[key] = product
                by_words[words(str(spelling))] = product
        alts = sorted(by_words, key=len, reverse=True)
        pattern = None
        if alts:
            pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in alts) + r")(?!\w)")
        return cls(products=dict(products), _exact=exact, _pattern=pattern, _by_words=by_words)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ProductDictionary:
        from pv.config import load_section  # YAML, pydantic and the settings: see the module docstring

        return cls.from_mapping(load_section(path, "products.yaml", "products"))

    def _match_one(self, text: str) -> str | None:
        if not text:
            return None
        hit = self._exact.get(compact(strip_brackets(text)))
        if hit:
            return hit
        if self._pattern is not None:
            m = self._pattern.search(words(strip_brackets(text)))
            if m:
                return self._by_words[m.group(1)]
            for inner in _BRACKET_TEXT.findall(text):
                hit = self._exact.get(compact(inner))
                if hit:
                    return hit
                m = self._pattern.search(words(inner))
                if m:
                    return self._by_words[m.group(1)]
        return None

    def match(self, *names: str | None) -> str | None:
        """The product for the first of ``names`` (drugname, prod_ai...) that matches, else None."""
        for name in names:
            if name:
                hit = self._match_one(name)
                if hit:
                    return hit
        return None

    def match_many(self, names: Iterable[str | None]) -> dict[str | None, str | None]:
        """Match each distinct name once (for vectorised use on large tables)."""
        return {name: self.match(name) for name in set(names)}

    def attribute(self, product: str, key: str) -> object:
        return self.products.get(product, {}).get(key)


@dataclass(frozen=True)
class EventGroups:
    """Event groups with nested groups flattened: group -> set of normalised PTs."""

    groups: Mapping[str, frozenset[str]]
    labels: Mapping[str, str]
    display: Mapping[str, str]  # normalised PT -> spelling in the config

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Mapping[str, object]]) -> EventGroups:
        resolved: dict[str, frozenset[str]] = {}
        display: dict[str, str] = {}

        def resolve(name: str, stack: tuple[str, ...]) -> frozenset[str]:
            if name in resolved:
                return resolved[name]
            if name not in spec:
                raise ConfigError(f"event_groups.yaml: group {stack[-1]!r} includes unknown group {name!r}")
            if name in stack:
                cycle = " -> ".join((*stack, name))
                raise ConfigError(f"event_groups.yaml: groups include each other: {cycle}")
            body = spec[name] or {}
            terms = set()
            for term in body.get("terms", []) or []:  # type: ignore[attr-defined]
                key = normalise_pt(str(term))
                display.setdefault(key, str(term))
                terms.add(key)
            for inc in body.get("includes", []) or []:  # type: ignore[attr-defined]
                terms |= resolve(str(inc), (*stack, name))
            resolved[name] = frozenset(terms)
            return resolved[name]

        for name in spec:
            resolve(name, ())
        labels = {name: str((body or {}).get("label", name)) for name, body in spec.items()}
        return cls(groups=resolved, labels=labels, display=display)

    @classmethod
    def load(cls, path: str | Path | None = None) -> EventGroups:
        from pv.config import load_section  # YAML, pydantic and the settings: see the module docstring

        return cls.from_mapping(load_section(path, "event_groups.yaml", "groups"))

    def groups_of(self, pt: str) -> list[str]:
        key = normalise_pt(pt)
        return sorted(g for g, terms in self.groups.items() if key in terms)

    def pairs(self) -> list[tuple[str, str]]:
        """(group, normalised PT) rows for the event_group_terms table."""
        return sorted((g, pt) for g, terms in self.groups.items() for pt in terms)


@lru_cache
def default_products() -> ProductDictionary:
    return ProductDictionary.load()


@lru_cache
def default_event_groups() -> EventGroups:
    return EventGroups.load()
