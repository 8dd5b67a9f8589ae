"""Path attributes as one frozen, interned value per distinct set.

Routes share attribute sets (a full table has about one set per ten prefixes),
so every set is interned: ``intern(attrs)`` returns the one shared instance.
Equality and hashing are by value, so an interned set can key dictionaries
(e.g. the per-peer export cache and the UPDATE packer's buckets).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace
from enum import IntEnum
from operator import attrgetter
from typing import Any

from rib.prefix import IPAddress


class Origin(IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


ORIGIN_NAMES = {Origin.IGP: "igp", Origin.EGP: "egp", Origin.INCOMPLETE: "incomplete"}
ORIGIN_CODES = {"i": Origin.IGP, "e": Origin.EGP, "?": Origin.INCOMPLETE}


class SegType(IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


AsPath = tuple[tuple[int, tuple[int, ...]], ...]
"""AS_PATH as segments: ((segment type, (asn, ...)), ...); 4-octet ASNs throughout."""


@dataclass(frozen=True, slots=True)
class PathAttrs:
    origin: int = Origin.IGP
    as_path: AsPath = ()
    next_hop: IPAddress | None = None
    # IPv6 link-local next hop from MP_REACH (RFC 2545), when the peer sent one.
    next_hop_ll: IPAddress | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: tuple[int, str] | None = None
    communities: tuple[int, ...] = ()
    ext_communities: tuple[bytes, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    # Attributes we do not interpret, kept for pass-through: (flags, type code, value).
    unknown: tuple[tuple[int, int, bytes], ...] = ()

    # --- derived values used by the decision process -------------------------------------

    def as_path_len(self) -> int:
        """Length for best-path selection: an AS_SET counts 1, confederation segments 0."""
        n = 0
        for seg_type, asns in self.as_path:
            if seg_type == SegType.AS_SEQUENCE:
                n += len(asns)
            elif seg_type == SegType.AS_SET:
                n += 1
        return n

    def neighbor_as(self) -> int | None:
        """The AS that sent the route to us (first AS of the leading AS_SEQUENCE)."""
        for seg_type, asns in self.as_path:
            if seg_type == SegType.AS_SEQUENCE and asns:
                return asns[0]
            if seg_type in (SegType.AS_CONFED_SEQUENCE, SegType.AS_CONFED_SET):
                continue
            return None
        return None

    def as_path_flat(self) -> list[int]:
        out: list[int] = []
        for _t, asns in self.as_path:
            out.extend(asns)
        return out

    def contains_as(self, asn: int) -> bool:
        return any(asn in asns for _t, asns in self.as_path)

    def prepend(self, asn: int, times: int = 1) -> PathAttrs:
        """A copy with ``asn`` prepended to the leading AS_SEQUENCE (new one if needed)."""
        path = self.as_path
        add = (asn,) * times
        if path and path[0][0] == SegType.AS_SEQUENCE and len(path[0][1]) + times <= 255:
            new_path = ((SegType.AS_SEQUENCE, add + path[0][1]), *path[1:])
        else:
            new_path = ((SegType.AS_SEQUENCE, add), *path)
        return intern(replace(self, as_path=new_path))

    def with_(self, **changes: Any) -> PathAttrs:
        # dataclasses.replace() re-validates every field and the frozen __init__ goes through
        # object.__setattr__, each several times the cost; policies call this once per
        # attribute set they change (a full table: ~100k times).
        return intern(_with(self, changes))

    def with_changes(self, changes: dict[str, Any]) -> PathAttrs:
        """``with_`` from a dict of changes (a policy's setters fill one): no keyword repacking."""
        return intern(_with(self, changes))

    def __hash__(self) -> int:
        # As the generated hash, but the next hop by its integer: IPv4Address.__hash__ is Python
        # code (hex() of the int), a third of the cost of hashing a new set in intern().
        nh = self.next_hop
        return hash((
            self.origin,
            self.as_path,
            None if nh is None else ip_int(nh),
            self.next_hop_ll,
            self.med,
            self.local_pref,
            self.atomic_aggregate,
            self.aggregator,
            self.communities,
            self.ext_communities,
            self.large_communities,
            self.originator_id,
            self.cluster_list,
            self.unknown,
        ))  # fmt: skip


# The integer of an IPv4Address/IPv6Address (its slot), read in C; int() would call __int__.
ip_int: Any = attrgetter("_ip")


_FIELDS = tuple(f.name for f in fields(PathAttrs))


def _with_slots(attrs: PathAttrs, changes: dict[str, Any]) -> PathAttrs:
    """A copy of ``attrs`` with ``changes``, filled slot by slot (the portable way)."""
    unknown = changes.keys() - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown attributes: {', '.join(sorted(unknown))}")
    new = object.__new__(PathAttrs)
    for name in _FIELDS:
        getattr(PathAttrs, name).__set__(new, changes[name] if name in changes else getattr(attrs, name))
    return new


def _building_class() -> type | None:
    """A plain class with PathAttrs's slots whose instances take ordinary attribute stores,
    then become PathAttrs by ``__class__`` assignment (allowed between layout-compatible
    classes): a copy at about a third of the frozen __init__'s cost. None if the layout is
    not the expected one or the assignment is refused (``_with_slots`` is used then)."""
    if PathAttrs.__slots__ != _FIELDS:
        return None
    ns: dict[str, Any] = {"_cls": PathAttrs}
    params = ", ".join(_FIELDS)
    stores = "".join(f"        self.{n} = {n}\n" for n in _FIELDS)
    exec(
        f"class _Building:\n    __slots__ = {_FIELDS!r}\n"
        f"    def __init__(self, {params}):\n{stores}        self.__class__ = _cls\n",
        ns,
    )
    building: type = ns["_Building"]
    try:
        probe = PathAttrs(med=5, communities=(1,))
        built = building(*(7 if n == "local_pref" else getattr(probe, n) for n in _FIELDS))
        if type(built) is not PathAttrs or built != PathAttrs(med=5, communities=(1,), local_pref=7):
            return None
    except TypeError:
        return None
    return building


_BUILDING = _building_class()
# Per tuple of changed names (a policy's setters make few distinct ones): straight-line code
# that builds the copy with the new values in place, no per-field test.
_builders: dict[tuple[str, ...], Any] = {}


def _builder(names: tuple[str, ...]) -> Any:
    unknown = set(names) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown attributes: {', '.join(sorted(unknown))}")
    values = {n: f"v{i}" for i, n in enumerate(names)}
    args = ", ".join(values.get(n, f"a.{n}") for n in _FIELDS)
    ns: dict[str, Any] = {"_B": _BUILDING}
    exec(f"def build(a, {', '.join(values.values())}):\n    return _B({args})\n", ns)
    if len(_builders) >= 1024:
        _builders.clear()
    fn = _builders[names] = ns["build"]
    return fn


def _with(attrs: PathAttrs, changes: dict[str, Any]) -> PathAttrs:
    """A copy of ``attrs`` with ``changes`` (not interned)."""
    if _BUILDING is None:
        return _with_slots(attrs, changes)
    names = tuple(changes)
    build = _builders.get(names)
    if build is None:
        build = _builder(names)
    return build(attrs, *changes.values())


# One shared instance per distinct set: the dict maps each set to itself. Sets no route uses
# any more are swept when the table has doubled since the last sweep (amortised O(1) per
# intern); a weak-value dictionary does the same at several times the cost per lookup.
_interned: dict[PathAttrs, PathAttrs] = {}
_sweep_at = 4096
# Next hop -> how many interned sets carry it. A next hop the kernel now resolves differently
# that no set carries is used by no path: the RIB skips looking at its prefixes (rib/reselect.py).
# Kept per distinct set, not per route: it changes only when a set is new or swept.
# Keyed by the address's integer (an IPv4 and an IPv6 address may share one: "in use" errs safe).
_next_hops: dict[int, int] = {}


def intern(attrs: PathAttrs) -> PathAttrs:
    """Return the shared instance equal to ``attrs`` (registering it if new)."""
    # One lookup: get() then a store would hash a new set twice (a 14-field hash each time).
    existing = _interned.setdefault(attrs, attrs)
    if existing is not attrs:
        return existing
    nh = attrs.next_hop
    if nh is not None:
        ip = ip_int(nh)
        _next_hops[ip] = _next_hops.get(ip, 0) + 1
    if len(_interned) >= _sweep_at:
        sweep()
    return attrs


def sweep() -> int:
    """Forget sets referenced only by the intern table. Returns how many were dropped."""
    global _sweep_at
    # getrefcount sees the dict's key and value references plus its own argument.
    dead = [a for a in _interned if sys.getrefcount(a) <= 4]
    for a in dead:
        del _interned[a]
        nh = a.next_hop
        if nh is not None:
            ip = ip_int(nh)
            left = _next_hops[ip] - 1
            if left:
                _next_hops[ip] = left
            else:
                del _next_hops[ip]
    _sweep_at = max(4096, 2 * len(_interned))
    return len(dead)


def interned_count() -> int:
    return len(_interned)


def next_hop_in_use(nh: IPAddress) -> bool:
    """Whether some interned set (so possibly some path) has ``nh`` as its next hop."""
    return ip_int(nh) in _next_hops


def format_community(c: int) -> str:
    return f"{c >> 16}:{c & 0xFFFF}"


def parse_community(text: str) -> int:
    """``65010:100`` or a well-known name. Raises ValueError."""
    named = {
        "no_export": 0xFFFFFF01,
        "no_advertise": 0xFFFFFF02,
        "no_export_subconfed": 0xFFFFFF03,
        "no_peer": 0xFFFFFF04,
        "blackhole": 0xFFFF029A,
        "graceful_shutdown": 0xFFFF0000,
    }
    low = text.strip().lower()
    if low in named:
        return named[low]
    hi, sep, lo = text.partition(":")
    if not sep:
        raise ValueError(f"community {text!r} is not ASN:VALUE")
    a, b = int(hi), int(lo)
    if not (0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF):
        raise ValueError(f"community {text!r}: both halves must be 0..65535")
    return (a << 16) | b


def parse_large_community(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"large community {text!r} is not GA:LD1:LD2")
    a, b, c = (int(p) for p in parts)
    if not all(0 <= v <= 0xFFFFFFFF for v in (a, b, c)):
        raise ValueError(f"large community {text!r}: each part must be 0..4294967295")
    return (a, b, c)
