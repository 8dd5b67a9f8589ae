"""Import/export filters: `all`, `none`, and named policies of ordered terms.

A filter maps (family, prefix, attributes, source, VRF) to new attributes or None
(rejected). Filters whose result does not depend on the prefix say so
(``per_prefix = False``), so a channel can cache the result per interned attribute set
(and source and family) instead of per route. The match and set keys live in
``policy.match`` and ``policy.actions``; the config loader validates with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from policy.actions import SET_KEYS, SETTERS, Setter
from policy.match import MATCH_KEYS, MATCHERS, Pred, PrefixMatch, PrefixSet
from rib.attrs import PathAttrs, ip_int
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
    "PrefixPlan",
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
    """Whether a next hop is the placeholder `set.next_hop = "self"` leaves (the unspecified
    address of its family), tested on the address's integer: no Python-level __eq__ per set."""
    return not ip_int(addr)


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
    _pset: PrefixSet | None = None  # ``prefixes`` compiled, on first use

    @property
    def prefix_set(self) -> PrefixSet:
        pset = self._pset
        if pset is None:
            pset = self._pset = PrefixSet(self.prefixes)
        return pset

    def matches(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, source: Source, vrf: str = "") -> bool:
        if self.prefixes and not self.prefix_set.contains(afi, prefix):
            return False
        for p in self.preds:  # noqa: SIM110 - not matches_attrs(): one call less per term and set
            if not p(afi, prefix, attrs, source, vrf):
                return False
        return True

    def matches_attrs(self, afi: Afi, attrs: PathAttrs, source: Source, vrf: str = "") -> bool:
        """Whether every match other than the prefix list holds (none of them reads the prefix)."""
        for p in self.preds:  # noqa: SIM110 - a loop costs less than all() over a generator
            if not p(afi, b"", attrs, source, vrf):
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
        out = attrs.with_changes(changes)
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

    def plan(
        self,
        afi: Afi,
        attrs: PathAttrs,
        source: Source,
        vrf: str = "",
        finish: Callable[[PathAttrs], PathAttrs] | None = None,
    ) -> Outcome:
        """The policy for one attribute set (and source, family, VRF), with everything but the
        prefix lists decided: the result itself when no prefix list is left to test, else a
        ``PrefixPlan`` that tests only those per prefix. ``finish`` is applied to every
        accepted result. A channel builds this once per attribute set, so a prefix-list policy
        costs a few dict probes per route instead of a run through every term.
        """
        built: dict[tuple[int, int], tuple[PathAttrs, Outcome]] = {}
        try:
            return self._plan(0, afi, attrs, source, vrf, finish, built)
        except _TooBig:
            return _PerPrefix(self, afi, attrs, source, vrf, finish)

    def _plan(
        self,
        start: int,
        afi: Afi,
        attrs: PathAttrs,
        source: Source,
        vrf: str,
        finish: Callable[[PathAttrs], PathAttrs] | None,
        built: dict[tuple[int, int], tuple[PathAttrs, Outcome]],
    ) -> Outcome:
        # Sub-plans (the terms from ``start`` on, for an attribute set) are shared, and their
        # number bounded: `next` terms with prefix lists branch on every one of them. Each
        # entry holds its attribute set, so the id in its key is not reused during the build.
        key = (start, id(attrs))
        hit = built.get(key)
        if hit is not None:
            return hit[1]
        if len(built) >= _PLAN_MAX:
            raise _TooBig
        steps: list[tuple[PrefixSet, Outcome]] = []
        result: Outcome = None  # no term matched: rejected
        terms = self.terms
        for i in range(start, len(terms)):
            term = terms[i]
            if not term.matches_attrs(afi, attrs, source, vrf):
                continue
            outcome: Outcome
            if term.action == "reject":
                outcome = None
            elif term.action == "accept":
                out = term.modify(attrs)
                outcome = finish(out) if finish is not None else out
            else:  # next: the terms after it see the changed attributes
                outcome = self._plan(i + 1, afi, term.modify(attrs), source, vrf, finish, built)
            if not term.prefixes:
                result = outcome
                break
            steps.append((term.prefix_set, outcome))
        while steps and steps[-1][1] is result:
            steps.pop()  # a list whose match ends as no match does decides nothing
        plan: Outcome = PrefixPlan(tuple(steps), result) if steps else result
        built[key] = (attrs, plan)
        return plan


class PrefixPlan:
    """What is left of a policy per prefix once the rest is decided for one attribute set:
    the prefix lists to test in order, each with the outcome when it matches, and the outcome
    when none does. An outcome is attributes (accepted), None (rejected) or another plan
    (a `next` term matched: the terms after it, with the changed attributes)."""

    __slots__ = ("default", "steps")

    def __init__(self, steps: tuple[tuple[PrefixSet, Outcome], ...], default: Outcome) -> None:
        self.steps = steps
        self.default = default

    def partition(
        self, afi: Afi, prefixes: list[PrefixKey]
    ) -> list[tuple[PathAttrs | None, list[PrefixKey]]]:
        """``prefixes`` grouped by their result, in the order each result first comes up."""
        steps = self.steps
        if type(self) is PrefixPlan and len(steps) == 1:
            pset, then = steps[0]
            default = self.default
            if not isinstance(then, PrefixPlan) and not isinstance(default, PrefixPlan):
                # One list, final outcomes (a bogon filter): one probe per prefix, no grouping.
                hit = pset.matching(afi, prefixes)
                if not hit:
                    return [(default, prefixes)]
                if len(hit) == len(prefixes):
                    return [(then, prefixes)]
                held = set(hit)
                miss = [p for p in prefixes if p not in held]
                pairs = [(then, hit), (default, miss)]
                return pairs if prefixes[0] in held else pairs[::-1]
        groups: dict[int, tuple[PathAttrs | None, list[PrefixKey]]] = {}
        result = self.result
        for prefix in prefixes:
            out = result(afi, prefix)
            group = groups.get(id(out))
            if group is None:
                groups[id(out)] = (out, [prefix])
            else:
                group[1].append(prefix)
        return list(groups.values())

    def result(self, afi: Afi, prefix: PrefixKey) -> PathAttrs | None:
        plan = self
        while True:
            outcome = plan.default
            for pset, then in plan.steps:
                if pset.contains(afi, prefix):
                    outcome = then
                    break
            if type(outcome) is PrefixPlan:
                plan = outcome
                continue
            if type(outcome) is _PerPrefix:
                return outcome.result(afi, prefix)
            return outcome  # type: ignore[return-value]


class _PerPrefix(PrefixPlan):
    """A policy too branchy to plan (many `next` terms with prefix lists): run per prefix."""

    __slots__ = ("afi", "attrs", "finish", "policy", "source", "vrf")

    def __init__(
        self,
        policy: Policy,
        afi: Afi,
        attrs: PathAttrs,
        source: Source,
        vrf: str,
        finish: Callable[[PathAttrs], PathAttrs] | None,
    ) -> None:
        super().__init__((), None)
        self.policy, self.afi, self.attrs, self.source, self.vrf = policy, afi, attrs, source, vrf
        self.finish = finish

    def result(self, afi: Afi, prefix: PrefixKey) -> PathAttrs | None:
        out = self.policy.apply(afi, prefix, self.attrs, self.source, self.vrf)
        return out if out is None or self.finish is None else self.finish(out)


# A policy's result for one attribute set: accepted attributes, None (rejected), or a plan.
Outcome = PathAttrs | PrefixPlan | None
_PLAN_MAX = 256  # sub-plans per attribute set before falling back to evaluation per prefix


class _TooBig(Exception):
    pass


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
