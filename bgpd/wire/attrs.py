"""Path attribute table (RFC 4271 5, RFC 4760, RFC 1997, RFC 4360, RFC 6793, RFC 8092) and encoding.

Decoding lives in :mod:`bgpd.wire.update` because it is interleaved with the RFC 7606
error handling; this module holds the type codes, flag rules and the attribute encoder.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from typing import Final

from bgpd.wire.messages import AS_TRANS
from rib.attrs import AsPath, PathAttrs, SegType
from rib.prefix import IPAddress

# Attribute flags.
OPTIONAL: Final = 0x80
TRANSITIVE: Final = 0x40
PARTIAL: Final = 0x20
EXTENDED: Final = 0x10

# Attribute type codes.
ORIGIN: Final = 1
AS_PATH: Final = 2
NEXT_HOP: Final = 3
MED: Final = 4
LOCAL_PREF: Final = 5
ATOMIC_AGGREGATE: Final = 6
AGGREGATOR: Final = 7
COMMUNITIES: Final = 8
ORIGINATOR_ID: Final = 9
CLUSTER_LIST: Final = 10
MP_REACH_NLRI: Final = 14
MP_UNREACH_NLRI: Final = 15
EXT_COMMUNITIES: Final = 16
AS4_PATH: Final = 17
AS4_AGGREGATOR: Final = 18
LARGE_COMMUNITY: Final = 32

ATTR_NAMES: dict[int, str] = {
    ORIGIN: "ORIGIN",
    AS_PATH: "AS_PATH",
    NEXT_HOP: "NEXT_HOP",
    MED: "MULTI_EXIT_DISC",
    LOCAL_PREF: "LOCAL_PREF",
    ATOMIC_AGGREGATE: "ATOMIC_AGGREGATE",
    AGGREGATOR: "AGGREGATOR",
    COMMUNITIES: "COMMUNITIES",
    ORIGINATOR_ID: "ORIGINATOR_ID",
    CLUSTER_LIST: "CLUSTER_LIST",
    MP_REACH_NLRI: "MP_REACH_NLRI",
    MP_UNREACH_NLRI: "MP_UNREACH_NLRI",
    EXT_COMMUNITIES: "EXTENDED_COMMUNITIES",
    AS4_PATH: "AS4_PATH",
    AS4_AGGREGATOR: "AS4_AGGREGATOR",
    LARGE_COMMUNITY: "LARGE_COMMUNITY",
    22: "PMSI_TUNNEL",
    23: "TUNNEL_ENCAPSULATION",
    25: "IPV6_EXT_COMMUNITIES",
    26: "AIGP",
    29: "BGP-LS",
    35: "OTC",
    40: "PREFIX_SID",
    128: "ATTR_SET",
}


def attr_name(code: int) -> str:
    return ATTR_NAMES.get(code, f"attribute {code}")


WELL_KNOWN: Final = TRANSITIVE
OPT_NON_TRANSITIVE: Final = OPTIONAL
OPT_TRANSITIVE: Final = OPTIONAL | TRANSITIVE

# The Optional and Transitive bits each known attribute must carry (RFC 7606 3.c checks only
# those two). Two values no flags byte can match mark the exceptions: 0xFF an attribute we do
# not know, 0xFE one checked separately (MP_REACH_NLRI/MP_UNREACH_NLRI).
UNKNOWN_FLAGS: Final = 0xFF
SEPARATE_FLAGS: Final = 0xFE
_expected = bytearray([UNKNOWN_FLAGS]) * 256
for _code, _flags in {
    ORIGIN: WELL_KNOWN,
    AS_PATH: WELL_KNOWN,
    NEXT_HOP: WELL_KNOWN,
    MED: OPT_NON_TRANSITIVE,
    LOCAL_PREF: WELL_KNOWN,
    ATOMIC_AGGREGATE: WELL_KNOWN,
    AGGREGATOR: OPT_TRANSITIVE,
    COMMUNITIES: OPT_TRANSITIVE,
    ORIGINATOR_ID: OPT_NON_TRANSITIVE,
    CLUSTER_LIST: OPT_NON_TRANSITIVE,
    MP_REACH_NLRI: OPT_NON_TRANSITIVE,
    MP_UNREACH_NLRI: OPT_NON_TRANSITIVE,
    EXT_COMMUNITIES: OPT_TRANSITIVE,
    AS4_PATH: OPT_TRANSITIVE,
    AS4_AGGREGATOR: OPT_TRANSITIVE,
    LARGE_COMMUNITY: OPT_TRANSITIVE,
}.items():
    _expected[_code] = _flags
_expected[MP_REACH_NLRI] = _expected[MP_UNREACH_NLRI] = SEPARATE_FLAGS
EXPECTED_FLAGS: Final = bytes(_expected)

# IANA-assigned optional attributes we carry but do not interpret: (Optional, Transitive) bits
# they must have. With those they are passed on (transitive, Partial set) or dropped
# (non-transitive) like any unknown attribute; with other flags they are corrupted and are
# discarded rather than reset the session or leak onwards.
UNINTERPRETED_FLAGS: Final[dict[int, int]] = {
    22: OPT_TRANSITIVE,  # PMSI_TUNNEL (RFC 6514)
    23: OPT_TRANSITIVE,  # TUNNEL_ENCAPSULATION (RFC 9012)
    25: OPT_TRANSITIVE,  # IPv6 Address Specific Extended Community (RFC 5701)
    26: OPT_NON_TRANSITIVE,  # AIGP (RFC 7311)
    29: OPT_NON_TRANSITIVE,  # BGP-LS Attribute (RFC 9552)
    35: OPT_TRANSITIVE,  # Only to Customer (RFC 9234)
    40: OPT_TRANSITIVE,  # BGP Prefix-SID (RFC 8669)
    128: OPT_TRANSITIVE,  # ATTR_SET (RFC 6368)
}


# --- next hop objects ---------------------------------------------------------------------------


class HashedIPv4Address(ipaddress.IPv4Address):
    """An IPv4Address with its hash computed once.

    ``ipaddress`` computes the hash in Python on every call (about as slow as hashing the rest
    of a PathAttrs together), and interning hashes every new attribute set twice. Equal to, and
    hashing like, a plain IPv4Address, so interned sets stay shared with configured ones.
    """

    __slots__ = ("_hash",)

    def __init__(self, address: object) -> None:
        super().__init__(address)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"IPv4Address('{self}')"


class HashedIPv6Address(ipaddress.IPv6Address):
    """IPv6 counterpart of :class:`HashedIPv4Address`."""

    __slots__ = ("_hash",)

    def __init__(self, address: object) -> None:
        super().__init__(address)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"IPv6Address('{self}')"


# --- encoding -----------------------------------------------------------------------------------

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_AGGR4 = struct.Struct(">I4s")
_AGGR2 = struct.Struct(">H4s")
_LARGE = struct.Struct(">III")
_ARRAYS32 = [struct.Struct(f">{n}I") for n in range(256)]
_ARRAYS16 = [struct.Struct(f">{n}H") for n in range(256)]
_ORIGIN_ATTRS = [bytes((WELL_KNOWN, ORIGIN, 1, o)) for o in range(256)]
_MED_HDR = bytes((OPT_NON_TRANSITIVE, MED, 4))
_LOCAL_PREF_HDR = bytes((WELL_KNOWN, LOCAL_PREF, 4))
_NEXT_HOP_HDR = bytes((WELL_KNOWN, NEXT_HOP, 4))
_ORIGINATOR_HDR = bytes((OPT_NON_TRANSITIVE, ORIGINATOR_ID, 4))
_ATOMIC_ATTR = bytes((WELL_KNOWN, ATOMIC_AGGREGATE, 0))
# COMMUNITIES with n < 64 values: flags, code, length and the values in one pack.
_COMMUNITIES_HDRS = [struct.Struct(f">BBB{n}I") for n in range(64)]


def attr_bytes(flags: int, code: int, value: bytes) -> bytes:
    """One attribute TLV; the Extended Length bit is set exactly when the value needs it."""
    n = len(value)
    if n > 255:
        return bytes((flags | EXTENDED, code)) + _U16.pack(n) + value
    return bytes((flags & ~EXTENDED, code, n)) + value


def _u32s(values: tuple[int, ...]) -> bytes:
    n = len(values)
    return _ARRAYS32[n].pack(*values) if n < 256 else struct.pack(f">{n}I", *values)


def encode_as_path(path: AsPath, four_octet: bool) -> bytes:
    """Segments of at most 255 ASNs; ASNs above 65535 become AS_TRANS in 2-octet form."""
    out = bytearray()
    for seg_type, asns in path:
        for i in range(0, len(asns), 255):
            chunk = asns[i : i + 255] if len(asns) > 255 else asns
            out.append(seg_type)
            out.append(len(chunk))
            if four_octet:
                out += _ARRAYS32[len(chunk)].pack(*chunk)
            else:
                out += _ARRAYS16[len(chunk)].pack(*(a if a <= 0xFFFF else AS_TRANS for a in chunk))
    return bytes(out)


def _needs_as4(path: AsPath) -> bool:
    return any(a > 0xFFFF for _t, asns in path for a in asns)


# ORIGINATOR_ID and CLUSTER_LIST hold router and cluster ids: a handful of distinct values,
# parsed once each instead of twice per reflected attribute set (~1 s per 100k sets).
@functools.lru_cache(maxsize=1024)
def _ipv4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ipv4_str(b: bytes) -> str:
    """Dotted quad of 4 bytes (what socket.inet_ntoa does, without importing socket here)."""
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def encode_attrs(attrs: PathAttrs, four_octet: bool, next_hop: bool) -> bytes:
    """The attribute block for ``attrs``, ordered by type code, without MP_REACH/MP_UNREACH.

    ``next_hop`` says whether to write the NEXT_HOP attribute (IPv4 NLRI in the NLRI field).
    """
    path = attrs.as_path
    if four_octet and len(path) == 1 and len(path[0][1]) <= 63:
        # The usual single short AS_SEQUENCE: one pack, one-byte attribute length.
        seg_type, asns = path[0]
        n = len(asns)
        as_path = bytes((WELL_KNOWN, AS_PATH, 2 + 4 * n, seg_type, n)) + _ARRAYS32[n].pack(*asns)
    else:
        as_path = attr_bytes(WELL_KNOWN, AS_PATH, encode_as_path(path, four_octet))
    # Encoded attributes, appended in type-code order; unknown ones are merged in at the end.
    parts = [_ORIGIN_ATTRS[attrs.origin], as_path]
    if next_hop:
        nh = attrs.next_hop
        if nh is None or nh.version != 4:
            raise ValueError(f"IPv4 NLRI need an IPv4 next hop, got {nh}")
        parts.append(_NEXT_HOP_HDR + nh.packed)
    if attrs.med is not None:
        parts.append(_MED_HDR + _U32.pack(attrs.med))
    if attrs.local_pref is not None:
        parts.append(_LOCAL_PREF_HDR + _U32.pack(attrs.local_pref))
    if attrs.atomic_aggregate:
        parts.append(_ATOMIC_ATTR)
    as4_aggregator = b""
    if attrs.aggregator is not None:
        asn, ip = attrs.aggregator
        if four_octet:
            value = _AGGR4.pack(asn, _ipv4(ip))
        else:
            value = _AGGR2.pack(asn if asn <= 0xFFFF else AS_TRANS, _ipv4(ip))
            if asn > 0xFFFF:
                as4_aggregator = _AGGR4.pack(asn, _ipv4(ip))
        parts.append(attr_bytes(OPT_TRANSITIVE, AGGREGATOR, value))
    if attrs.communities:
        comms = attrs.communities
        n = len(comms)
        if n < 64:
            # Fits a one-byte length: header and values in one pack.
            parts.append(_COMMUNITIES_HDRS[n].pack(OPT_TRANSITIVE, COMMUNITIES, 4 * n, *comms))
        else:
            parts.append(attr_bytes(OPT_TRANSITIVE, COMMUNITIES, _u32s(comms)))
    if attrs.originator_id is not None:
        parts.append(_ORIGINATOR_HDR + _ipv4(attrs.originator_id))
    if attrs.cluster_list:
        value = b"".join([_ipv4(c) for c in attrs.cluster_list])
        parts.append(attr_bytes(OPT_NON_TRANSITIVE, CLUSTER_LIST, value))
    if attrs.ext_communities:
        value = b"".join(attrs.ext_communities)
        parts.append(attr_bytes(OPT_TRANSITIVE, EXT_COMMUNITIES, value))
    if not four_octet:
        # RFC 6793 4.2.2: the real path for NEW speakers behind us, without confederation segments.
        if _needs_as4(path):
            as4 = tuple(seg for seg in path if seg[0] in (SegType.AS_SEQUENCE, SegType.AS_SET))
            parts.append(attr_bytes(OPT_TRANSITIVE, AS4_PATH, encode_as_path(as4, True)))
        if as4_aggregator:
            parts.append(attr_bytes(OPT_TRANSITIVE, AS4_AGGREGATOR, as4_aggregator))
    if attrs.large_communities:
        value = b"".join([_LARGE.pack(*lc) for lc in attrs.large_communities])
        parts.append(attr_bytes(OPT_TRANSITIVE, LARGE_COMMUNITY, value))
    if attrs.unknown:
        for flags, code, value in attrs.unknown:
            parts.append(attr_bytes(flags, code, value))
        # Byte 1 of an encoded attribute is its type code. Stable sort: only the unknown ones
        # can be out of order.
        parts.sort(key=_type_code)
    return b"".join(parts)


def _type_code(encoded: bytes) -> int:
    return encoded[1]


def next_hop_bytes(nh: IPAddress | None, ll: IPAddress | None, v6_form: bool) -> bytes:
    """The MP_REACH next hop: 4 bytes (IPv4), 16 (IPv6 or IPv4-mapped), or 32 with a link-local."""
    if nh is None:
        raise ValueError("an announcement needs a next hop")
    if not v6_form and nh.version == 4:
        return nh.packed
    glob = nh.packed if nh.version == 6 else b"\x00" * 10 + b"\xff\xff" + nh.packed
    if ll is not None:
        return glob + ll.packed
    return glob
