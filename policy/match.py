"""Policy matches: each config key compiles to a predicate over one route.

A route as a policy sees it: family, prefix, attributes, the source it came from and the
VRF of the channel applying the policy. Keys: prefix, family, community, large_community,
ext_community, as_path (regex), as_path_contains, as_path_length, origin_as, origin,
next_hop, neighbor, source, vrf. A list means "any of"; several keys in one term must all
match.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from rib.attrs import ORIGIN_NAMES, PathAttrs, parse_community
from rib.prefix import AFI_BY_NAME, Afi, PrefixKey, key_to_network, parse_prefix
from rib.route import Source, SourceKind

Pred = Callable[[Afi, PrefixKey, PathAttrs, Source, str], bool]
ORIGIN_BY_NAME = {v: int(k) for k, v in ORIGIN_NAMES.items()}
SOURCE_NAMES = ("ebgp", "ibgp", "local")  # SourceKind labels


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
        # Compare the leading network bits as integers: no address objects per route.
        body = prefix[1:]
        value = int.from_bytes(body, "big") << (8 * (afi.addr_len - len(body)))
        shift = afi.max_plen - self.network.prefixlen
        return value >> shift == int(self.network.network_address) >> shift


class PrefixSet:
    """The entries of one prefix list, for a test per route that costs a few set probes.

    Per family and route length L, the distinct network lengths n of the entries whose
    [ge, le] holds L, each with the set of their networks' leading n bits: a route matches
    when its leading n bits are in one of those sets. A /24 against a bogon list is one or two
    probes, however long the list. The bits are taken from the whole route key read as one
    integer (length octet first), so each set holds ``L << n | bits``: no slicing per route.
    """

    __slots__ = ("_by_afi",)

    def __init__(self, entries: list[PrefixMatch]) -> None:
        # Indexed by the family's number (an Afi indexes a list in C; hashing it for a dict
        # would run Enum.__hash__, Python code), then by route length: (shift, keys).
        self._by_afi: list[list[tuple[tuple[int, frozenset[int]], ...]] | None] = [None] * (max(Afi) + 1)
        for afi in {m.afi for m in entries}:
            per_len: list[tuple[tuple[int, frozenset[int]], ...]] = []
            for plen in range(afi.max_plen + 1):
                nets: dict[int, set[int]] = {}
                for m in entries:
                    if m.afi is afi and m.ge <= plen <= m.le:
                        n = m.network.prefixlen
                        bits = int(m.network.network_address) >> (afi.max_plen - n)
                        nets.setdefault(n, set()).add(plen << n | bits)
                width = 8 * ((plen + 7) // 8)  # the key's address bits: its significant octets
                per_len.append(tuple((width - n, frozenset(keys)) for n, keys in sorted(nets.items())))
            self._by_afi[afi] = per_len

    def table(self, afi: Afi) -> list[tuple[tuple[int, frozenset[int]], ...]] | None:
        """Per route length, the (shift, keys) to probe: ``int.from_bytes(route key) >> shift``."""
        return self._by_afi[afi]

    def contains(self, afi: Afi, prefix: PrefixKey) -> bool:
        per_len = self._by_afi[afi]
        if per_len is None:
            return False
        cands = per_len[prefix[0]]
        if not cands:
            return False
        value = int.from_bytes(prefix, "big")
        for shift, keys in cands:  # noqa: SIM110 - a loop costs less than any() over a generator
            if value >> shift in keys:
                return True
        return False

    def matching(self, afi: Afi, prefixes: list[PrefixKey]) -> list[PrefixKey]:
        """The prefixes of ``prefixes`` that match (``contains`` inlined: one UPDATE's NLRI)."""
        per_len = self._by_afi[afi]
        if per_len is None:
            return []
        hit: list[PrefixKey] = []
        from_bytes = int.from_bytes
        for prefix in prefixes:
            cands = per_len[prefix[0]]
            if cands:
                value = from_bytes(prefix, "big")
                for shift, keys in cands:
                    if value >> shift in keys:
                        hit.append(prefix)
                        break
        return hit


def _values(value: object) -> list[object]:
    vals = value if isinstance(value, list) else [value]
    if not vals:
        raise ValueError("must not be empty")
    return vals


def _text(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


def _int(v: object, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
    if isinstance(v, bool):
        raise ValueError(f"expected an integer, got {v!r}")
    try:
        n = int(v)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"expected an integer, got {v!r}") from None
    if not lo <= n <= hi:
        raise ValueError(f"{n} is out of range ({lo}..{hi})")
    return n


# --- community patterns ---------------------------------------------------------------------------


def community_pattern(text: str) -> Callable[[int], bool]:
    """``65010:100``, a well-known name, or with ``*`` for either half (``65010:*``)."""
    hi, sep, lo = text.partition(":")
    if sep and "*" in (hi, lo):
        h = None if hi == "*" else _int(hi, 0, 0xFFFF)
        low = None if lo == "*" else _int(lo, 0, 0xFFFF)
        return lambda c: (h is None or c >> 16 == h) and (low is None or c & 0xFFFF == low)
    value = parse_community(text)
    return lambda c: c == value


def large_community_pattern(text: str) -> Callable[[tuple[int, int, int]], bool]:
    """``GA:LD1:LD2`` where any part may be ``*``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"large community {text!r} is not GA:LD1:LD2")
    want = tuple(None if p == "*" else _int(p) for p in parts)
    return lambda lc: all(w is None or w == x for w, x in zip(want, lc, strict=True))


_EXT_SUBTYPES = {"rt": 0x02, "soo": 0x03, "ro": 0x03}


def parse_ext_community(text: str) -> bytes:
    """``rt:65000:100``, ``soo:65000:1``, ``rt:192.0.2.1:7``, ``rt:4200000000:7`` (RFC 4360/5668)."""
    kind, sep, rest = text.partition(":")
    admin, sep2, num = rest.rpartition(":")
    if not sep or not sep2 or kind not in _EXT_SUBTYPES:
        raise ValueError(f"extended community {text!r} is not rt|soo:ADMIN:NUMBER")
    sub = _EXT_SUBTYPES[kind]
    if "." in admin:
        ip = ipaddress.IPv4Address(admin)
        return struct.pack("!BB4sH", 0x01, sub, ip.packed, _int(num, 0, 0xFFFF))
    asn = _int(admin)
    if asn <= 0xFFFF:
        return struct.pack("!BBHI", 0x00, sub, asn, _int(num))
    return struct.pack("!BBIH", 0x02, sub, asn, _int(num, 0, 0xFFFF))


# --- one compiler per key ------------------------------------------------------------------------


def _m_family(value: object, local_asn: int) -> Pred:
    afis = set()
    for v in _values(value):
        name = _text(v)
        if name not in AFI_BY_NAME:
            raise ValueError(f'"{name}" is not ipv4 or ipv6')
        afis.add(AFI_BY_NAME[name])
    return lambda afi, p, a, s, vrf: afi in afis


def _m_community(value: object, local_asn: int) -> Pred:
    texts = [_text(v) for v in _values(value)]
    pats = [community_pattern(t) for t in texts if "*" in t]
    exact = frozenset(parse_community(t) for t in texts if "*" not in t)
    if not pats:  # the usual case: a set test in C, no Python call per community
        return lambda afi, p, a, s, vrf: not exact.isdisjoint(a.communities)
    return lambda afi, p, a, s, vrf: (
        not exact.isdisjoint(a.communities) or any(pat(c) for c in a.communities for pat in pats)
    )


def _m_large_community(value: object, local_asn: int) -> Pred:
    pats = [large_community_pattern(_text(v)) for v in _values(value)]
    return lambda afi, p, a, s, vrf: any(pat(c) for c in a.large_communities for pat in pats)


def _m_ext_community(value: object, local_asn: int) -> Pred:
    want = {parse_ext_community(_text(v)) for v in _values(value)}
    return lambda afi, p, a, s, vrf: any(c in want for c in a.ext_communities)


def as_path_regex(text: str) -> re.Pattern[str]:
    """A regex over the AS path written as ASNs separated by single spaces ("65001 65002").

    ``_`` stands for a boundary (start, end or a space), as in Cisco and FRR: ``_65001_``.
    """
    try:
        return re.compile(text.replace("_", r"(?:^|$| )"))
    except re.error as e:
        raise ValueError(f"{text!r} is not a valid regular expression: {e}") from None


def _m_as_path(value: object, local_asn: int) -> Pred:
    pats = [as_path_regex(_text(v)) for v in _values(value)]

    def pred(afi: Afi, p: PrefixKey, a: PathAttrs, s: Source, vrf: str) -> bool:
        text = " ".join(map(str, a.as_path_flat()))
        return any(r.search(text) for r in pats)

    return pred


def _m_as_path_contains(value: object, local_asn: int) -> Pred:
    asns = {_int(v) for v in _values(value)}
    return lambda afi, p, a, s, vrf: any(x in asns for _t, seg in a.as_path for x in seg)


def parse_length_range(v: object) -> tuple[int, int]:
    """``3`` (exactly), ``"2..5"``, ``"..3"`` or ``"2.."``."""
    if isinstance(v, int) and not isinstance(v, bool):
        return _int(v, 0, 10_000), _int(v, 0, 10_000)
    text = _text(v)
    lo, sep, hi = text.partition("..")
    if not sep:
        n = _int(text, 0, 10_000)
        return n, n
    a = _int(lo, 0, 10_000) if lo else 0
    b = _int(hi, 0, 10_000) if hi else 10_000
    if a > b:
        raise ValueError(f'"{text}": {a} is greater than {b}')
    return a, b


def _m_as_path_length(value: object, local_asn: int) -> Pred:
    lo, hi = parse_length_range(value)
    return lambda afi, p, a, s, vrf: lo <= a.as_path_len() <= hi


def _origin_as(a: PathAttrs, local_asn: int) -> int:
    flat = a.as_path_flat()
    return flat[-1] if flat else local_asn  # an empty path originates here


def _m_origin_as(value: object, local_asn: int) -> Pred:
    asns = {_int(v) for v in _values(value)}
    return lambda afi, p, a, s, vrf: _origin_as(a, local_asn) in asns


def _m_origin(value: object, local_asn: int) -> Pred:
    codes = set()
    for v in _values(value):
        name = _text(v)
        if name not in ORIGIN_BY_NAME:
            raise ValueError(f'"{name}" is not one of igp, egp, incomplete')
        codes.add(ORIGIN_BY_NAME[name])
    return lambda afi, p, a, s, vrf: a.origin in codes


def _networks(value: object) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for v in _values(value):
        text = _text(v)
        try:
            out.append(ipaddress.ip_network(text, strict=True))
        except ValueError:
            raise ValueError(f'"{text}" is not an address or prefix') from None
    return out


def _m_next_hop(value: object, local_asn: int) -> Pred:
    nets = _networks(value)
    return lambda afi, p, a, s, vrf: a.next_hop is not None and any(a.next_hop in n for n in nets)


def _m_neighbor(value: object, local_asn: int) -> Pred:
    nets = _networks(value)
    return lambda afi, p, a, s, vrf: s.peer is not None and any(s.peer in n for n in nets)


def _m_source(value: object, local_asn: int) -> Pred:
    kinds = set()
    for v in _values(value):
        name = _text(v)
        if name not in SOURCE_NAMES:
            raise ValueError(f'"{name}" is not one of {", ".join(SOURCE_NAMES)}')
        kinds.add(int(SourceKind[name.upper()]))
    return lambda afi, p, a, s, vrf: int(s.kind) in kinds


def _m_vrf(value: object, local_asn: int) -> Pred:
    names = {_text(v) for v in _values(value)}
    return lambda afi, p, a, s, vrf: vrf in names


# `prefix` is compiled by the term itself (it makes the policy depend on the prefix).
MATCHERS: dict[str, Callable[[object, int], Pred]] = {
    "family": _m_family,
    "community": _m_community,
    "large_community": _m_large_community,
    "ext_community": _m_ext_community,
    "as_path": _m_as_path,
    "as_path_contains": _m_as_path_contains,
    "as_path_length": _m_as_path_length,
    "origin_as": _m_origin_as,
    "origin": _m_origin,
    "next_hop": _m_next_hop,
    "neighbor": _m_neighbor,
    "source": _m_source,
    "vrf": _m_vrf,
}
MATCH_KEYS = frozenset({"prefix", *MATCHERS})
