"""Import/export filters: `all`, `none`, and named policies of ordered terms.

A filter maps (family, prefix, attributes, source, VRF) to new attributes or None
(rejected). Filters whose result does not depend on the prefix say so
(``per_prefix = False``), so a channel can cache the result per interned attribute set
(and source and family) instead of per route. The match and set keys live in
``policy.match`` and ``policy.actions``; the config loader validates with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from policy.actions import SELF_V4, SELF_V6, SET_KEYS, SETTERS, Setter
from policy.match import MATCH_KEYS, MATCHERS, Pred, PrefixMatch
from rib.attrs import PathAttrs
from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Source

__all__ = [
    "ACCEPT_ALL",
    "ACTIONS",
    "MATCH_KEYS",
    "REJECT_ALL",
    "SET_KEYS",
    "AcceptAll",
    "Filter",
    "Policy",
    "PrefixMatch",
    "RejectAll",
    "Term",
    "check_match",
    "check_set",
    "compile_term",
    "is_self_next_hop",
]

ACTIONS = ("accept", "reject", "next")


class Filter(Protocol):
    @property
    def per_prefix(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def apply(
        self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = ""
    ) -> PathAttrs | None: ...


@dataclass(slots=True, frozen=True)
class AcceptAll:
    per_prefix: bool = False
    name: str = "all"

    def apply(
        self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = ""
    ) -> PathAttrs | None:
        return attrs


@dataclass(slots=True, frozen=True)
class RejectAll:
    per_prefix: bool = False
    name: str = "none"

    def apply(
        self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = ""
    ) -> PathAttrs | None:
        return None


ACCEPT_ALL = AcceptAll()
REJECT_ALL = RejectAll()


def is_self_next_hop(addr: IPAddress) -> bool:
    """Whether a next hop is the placeholder `set.next_hop = "self"` leaves."""
    return addr in (SELF_V4, SELF_V6)


@dataclass(slots=True)
class Term:
    prefixes: list[PrefixMatch] = field(default_factory=list)
    preds: list[Pred] = field(default_factory=list)
    action: str = "accept"
    setters: list[Setter] = field(default_factory=list)
    # Input attrs id -> (input, output): a per-prefix policy changes the same attribute set
    # once, not once per prefix. Holding the input keeps its id from being reused. Off
    # (``memo`` False, set by Policy) where the channel caches per attribute set already.
    _done: dict[int, tuple[PathAttrs, PathAttrs]] = field(default_factory=dict)
    memo: bool = True

    def matches(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = "") -> bool:
        if self.prefixes and not any(m.matches(afi, prefix) for m in self.prefixes):
            return False
        for p in self.preds:  # noqa: SIM110 - a loop costs less than all() over a generator
            if not p(afi, prefix, attrs, source, vrf):
                return False
        return True

    def modify(self, attrs: PathAttrs) -> PathAttrs:
        if not self.setters:
            return attrs
        memo = self.memo
        if memo:
            hit = self._done.get(id(attrs))
            if hit is not None:
                return hit[1]
        changes: dict[str, Any] = {}
        for s in self.setters:
            s(attrs, changes)
        out = attrs.with_(**changes)
        if memo:
            if len(self._done) > 100_000:
                self._done.clear()
            self._done[id(attrs)] = (attrs, out)
        return out


@dataclass(slots=True)
class Policy:
    """Ordered terms; the first matching term with accept/reject decides; no match = reject."""

    name: str
    terms: list[Term]
    per_prefix: bool = field(init=False)

    def __post_init__(self) -> None:
        # Only prefix matches look at the prefix: every other key depends on the attributes,
        # the source, the family and the VRF, which the channel caches key on.
        self.per_prefix = any(t.prefixes for t in self.terms)
        for t in self.terms:
            t.memo = self.per_prefix

    def apply(
        self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = ""
    ) -> PathAttrs | None:
        for term in self.terms:
            if not term.matches(afi, prefix, attrs, source, vrf):
                continue
            if term.action == "reject":
                return None
            attrs = term.modify(attrs)
            if term.action == "accept":
                return attrs
        return None


def check_match(key: str, value: object, local_asn: int = 0) -> None:
    """Validate one `match.KEY = value`. Raises ValueError with the reason (the key not included)."""
    if key == "prefix":
        for v in value if isinstance(value, list) else [value]:
            PrefixMatch.parse(str(v))
    elif key in MATCHERS:
        MATCHERS[key](value, local_asn)
    else:
        raise KeyError(key)


def check_set(key: str, value: object, local_asn: int = 0) -> None:
    """Validate one `set.KEY = value` (as ``check_match``)."""
    if key not in SETTERS:
        raise KeyError(key)
    SETTERS[key](value, local_asn)


def compile_term(match: dict[str, object], action: str, sets: dict[str, object], local_asn: int = 0) -> Term:
    """Build a term from its config form. Raises ValueError naming the bad key."""
    if action not in ACTIONS:
        raise ValueError(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
    term = Term(action=action)
    for key, value in match.items():
        try:
            if key == "prefix":
                values = value if isinstance(value, list) else [value]
                term.prefixes = [PrefixMatch.parse(str(v)) for v in values]
            elif key in MATCHERS:
                term.preds.append(MATCHERS[key](value, local_asn))
            else:
                raise ValueError(f"match.{key}: unknown match (known: {', '.join(sorted(MATCH_KEYS))})")
        except ValueError as e:
            if str(e).startswith(f"match.{key}"):
                raise
            raise ValueError(f"match.{key}: {e}") from None
    for key, value in sets.items():
        if key not in SETTERS:
            raise ValueError(f"set.{key}: unknown action (known: {', '.join(sorted(SET_KEYS))})")
        try:
            term.setters.append(SETTERS[key](value, local_asn))
        except ValueError as e:
            raise ValueError(f"set.{key}: {e}") from None
    return term
