"""Import/export filters: `all`, `none`, and named policies of ordered terms.

A filter maps (family, prefix, attributes, source) to new attributes or None (rejected).
Filters whose result does not depend on the prefix say so (``per_prefix = False``), so a
channel can cache the result per interned attribute set instead of per route.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from rib.attrs import PathAttrs, parse_community
from rib.prefix import Afi, PrefixKey, key_to_network, parse_prefix
from rib.route import Source


class Filter(Protocol):
    @property
    def per_prefix(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def apply(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source) -> PathAttrs | None: ...


@dataclass(slots=True, frozen=True)
class AcceptAll:
    per_prefix: bool = False
    name: str = "all"

    def apply(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source) -> PathAttrs | None:
        return attrs


@dataclass(slots=True, frozen=True)
class RejectAll:
    per_prefix: bool = False
    name: str = "none"

    def apply(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source) -> PathAttrs | None:
        return None


ACCEPT_ALL = AcceptAll()
REJECT_ALL = RejectAll()


@dataclass(slots=True, frozen=True)
class PrefixMatch:
    """``10.0.0.0/8 le 24``: the prefix itself or more specific ones within [ge, le]."""

    afi: Afi
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    ge: int
    le: int

    @classmethod
    def parse(cls, text: str) -> PrefixMatch:
        words = text.split()
        if not words:
            raise ValueError("empty prefix")
        afi, key = parse_prefix(words[0])
        net = key_to_network(afi, key)
        rest = words[1:]
        if len(rest) % 2:
            raise ValueError(f"{text!r}: expected PREFIX [ge N] [le N]")
        bounds: dict[str, int] = {}
        for kw, val in zip(rest[::2], rest[1::2], strict=True):
            if kw not in ("ge", "le"):
                raise ValueError(f"{text!r}: unknown word {kw!r} (ge or le)")
            n = int(val)
            if not net.prefixlen <= n <= afi.max_plen:
                raise ValueError(f"{text!r}: {kw} {n} outside {net.prefixlen}..{afi.max_plen}")
            bounds[kw] = n
        # As in FRR prefix lists: `ge` alone reaches to the longest prefix, no bounds = exact.
        ge = bounds.get("ge", net.prefixlen)
        le = bounds.get("le", afi.max_plen if "ge" in bounds else net.prefixlen)
        if ge > le:
            raise ValueError(f"{text!r}: ge {ge} is greater than le {le}")
        return cls(afi, net, ge, le)

    def matches(self, afi: Afi, prefix: PrefixKey) -> bool:
        if afi != self.afi or not self.ge <= prefix[0] <= self.le:
            return False
        return key_to_network(afi, prefix).subnet_of(self.network)  # type: ignore[arg-type]


@dataclass(slots=True)
class Term:
    prefixes: list[PrefixMatch] = field(default_factory=list)
    communities: list[int] = field(default_factory=list)
    action: str = "accept"
    local_pref: int | None = None
    med: int | None = None
    community_add: tuple[int, ...] = ()

    def matches(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs) -> bool:
        if self.prefixes and not any(m.matches(afi, prefix) for m in self.prefixes):
            return False
        return not (self.communities and not any(c in attrs.communities for c in self.communities))

    def modify(self, attrs: PathAttrs) -> PathAttrs:
        changes: dict[str, object] = {}
        if self.local_pref is not None:
            changes["local_pref"] = self.local_pref
        if self.med is not None:
            changes["med"] = self.med
        if self.community_add:
            merged = tuple(dict.fromkeys(attrs.communities + self.community_add))
            changes["communities"] = merged
        return attrs.with_(**changes) if changes else attrs


MATCH_KEYS = {"prefix", "community"}
SET_KEYS = {"local_pref", "med", "community_add"}


@dataclass(slots=True)
class Policy:
    """Ordered terms; the first matching term with accept/reject decides; no match = reject."""

    name: str
    terms: list[Term]
    per_prefix: bool = True

    def apply(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source) -> PathAttrs | None:
        for term in self.terms:
            if not term.matches(afi, prefix, attrs):
                continue
            if term.action == "reject":
                return None
            attrs = term.modify(attrs)
            if term.action == "accept":
                return attrs
        return None


def compile_term(match: dict[str, object], action: str, sets: dict[str, object]) -> Term:
    """Build a term from its config form. Raises ValueError naming the bad key."""
    term = Term(action=action)
    for key, value in match.items():
        values = value if isinstance(value, list) else [value]
        if key == "prefix":
            term.prefixes = [PrefixMatch.parse(str(v)) for v in values]
        elif key == "community":
            term.communities = [parse_community(str(v)) for v in values]
        else:
            raise ValueError(f"match.{key}: unknown match (known: {', '.join(sorted(MATCH_KEYS))})")
    for key, value in sets.items():
        if key == "local_pref":
            term.local_pref = int(value)  # type: ignore[call-overload]
        elif key == "med":
            term.med = int(value)  # type: ignore[call-overload]
        elif key == "community_add":
            values = value if isinstance(value, list) else [value]
            term.community_add = tuple(parse_community(str(v)) for v in values)
        else:
            raise ValueError(f"set.{key}: unknown action (known: {', '.join(sorted(SET_KEYS))})")
    return term
