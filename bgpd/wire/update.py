"""UPDATE messages (RFC 4271 4.3, RFC 4760, RFC 6793) with RFC 7606 error handling, sans-IO.

Decoding speed comes from caching: the raw path-attribute block is the cache key, so the
attributes shared by the prefixes of a message are decoded and interned once per distinct
block, and a later message with the same block only has its NLRI sliced. Prefix keys are the
NLRI bytes themselves (rib.prefix), so a key is one slice.

Error policy (RFC 7606), in short:

* session reset (BgpError): unparseable message structure (withdrawn/attribute lengths overrun
  the message, or an attribute overruns the block when no NLRI can be located); any error in
  MP_REACH_NLRI/MP_UNREACH_NLRI (flags, length, next hop length, duplicates); a bad prefix
  in any NLRI field (3, 10); an unrecognized well-known attribute (3, 2).
* treat-as-withdraw (announced prefixes move to ``Update.withdraw``): bad ORIGIN, AS_PATH,
  NEXT_HOP, MED, LOCAL_PREF (iBGP), COMMUNITIES, EXT_COMMUNITIES, LARGE_COMMUNITY,
  ORIGINATOR_ID, CLUSTER_LIST; flag errors on known attributes; missing mandatory
  attributes; AS_CONFED segments from an eBGP peer; an attribute overrunning the block while
  the NLRI can still be located.
* attribute discard: bad AGGREGATOR, ATOMIC_AGGREGATE, AS4_PATH, AS4_AGGREGATOR; LOCAL_PREF,
  ORIGINATOR_ID, CLUSTER_LIST from an eBGP peer; repeated attributes (first one kept);
  unknown optional non-transitive attributes (silently: that is normal BGP behaviour).

Every repair is described in ``Update.errors``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

from bgpd.wire.attrs import (
    AGGREGATOR,
    AS4_AGGREGATOR,
    AS4_PATH,
    AS_PATH,
    ATOMIC_AGGREGATE,
    CLUSTER_LIST,
    COMMUNITIES,
    EXPECTED_FLAGS,
    EXT_COMMUNITIES,
    EXTENDED,
    LARGE_COMMUNITY,
    LOCAL_PREF,
    MED,
    MP_REACH_NLRI,
    MP_UNREACH_NLRI,
    NEXT_HOP,
    OPT_NON_TRANSITIVE,
    OPT_TRANSITIVE,
    OPTIONAL,
    ORIGIN,
    ORIGINATOR_ID,
    PARTIAL,
    SEPARATE_FLAGS,
    TRANSITIVE,
    UNINTERPRETED_FLAGS,
    UNKNOWN_FLAGS,
    HashedIPv4Address,
    HashedIPv6Address,
    attr_name,
    encode_attrs,
    ipv4_str,
    next_hop_bytes,
)
from bgpd.wire.errors import BgpError, ErrCode, UpdateSub
from bgpd.wire.framing import encode_message
from bgpd.wire.messages import AS_TRANS, HEADER_LEN, MAX_MESSAGE_LEN, MsgType, Update
from rib.attrs import AsPath, PathAttrs, SegType, intern
from rib.prefix import Afi, IPAddress, PrefixKey, Safi, make_key

_IPV4 = Afi.IPV4
_IPV6 = Afi.IPV6

# Struct objects for n 2-/4-octet integers, built once (struct's own format cache is small).
_ARRAYS32 = [struct.Struct(f">{n}I") for n in range(256)]
_ARRAYS16 = [struct.Struct(f">{n}H") for n in range(256)]
_U32_FROM = struct.Struct(">I").unpack_from
_LARGE = struct.Struct(">III")
_AGGR4 = struct.Struct(">I4s")
_AGGR2 = struct.Struct(">H4s")

# Bytes a prefix of each length takes in NLRI; a length too long for the family steps far
# past any message so that the parse loop ends with an error.
_STEP4 = tuple(1 + ((p + 7) >> 3) if p <= 32 else 1 << 20 for p in range(256))
_STEP6 = tuple(1 + ((p + 7) >> 3) if p <= 128 else 1 << 20 for p in range(256))

_CONFED = (SegType.AS_CONFED_SEQUENCE, SegType.AS_CONFED_SET)

# One int object per ASN and community value, shared by every decoded set (and session) that
# carries it: a full table repeats few values (~75k ASNs) in ~1M positions, and each int of
# 2**30 or more is its own 32-byte object. Bounded: cleared when full (held values stay shared).
_INTS: dict[int, int] = {}
_INTS_MAX = 65_536
_share_int = _INTS.setdefault


def _shared_ints(values: tuple[int, ...]) -> tuple[int, ...]:
    if len(_INTS) >= _INTS_MAX:
        _INTS.clear()
    return tuple(map(_share_int, values, values))


def _shared_path(path: AsPath) -> AsPath:
    return tuple([(t, _shared_ints(asns)) for t, asns in path])


def _attrs_constructor() -> Callable[..., PathAttrs]:
    """A positional PathAttrs constructor about three times as fast as the dataclass one.

    A frozen dataclass assigns each of its 14 fields through ``object.__setattr__``, which is
    the largest single cost of decoding a new attribute set. Instead a plain class with the
    same slots (so the same memory layout) fills them with ordinary attribute stores, then the
    object becomes a PathAttrs by ``__class__`` assignment, which CPython allows between
    layout-compatible classes. The result is an ordinary PathAttrs: equal, equally hashed,
    frozen. If the layout is not what we expect, or the swap is refused, the slower
    descriptor-based constructor is used instead.
    """
    names = [f.name for f in dataclass_fields(PathAttrs)]
    if tuple(names) != PathAttrs.__slots__:  # a layout we do not know: use the real one
        return PathAttrs
    params = ", ".join(names)
    ns: dict[str, object] = {"_new": object.__new__, "_cls": PathAttrs}
    ns.update({f"_set_{n}": getattr(PathAttrs, n).__set__ for n in names})
    body = "".join(f"    _set_{n}(o, {n})\n" for n in names)
    exec(f"def new_attrs({params}):\n    o = _new(_cls)\n{body}    return o\n", ns)
    slow: Callable[..., PathAttrs] = ns["new_attrs"]  # type: ignore[assignment]
    stores = "".join(f"        self.{n} = {n}\n" for n in names)
    exec(
        f"class _Building:\n    __slots__ = {tuple(names)!r}\n"
        f"    def __init__(self, {params}):\n{stores}        self.__class__ = _cls\n",
        ns,
    )
    fast: Callable[..., PathAttrs] = ns["_Building"]  # type: ignore[assignment]
    try:
        probe = [object() for _ in names]
        built = fast(*probe)
        if type(built) is not PathAttrs or any(
            getattr(built, n) is not v for n, v in zip(names, probe, strict=True)
        ):
            return slow
    except TypeError:  # __class__ assignment refused (layouts differ)
        return slow
    return fast


_new_attrs = _attrs_constructor()


def _new_update() -> Update:
    """An empty Update: the dataclass __init__ (six defaults, four factories) costs about as
    much as decoding a cached attribute block, and every UPDATE makes one."""
    u = _object_new(Update)
    u.announce = []
    u.withdraw = []
    u.end_of_rib = None
    u.errors = []
    u.announce_path_ids = []
    u.withdraw_path_ids = []
    return u


_object_new = object.__new__
if tuple(f.name for f in dataclass_fields(Update)) != (
    "announce",
    "withdraw",
    "end_of_rib",
    "errors",
    "announce_path_ids",
    "withdraw_path_ids",
):  # Update changed: use its own constructor
    _new_update = Update

# Any error in MP_REACH_NLRI/MP_UNREACH_NLRI resets the session (RFC 7606 7.11: we do not
# implement AFI/SAFI disable) with Malformed Attribute List; the reason says what was wrong.
MP_ERROR = UpdateSub.MALFORMED_ATTRIBUTE_LIST


def _reset(subcode: int, reason: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrCode.UPDATE_MESSAGE, subcode, data, f"UPDATE Message Error: {reason}")


def parse_nlri(data: bytes, pos: int, end: int, afi: Afi) -> list[PrefixKey]:
    """Slice NLRI keys from ``data[pos:end]``.

    A bad prefix (too long, or overrunning the field) makes the rest of the field
    unparseable; RFC 7606 5.3 then asks for a session reset: (3, 10) Invalid Network Field.
    """
    step = _STEP4 if afi is _IPV4 else _STEP6
    start = pos
    out: list[PrefixKey] = []
    append = out.append
    # Hot loop: an invalid length steps far past ``end`` and an overrun leaves ``pos != end``,
    # so errors are detected once after the loop rather than per prefix.
    while pos < end:
        plen = data[pos]
        nxt = pos + step[plen]
        if plen & 7:
            if nxt > end:
                break
            if data[nxt - 1] & (0xFF >> (plen & 7)):
                # Host bits set: clear them so that equal prefixes have equal keys.
                append(make_key(plen, data[pos + 1 : nxt]))
                pos = nxt
                continue
        append(data[pos:nxt])
        pos = nxt
    if pos != end:
        raise _nlri_error(data, start, end, afi)
    return out


def parse_nlri_path_ids(data: bytes, pos: int, end: int, afi: Afi) -> tuple[list[PrefixKey], list[int]]:
    """RFC 7911 3: NLRI where each prefix follows a 4-byte path identifier."""
    keys: list[PrefixKey] = []
    ids: list[int] = []
    max_plen = afi.max_plen
    while pos < end:
        if end - pos < 5:
            raise _reset(UpdateSub.INVALID_NETWORK_FIELD, f"{afi.name_lower} ADD-PATH NLRI truncated")
        plen = data[pos + 4]
        if plen > max_plen:
            raise _reset(UpdateSub.INVALID_NETWORK_FIELD, f"prefix length {plen} in {afi.name_lower} NLRI")
        nxt = pos + 5 + ((plen + 7) >> 3)
        if nxt > end:
            raise _reset(UpdateSub.INVALID_NETWORK_FIELD, f"{afi.name_lower} prefix overruns the NLRI field")
        ids.append(_U32_FROM(data, pos)[0])
        keys.append(make_key(plen, data[pos + 5 : nxt]))
        pos = nxt
    return keys, ids


def _nlri_error(data: bytes, pos: int, end: int, afi: Afi) -> BgpError:
    while pos < end:
        plen = data[pos]
        if plen > afi.max_plen:
            return _reset(UpdateSub.INVALID_NETWORK_FIELD, f"prefix length {plen} in {afi.name_lower} NLRI")
        pos += 1 + ((plen + 7) >> 3)
    return _reset(UpdateSub.INVALID_NETWORK_FIELD, f"{afi.name_lower} prefix overruns the NLRI field")


def _as_path(data: bytes, pos: int, end: int, four_octet: bool, confed_ok: bool) -> AsPath | str:
    """Decode AS_PATH segments; a string says why the path is malformed (RFC 7606 7.2)."""
    arrays = _ARRAYS32 if four_octet else _ARRAYS16
    width = 4 if four_octet else 2
    segs = []
    while pos < end:
        if end - pos < 2:
            return "is malformed (truncated segment header)"
        seg_type = data[pos]
        n = data[pos + 1]
        if seg_type > 2:
            if seg_type > 4:
                return f"is malformed (segment type {seg_type})"
            if not confed_ok:
                return "has confederation segments"
        elif seg_type < 1:
            return "is malformed (segment type 0)"
        if n == 0:
            return "is malformed (empty segment)"
        nxt = pos + 2 + n * width
        if nxt > end:
            return "is malformed (segment overruns the attribute)"
        asns = arrays[n].unpack_from(data, pos + 2)
        if 0 in asns:
            return "is malformed (AS 0, RFC 7607)"
        segs.append((seg_type, asns))
        pos = nxt
    return tuple(segs)


def _merge_as4(as_path: AsPath, as4_path: AsPath) -> AsPath:
    """RFC 6793 4.2.3: the leading part of AS_PATH that AS4_PATH lacks, then AS4_PATH."""

    def count(path: AsPath) -> int:
        return sum(len(a) if t == SegType.AS_SEQUENCE else (1 if t == SegType.AS_SET else 0) for t, a in path)

    need = count(as_path) - count(as4_path)
    if need < 0:
        return as_path
    lead: list[tuple[int, tuple[int, ...]]] = []
    for seg_type, asns in as_path:
        if seg_type in _CONFED:
            lead.append((seg_type, asns))
            continue
        if need <= 0:
            break
        if seg_type == SegType.AS_SEQUENCE:
            take = asns[:need]
            lead.append((seg_type, take))
            need -= len(take)
        else:
            lead.append((seg_type, asns))
            need -= 1
    rest = list(as4_path)
    if lead and rest and lead[-1][0] == rest[0][0] == SegType.AS_SEQUENCE:
        joined = lead[-1][1] + rest[0][1]
        if len(joined) <= 255:
            lead[-1] = (SegType.AS_SEQUENCE, joined)
            rest.pop(0)
    return tuple(lead + rest)


@dataclass(slots=True)
class _Decoded:
    """What an attribute block means, cached per distinct block."""

    attrs: PathAttrs | None  # for the NLRI field; None when treat-as-withdraw applies
    mp_attrs: PathAttrs | None  # the same with the MP_REACH_NLRI next hop (MP path only)
    errors: tuple[str, ...]
    # Mandatory attributes missing for NLRI of the NLRI field / of MP_REACH ("" if none).
    missing_v4: str
    missing_mp: str
    # An attribute overran the block: the NLRI field can still be located (treat-as-withdraw)
    # but an MP attribute might have been lost.
    overrun: bool


@dataclass(slots=True)
class _Reach:
    afi: int
    safi: int
    next_hop: bytes
    nlri_pos: int
    end: int


class UpdateDecoder:
    """Decode UPDATE bodies for one session (the capabilities fix the AS width)."""

    __slots__ = (
        "_addrs",
        "_cache",
        "_mp_cache",
        "add_path_rx",
        "cache_size",
        "ebgp",
        "families",
        "four_octet",
        "local_asn",
    )

    def __init__(
        self,
        four_octet: bool,
        ebgp: bool,
        local_asn: int = 0,
        cache_size: int = 200_000,
        *,
        families: Iterable[int] | None = None,
        add_path_rx: Iterable[int] = (),
    ) -> None:
        self.four_octet = four_octet
        self.ebgp = ebgp
        # AFIs negotiated for unicast; MP_REACH/MP_UNREACH of any other family are ignored
        # (logged). None: accept IPv4 and IPv6.
        self.families: frozenset[int] | None = None if families is None else frozenset(families)
        # AFIs whose NLRI carry RFC 7911 path identifiers (ADD-PATH receive negotiated).
        self.add_path_rx: frozenset[int] = frozenset(add_path_rx)
        # Kept for the session's use; AS-loop and peer-AS checks are policy, not decoding.
        self.local_asn = local_asn
        self.cache_size = cache_size
        # Raw attribute block (IPv4-only: no MP attributes) -> decoded.
        # The value is the PathAttrs itself for a block the fast path decoded (no errors).
        self._cache: dict[bytes, _Decoded | PathAttrs] = {}
        # (block without MP attributes, MP_REACH_NLRI header up to its NLRI) -> decoded.
        self._mp_cache: dict[tuple[bytes, bytes], _Decoded] = {}
        # Next hop bytes -> shared address object (there are few distinct next hops).
        self._addrs: dict[bytes, IPAddress] = {}

    def clear_cache(self) -> None:
        self._cache.clear()
        self._mp_cache.clear()

    def _nlri(
        self, upd: Update, data: bytes, pos: int, end: int, afi: Afi, announce: bool
    ) -> list[PrefixKey]:
        """NLRI keys of one group; with ADD-PATH negotiated at all, also its path-id list."""
        if not self.add_path_rx:
            return parse_nlri(data, pos, end, afi)
        ids: list[int] | None = None
        if afi in self.add_path_rx:
            keys, ids = parse_nlri_path_ids(data, pos, end, afi)
        else:
            keys = parse_nlri(data, pos, end, afi)
        if keys:
            (upd.announce_path_ids if announce else upd.withdraw_path_ids).append(ids)
        return keys

    # --- entry point ---------------------------------------------------------------------------

    def decode(self, body: bytes) -> Update:
        end = len(body)
        if end < 4:
            raise _reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST, f"body of {end} bytes")
        wlen = (body[0] << 8) | body[1]
        apos = 2 + wlen
        if apos + 2 > end:
            raise _reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST, "withdrawn routes length overruns the message")
        alen = (body[apos] << 8) | body[apos + 1]
        npos = apos + 2 + alen
        if npos > end:
            raise _reset(
                UpdateSub.MALFORMED_ATTRIBUTE_LIST, "total path attribute length overruns the message"
            )
        upd = _new_update()
        if wlen:
            upd.withdraw.append((_IPV4, self._nlri(upd, body, 2, apos, _IPV4, False)))
        if not alen:
            if npos < end:
                # NLRI without any attribute: all mandatory ones are missing.
                upd.withdraw.append((_IPV4, self._nlri(upd, body, npos, end, _IPV4, False)))
                upd.errors.append(_bad("NLRI without path attributes: treat-as-withdraw", body, npos, end))
            elif not wlen:
                upd.end_of_rib = _IPV4
            return upd
        raw = body[apos + 2 : npos]
        cache = self._cache
        d = cache.get(raw)
        if d is None:
            d = self._decode_common(raw)
            if d is None:
                d = self._decode_block(raw, False, None)
            if d is None:
                # The block holds MP attributes: slower path, keyed without their NLRI.
                d = self._decode_mp(raw, upd, npos < end)
            else:
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[raw] = d
                if type(d) is _Decoded and d.overrun and npos == end:
                    # Nothing located to withdraw, and the lost part may have held MP_REACH_NLRI.
                    raise _reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST, "attribute overruns the attribute block")
        elif type(d) is _Decoded and d.overrun and npos == end:
            raise _reset(UpdateSub.MALFORMED_ATTRIBUTE_LIST, "attribute overruns the attribute block")
        if type(d) is PathAttrs:
            # The usual block, as the fast path caches it: no errors, nothing missing.
            if npos < end:
                keys = (
                    parse_nlri(body, npos, end, _IPV4)
                    if not self.add_path_rx
                    else self._nlri(upd, body, npos, end, _IPV4, True)
                )
                upd.announce.append((_IPV4, d, keys))
            return upd
        assert isinstance(d, _Decoded)  # for mypy: the other kind of cache entry
        if d.errors:
            upd.errors.extend(d.errors)
        if npos < end:
            attrs = d.attrs
            ok = attrs is not None and not d.missing_v4
            keys = (
                parse_nlri(body, npos, end, _IPV4)
                if not self.add_path_rx
                else self._nlri(upd, body, npos, end, _IPV4, ok)
            )
            if ok:
                upd.announce.append((_IPV4, attrs, keys))  # type: ignore[arg-type]
            else:
                if d.missing_v4:
                    upd.errors.append(_bad(f"missing {d.missing_v4}: treat-as-withdraw", raw, 0, len(raw)))
                upd.withdraw.append((_IPV4, keys))
        return upd

    # --- MP attributes -------------------------------------------------------------------------

    def _decode_mp(self, raw: bytes, upd: Update, has_v4_nlri: bool) -> _Decoded:
        """Split MP_REACH/MP_UNREACH out of ``raw``, decode the rest through the MP cache."""
        reach: _Reach | None = None
        unreach: tuple[int, int] | None = None
        rest: list[bytes] = []
        pos = 0
        end = len(raw)
        n_attrs = 0
        while pos < end:
            start = pos
            flags = raw[pos]
            hdr = 4 if flags & 0x10 else 3
            if end - pos < hdr:
                rest.append(raw[start:])
                break
            code = raw[pos + 1]
            ln = (raw[pos + 2] << 8) | raw[pos + 3] if hdr == 4 else raw[pos + 2]
            vpos = pos + hdr
            pos = vpos + ln
            if pos > end:
                rest.append(raw[start:])
                break
            n_attrs += 1
            if code != MP_REACH_NLRI and code != MP_UNREACH_NLRI:
                rest.append(raw[start:pos])
                continue
            if flags & 0xC0 != OPT_NON_TRANSITIVE:
                raise _reset(MP_ERROR, f"{attr_name(code)} flags 0x{flags:02x}")
            if code == MP_REACH_NLRI:
                if reach is not None:
                    raise _reset(MP_ERROR, "repeated MP_REACH_NLRI")
                reach = self._reach_header(raw, vpos, pos)
            else:
                if unreach is not None:
                    raise _reset(MP_ERROR, "repeated MP_UNREACH_NLRI")
                if ln < 3:
                    raise _reset(MP_ERROR, f"MP_UNREACH_NLRI of length {ln}")
                unreach = (vpos, pos)

        if unreach is not None:
            upos, uend = unreach
            afi = (raw[upos] << 8) | raw[upos + 1]
            safi = raw[upos + 2]
            if (
                safi == Safi.UNICAST
                and afi in (_IPV4, _IPV6)
                and (self.families is None or afi in self.families)
            ):
                fam = Afi(afi)
                keys = self._nlri(upd, raw, upos + 3, uend, fam, False)
                if keys:
                    upd.withdraw.append((fam, keys))
                elif n_attrs == 1 and not has_v4_nlri and not upd.withdraw:
                    # RFC 4724 2: an UPDATE holding only an empty MP_UNREACH_NLRI.
                    upd.end_of_rib = fam
            else:
                upd.errors.append(
                    _bad(
                        f"MP_UNREACH_NLRI for AFI {afi} SAFI {safi} ignored (family not negotiated)",
                        raw,
                        upos,
                        uend,
                    )
                )

        known = (
            reach is not None
            and reach.safi == Safi.UNICAST
            and reach.afi in (_IPV4, _IPV6)
            and (self.families is None or reach.afi in self.families)
        )
        mp_nh = reach.next_hop if reach is not None and known else None
        key = (
            b"".join(rest),
            raw[reach.nlri_pos - len(reach.next_hop) - 5 : reach.nlri_pos] if reach else b"",
        )
        d = self._mp_cache.get(key)
        if d is None:
            d = self._decode_block(raw, True, mp_nh)
            assert d is not None
            cache = self._mp_cache
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[key] = d

        if reach is not None:
            if known:
                fam = Afi(reach.afi)
                keys = self._nlri(upd, raw, reach.nlri_pos, reach.end, fam, d.mp_attrs is not None)
                if keys:
                    if d.mp_attrs is not None:
                        upd.announce.append((fam, d.mp_attrs, keys))
                    else:
                        if d.missing_mp:
                            upd.errors.append(
                                _bad(f"missing {d.missing_mp}: treat-as-withdraw", raw, 0, len(raw))
                            )
                        upd.withdraw.append((fam, keys))
            else:
                upd.errors.append(
                    _bad(
                        f"MP_REACH_NLRI for AFI {reach.afi} SAFI {reach.safi} ignored"
                        " (family not negotiated)",
                        raw,
                        reach.nlri_pos,
                        reach.end,
                    )
                )
        return d

    def _reach_header(self, raw: bytes, pos: int, end: int) -> _Reach:
        if end - pos < 5:
            raise _reset(MP_ERROR, f"MP_REACH_NLRI of length {end - pos}")
        afi = (raw[pos] << 8) | raw[pos + 1]
        safi = raw[pos + 2]
        nh_len = raw[pos + 3]
        nlri_pos = pos + 4 + nh_len + 1  # + the reserved (former SNPA count) octet
        if nlri_pos > end:
            raise _reset(MP_ERROR, "MP_REACH_NLRI next hop overruns the attribute")
        if safi == Safi.UNICAST and afi in (_IPV4, _IPV6):
            # IPv4 NLRI may carry an IPv6 next hop (RFC 8950).
            allowed = (16, 32) if afi == _IPV6 else (4, 16, 32)
            if nh_len not in allowed:
                raise _reset(MP_ERROR, f"MP_REACH_NLRI next hop length {nh_len} for AFI {afi}")
        return _Reach(afi, safi, raw[pos + 4 : pos + 4 + nh_len], nlri_pos, end)

    def _addr(self, raw: bytes) -> IPAddress:
        addrs = self._addrs
        a = addrs.get(raw)
        if a is None:
            if len(addrs) > 10_000:
                addrs.clear()
            a = addrs[raw] = HashedIPv4Address(raw) if len(raw) == 4 else HashedIPv6Address(raw)
        return a

    def _mp_next_hop(self, nh: bytes) -> tuple[IPAddress, IPAddress | None]:
        if len(nh) == 32:
            ll = nh[16:]
            return self._addr(nh[:16]), (self._addr(ll) if any(ll) else None)
        return self._addr(nh), None

    @staticmethod
    def _mp_nh_ok(nh: bytes) -> bool:
        """Reject a next hop that cannot be one: multicast, or unspecified without a link-local."""
        if len(nh) == 4:
            return _v4_host_ok(nh[0])
        if nh[0] == 0xFF:
            return False
        return any(nh[:16]) or (len(nh) == 32 and any(nh[16:]))

    # --- the attribute block -------------------------------------------------------------------

    def _decode_common(self, raw: bytes) -> PathAttrs | None:
        """The usual, well-formed block, or None for anything else.

        Most blocks are ORIGIN, an AS_PATH of one AS_SEQUENCE, NEXT_HOP, then some of MED,
        LOCAL_PREF (iBGP), ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES, EXTENDED_COMMUNITIES and
        LARGE_COMMUNITY, each with its canonical flags, in type order. Those are decoded here
        without the general loop's flag table, duplicate set and error bookkeeping; anything
        else (other attributes, other flags, any error) returns None and ``_decode_block``
        decides, so this path never has to produce an error.
        """
        end = len(raw)
        width = 4 if self.four_octet else 2
        # ORIGIN 40 01 01 v, then AS_PATH 40 02 len with one AS_SEQUENCE (type 2, n ASNs).
        if end < 18 or not raw.startswith(b"\x40\x01\x01") or raw[4] != 0x40 or raw[5] != 2 or raw[7] != 2:
            return None
        origin = raw[3]
        n = raw[8]
        pos = 7 + raw[6]
        if origin > 2 or not n or pos != 9 + n * width or pos + 7 > end:
            return None
        asns = (_ARRAYS32 if width == 4 else _ARRAYS16)[n].unpack_from(raw, 9)
        # NEXT_HOP 40 03 04 a.b.c.d, a host address.
        if 0 in asns or raw[pos] != 0x40 or raw[pos + 1] != 3 or raw[pos + 2] != 4:
            return None
        first = raw[pos + 3]
        if first == 0 or first == 127 or first >= 224:
            return None
        nh = raw[pos + 3 : pos + 7]
        next_hop = self._addrs.get(nh) or self._addr(nh)
        pos += 7
        med = local_pref = None
        atomic = False
        aggregator: tuple[int, str] | None = None
        communities: tuple[int, ...] = ()
        ext: tuple[bytes, ...] = ()
        large: tuple[tuple[int, int, int], ...] = ()
        last = NEXT_HOP  # strictly increasing codes: no duplicates, canonical order
        while pos < end:
            if end - pos < 3:
                return None
            flags = raw[pos]
            code = raw[pos + 1]
            ln = raw[pos + 2]
            vpos = pos + 3
            pos = vpos + ln
            if code <= last or pos > end:
                return None
            last = code
            if code == MED:
                if flags != OPT_NON_TRANSITIVE or ln != 4:
                    return None
                med = _U32_FROM(raw, vpos)[0]
            elif code == COMMUNITIES:
                if flags != OPT_TRANSITIVE or not ln or ln & 3:
                    return None
                communities = _ARRAYS32[ln >> 2].unpack_from(raw, vpos)
            elif code == LOCAL_PREF:
                if flags != TRANSITIVE or ln != 4 or self.ebgp:
                    return None
                local_pref = _U32_FROM(raw, vpos)[0]
            elif code == LARGE_COMMUNITY:
                if flags != OPT_TRANSITIVE or not ln or ln % 12:
                    return None
                large = tuple(_LARGE.iter_unpack(raw[vpos:pos]))
            elif code == EXT_COMMUNITIES:
                if flags != OPT_TRANSITIVE or not ln or ln & 7:
                    return None
                ext = tuple(raw[i : i + 8] for i in range(vpos, pos, 8))
            elif code == ATOMIC_AGGREGATE:
                if flags != TRANSITIVE or ln:
                    return None
                atomic = True
            elif code == AGGREGATOR:
                if flags != OPT_TRANSITIVE or ln != width + 4:
                    return None
                asn, ip = (_AGGR4 if width == 4 else _AGGR2).unpack_from(raw, vpos)
                if asn == 0:
                    return None
                aggregator = (asn, ipv4_str(ip))
            else:
                return None
        if communities:
            communities = _shared_ints(communities)
        return intern(
            _new_attrs(
                origin, ((2, _shared_ints(asns)),), next_hop, None, med, local_pref, atomic, aggregator,
                communities, ext, large, None, (), (),
            )
        )  # fmt: skip

    def _decode_block(self, raw: bytes, mp_ok: bool, mp_nh: bytes | None) -> _Decoded | None:
        """Decode every attribute but MP_REACH/MP_UNREACH.

        With ``mp_ok`` False (the IPv4 fast path) meeting an MP attribute returns None: the
        caller then splits them out (their NLRI must not be part of the cache key). ``mp_nh``
        is the MP_REACH_NLRI next hop, for ``_Decoded.mp_attrs``.
        """
        four_octet = self.four_octet
        width = 4 if four_octet else 2
        arrays = _ARRAYS32 if four_octet else _ARRAYS16
        addrs = self._addrs
        ebgp = self.ebgp
        expected_flags = EXPECTED_FLAGS
        origin = -1
        as_path: AsPath | None = None
        next_hop: IPAddress | None = None
        med = local_pref = None
        atomic = False
        aggregator: tuple[int, str] | None = None
        communities: tuple[int, ...] = ()
        ext: tuple[bytes, ...] = ()
        large: tuple[tuple[int, int, int], ...] = ()
        originator: str | None = None
        clusters: tuple[str, ...] = ()
        unknown: list[tuple[int, int, bytes]] | None = None
        as4_path: AsPath | None = None
        as4_aggregator: tuple[int, str] | None = None
        path: AsPath | str
        errors: list[str] = []
        withdraw = False  # treat-as-withdraw
        # A bad NEXT_HOP only matters to IPv4 NLRI in the NLRI field: RFC 4760 3 has it ignored
        # when an UPDATE carries MP_REACH_NLRI alone.
        nh_bad = False
        overrun = False
        seen: set[int] = set()
        astart = pos = 0
        end = len(raw)
        while pos < end:
            astart = pos  # for the hex excerpt of an offending attribute
            flags = raw[pos]
            if flags & 0x10:
                if end - pos < 4:
                    overrun = True
                    break
                code = raw[pos + 1]
                ln = (raw[pos + 2] << 8) | raw[pos + 3]
                vpos = pos + 4
            else:
                if end - pos < 3:
                    overrun = True
                    break
                code = raw[pos + 1]
                ln = raw[pos + 2]
                vpos = pos + 3
            pos = vpos + ln
            if pos > end:
                overrun = True
                break
            want = expected_flags[code]
            if flags & 0xC0 != want:
                # Off the common path: MP attributes, unknown attributes and flag errors.
                if want == SEPARATE_FLAGS:
                    if mp_ok:
                        continue
                    return None
                if code in seen:
                    errors.append(_bad(f"repeated {attr_name(code)} discarded", raw, astart, pos))
                    continue
                seen.add(code)
                if want == UNKNOWN_FLAGS:
                    spec = UNINTERPRETED_FLAGS.get(code)
                    if spec is not None and flags & 0xC0 != spec:
                        # An assigned optional attribute we do not act on, with corrupted
                        # flags (the 2023 BGP-LS type 29 incident): drop it, never reset and
                        # never pass the corruption on (RFC 7606 3.c, RFC 9552 8.2.2).
                        errors.append(
                            _bad(
                                f"{attr_name(code)} flags 0x{flags:02x}: attribute discarded",
                                raw,
                                astart,
                                pos,
                            )
                        )
                        continue
                    if not flags & OPTIONAL:
                        raise _reset(
                            UpdateSub.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                            f"unrecognized well-known attribute {code}",
                            raw[vpos - (4 if flags & 0x10 else 3) : pos],
                        )
                    if flags & TRANSITIVE:
                        # Passed on with Partial set (RFC 4271 5); Extended Length is re-derived.
                        if unknown is None:
                            unknown = []
                        unknown.append(((flags | PARTIAL) & 0xE0, code, raw[vpos:pos]))
                elif code in (AS4_PATH, AS4_AGGREGATOR):
                    errors.append(
                        _bad(f"{attr_name(code)} flags 0x{flags:02x}: attribute discarded", raw, astart, pos)
                    )
                else:
                    errors.append(
                        _bad(f"{attr_name(code)} flags 0x{flags:02x}: treat-as-withdraw", raw, astart, pos)
                    )
                    withdraw = True
                continue
            if code in seen:
                errors.append(_bad(f"repeated {attr_name(code)} discarded", raw, astart, pos))
                continue
            seen.add(code)

            if code == ORIGIN:
                if ln != 1:
                    errors.append(_bad(f"ORIGIN length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                elif raw[vpos] > 2:
                    errors.append(_bad(f"ORIGIN value {raw[vpos]}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    origin = raw[vpos]
            elif code == AS_PATH:
                if ln > 2 and raw[vpos] == 2 and 2 + (n := raw[vpos + 1]) * width == ln:
                    # Fast path: the usual single AS_SEQUENCE.
                    asns = arrays[n].unpack_from(raw, vpos + 2)
                    path = ((2, asns),) if 0 not in asns else "is malformed (AS 0, RFC 7607)"
                else:
                    path = _as_path(raw, vpos, pos, four_octet, not ebgp)
                if isinstance(path, str):
                    errors.append(_bad(f"AS_PATH {path}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    as_path = path
            elif code == NEXT_HOP:
                if ln != 4:
                    errors.append(_bad(f"NEXT_HOP length {ln}: treat-as-withdraw", raw, astart, pos))
                    nh_bad = True
                elif not _v4_host_ok(raw[vpos]):
                    errors.append(
                        _bad(
                            f"NEXT_HOP {ipv4_str(raw[vpos:pos])} is not a host address: treat-as-withdraw",
                            raw,
                            astart,
                            pos,
                        )
                    )
                    nh_bad = True
                else:
                    next_hop = addrs.get(raw[vpos:pos]) or self._addr(raw[vpos:pos])
            elif code == MED:
                if ln != 4:
                    errors.append(_bad(f"MULTI_EXIT_DISC length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    med = _U32_FROM(raw, vpos)[0]
            elif code == COMMUNITIES:
                if ln & 3 or not ln:
                    errors.append(_bad(f"COMMUNITIES length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    n = ln >> 2
                    communities = (
                        _ARRAYS32[n].unpack_from(raw, vpos)
                        if n < 256
                        else struct.unpack_from(f">{n}I", raw, vpos)
                    )
            elif code == LOCAL_PREF:
                if ebgp:
                    errors.append(_bad("LOCAL_PREF from an eBGP peer discarded", raw, astart, pos))
                elif ln != 4:
                    errors.append(_bad(f"LOCAL_PREF length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    local_pref = _U32_FROM(raw, vpos)[0]
            elif code == LARGE_COMMUNITY:
                if not ln or ln % 12:
                    errors.append(_bad(f"LARGE_COMMUNITY length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    large = tuple(_LARGE.iter_unpack(raw[vpos:pos]))
            elif code == EXT_COMMUNITIES:
                if not ln or ln & 7:
                    errors.append(
                        _bad(f"EXTENDED_COMMUNITIES length {ln}: treat-as-withdraw", raw, astart, pos)
                    )
                    withdraw = True
                else:
                    ext = tuple(raw[i : i + 8] for i in range(vpos, pos, 8))
            elif code == ATOMIC_AGGREGATE:
                if ln:
                    errors.append(
                        _bad(f"ATOMIC_AGGREGATE length {ln}: attribute discarded", raw, astart, pos)
                    )
                else:
                    atomic = True
            elif code == AGGREGATOR:
                if ln != (8 if four_octet else 6):
                    errors.append(_bad(f"AGGREGATOR length {ln}: attribute discarded", raw, astart, pos))
                else:
                    asn, ip = (_AGGR4 if four_octet else _AGGR2).unpack_from(raw, vpos)
                    if asn == 0:
                        errors.append(
                            _bad("AGGREGATOR with AS 0 (RFC 7607): attribute discarded", raw, astart, pos)
                        )
                    else:
                        aggregator = (asn, ipv4_str(ip))
            elif code == ORIGINATOR_ID:
                if ebgp:
                    errors.append(_bad("ORIGINATOR_ID from an eBGP peer discarded", raw, astart, pos))
                elif ln != 4:
                    errors.append(_bad(f"ORIGINATOR_ID length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    originator = ipv4_str(raw[vpos:pos])
            elif code == CLUSTER_LIST:
                if ebgp:
                    errors.append(_bad("CLUSTER_LIST from an eBGP peer discarded", raw, astart, pos))
                elif not ln or ln & 3:
                    errors.append(_bad(f"CLUSTER_LIST length {ln}: treat-as-withdraw", raw, astart, pos))
                    withdraw = True
                else:
                    clusters = tuple(ipv4_str(raw[i : i + 4]) for i in range(vpos, pos, 4))
            elif code == AS4_PATH:
                if four_octet:
                    # RFC 6793 4.1: a NEW speaker ignores AS4_PATH from a NEW speaker.
                    errors.append(_bad("AS4_PATH from a 4-octet AS peer discarded", raw, astart, pos))
                else:
                    # RFC 6793 6: confederation segments make AS4_PATH malformed.
                    path = _as_path(raw, vpos, pos, True, False)
                    if isinstance(path, str):
                        errors.append(_bad(f"AS4_PATH {path}: attribute discarded", raw, astart, pos))
                    else:
                        as4_path = path
            elif code == AS4_AGGREGATOR:
                if four_octet:
                    errors.append(_bad("AS4_AGGREGATOR from a 4-octet AS peer discarded", raw, astart, pos))
                elif ln != 8:
                    errors.append(_bad(f"AS4_AGGREGATOR length {ln}: attribute discarded", raw, astart, pos))
                else:
                    asn, ip = _AGGR4.unpack_from(raw, vpos)
                    if asn == 0:
                        errors.append(
                            _bad("AS4_AGGREGATOR with AS 0 (RFC 7607): attribute discarded", raw, astart, pos)
                        )
                    else:
                        as4_aggregator = (asn, ipv4_str(ip))

        if nh_bad and not mp_ok:
            withdraw = True
        if overrun:
            errors.append(_bad("attribute overruns the attribute block: treat-as-withdraw", raw, astart, pos))
            withdraw = True
        if not four_octet and (as4_path is not None or as4_aggregator is not None):
            # RFC 6793 4.2.3: if AGGREGATOR is there but not AS_TRANS, the AS4_* are stale.
            if aggregator is not None and aggregator[0] != AS_TRANS:
                if as4_path is not None or as4_aggregator is not None:
                    errors.append(
                        _bad("AS4_PATH/AS4_AGGREGATOR ignored: AGGREGATOR is not AS_TRANS", raw, 0, end)
                    )
            else:
                if as4_aggregator is not None and aggregator is not None:
                    aggregator = as4_aggregator
                if as4_path is not None and as_path is not None:
                    as_path = _merge_as4(as_path, as4_path)
        missing_v4 = missing_mp = ""
        if origin < 0 or as_path is None or next_hop is None:
            missing = []
            if ORIGIN not in seen:
                missing.append("ORIGIN")
            if AS_PATH not in seen:
                missing.append("AS_PATH")
            missing_mp = ", ".join(missing)
            if NEXT_HOP not in seen:
                missing.append("NEXT_HOP")
            missing_v4 = ", ".join(missing)
            if withdraw or origin < 0 or as_path is None:
                # Unusable for announcements (missing ones are reported when there are NLRI).
                return _Decoded(None, None, tuple(errors), missing_v4, missing_mp, overrun)
        elif withdraw:
            return _Decoded(None, None, tuple(errors), "", "", overrun)
        unknown_t = tuple(sorted(unknown)) if unknown else ()
        # Shared ints for the values sets repeat (as_path is set here; empty from an iBGP origin).
        if as_path:
            as_path = _shared_path(as_path)
        if communities:
            communities = _shared_ints(communities)
        attrs = mp_attrs = None
        if next_hop is not None or not mp_ok:
            attrs = intern(
                _new_attrs(
                    origin, as_path, next_hop, None, med, local_pref, atomic, aggregator,
                    communities, ext, large, originator, clusters, unknown_t,
                )
            )  # fmt: skip
        if mp_nh is not None:
            if self._mp_nh_ok(mp_nh):
                nh, ll = self._mp_next_hop(mp_nh)
                mp_attrs = intern(
                    _new_attrs(
                        origin, as_path, nh, ll, med, local_pref, atomic, aggregator,
                        communities, ext, large, originator, clusters, unknown_t,
                    )
                )  # fmt: skip
            else:
                errors.append(
                    _bad(
                        "MP_REACH_NLRI next hop is not a unicast address: treat-as-withdraw",
                        mp_nh,
                        0,
                        len(mp_nh),
                    )
                )
        return _Decoded(attrs, mp_attrs, tuple(errors) if errors else (), missing_v4, missing_mp, overrun)


_EXCERPT = 32  # bytes of hex shown for an offending attribute


def _bad(case: str, raw: bytes, start: int, end: int) -> str:
    """An ``Update.errors`` entry: the case, then a hex excerpt of the offending bytes."""
    chunk = raw[start : min(end, len(raw))]
    more = "..." if len(chunk) > _EXCERPT else ""
    return f"{case} [hex {chunk[:_EXCERPT].hex()}{more}]"


def _v4_host_ok(first_octet: int) -> bool:
    """0/8, 127/8 and 224/3 (multicast and reserved) cannot be next hops."""
    return first_octet != 0 and first_octet != 127 and first_octet < 224


# --- encoding ----------------------------------------------------------------------------------


def _nlri_chunks(prefixes: Iterable[PrefixKey], room: int) -> list[bytes]:
    """Concatenated NLRI, split so that each piece is at most ``room`` bytes."""
    if not isinstance(prefixes, list | tuple):
        prefixes = list(prefixes)
    if sum(map(len, prefixes)) <= room:
        # The usual case (fewer than ~800 prefixes per set) without a Python-level loop.
        return [b"".join(prefixes)] if prefixes else []
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for p in prefixes:
        n = len(p)
        if size + n > room:
            out.append(b"".join(chunk))
            chunk = []
            size = 0
        chunk.append(p)
        size += n
    if chunk:
        out.append(b"".join(chunk))
    return out


def _with_path_ids(prefixes: Iterable[PrefixKey], path_ids: Iterable[int] | None) -> list[bytes]:
    """RFC 7911 3: each NLRI entry preceded by its 4-byte path identifier."""
    if path_ids is None:
        return [_DEFAULT_PATH_ID + p for p in prefixes]
    return [pid.to_bytes(4, "big") + p for pid, p in zip(path_ids, prefixes, strict=True)]


_DEFAULT_PATH_ID = (1).to_bytes(4, "big")
_MARKER = b"\xff" * 16
_UPDATE_TYPE = bytes((MsgType.UPDATE,))
_UPDATE_NO_WITHDRAWN = _UPDATE_TYPE + b"\x00\x00"


class UpdateEncoder:
    """Build UPDATE messages for one session, as many NLRI per message as fit."""

    __slots__ = ("_mp_cache", "_v4_cache", "add_path_tx", "cache_size", "four_octet", "max_len")

    def __init__(
        self,
        four_octet: bool,
        max_len: int = MAX_MESSAGE_LEN,
        cache_size: int = 100_000,
        *,
        add_path_tx: Iterable[int] = (),
    ) -> None:
        self.four_octet = four_octet
        # 65535 once both sides advertised extended messages (RFC 8654).
        self.max_len = max_len
        # AFIs whose NLRI we send with RFC 7911 path identifiers (ADD-PATH send negotiated).
        self.add_path_tx: frozenset[int] = frozenset(add_path_tx)
        self.cache_size = cache_size
        # Keyed by id(attrs) because hashing a PathAttrs costs more than the rest of a cache
        # hit; each value holds ``attrs`` itself, so its id cannot be reused while cached.
        # IPv4: id -> (attrs, message after the length field up to the NLRI, message length
        # without NLRI, room for NLRI).
        self._v4_cache: dict[int, tuple[PathAttrs, bytes, int, int]] = {}
        # MP: id -> (attrs, attribute block without NEXT_HOP and MP attributes).
        self._mp_cache: dict[int, tuple[PathAttrs, bytes]] = {}

    def announce(
        self,
        afi: Afi,
        attrs: PathAttrs,
        prefixes: Iterable[PrefixKey],
        path_ids: Iterable[int] | None = None,
    ) -> list[bytes]:
        """UPDATEs announcing ``prefixes`` with ``attrs``: IPv4 with an IPv4 next hop in the NLRI
        field, anything else (IPv6, or IPv4 over an IPv6 next hop, RFC 8950) in MP_REACH_NLRI.

        With ADD-PATH send negotiated for ``afi``, ``path_ids`` (parallel to ``prefixes``;
        default: path id 1 for all) are written in front of each prefix.
        """
        if self.add_path_tx and afi in self.add_path_tx:
            prefixes = _with_path_ids(prefixes, path_ids)
        if afi == _IPV4:
            hit = self._v4_cache.get(id(attrs))
            if hit is None or hit[0] is not attrs:
                nh = attrs.next_hop
                if nh is not None and nh.version == 6:
                    return self._announce_mp(afi, attrs, prefixes)
                hit = self._v4_entry(attrs)
            _a, head, base_len, room = hit
            if not isinstance(prefixes, (list, tuple)):  # faster than the union form
                prefixes = list(prefixes)
            nlri = b"".join(prefixes)
            if len(nlri) <= room:
                # The usual case: everything fits in one message.
                if not nlri:
                    return []
                return [b"".join((_MARKER, (base_len + len(nlri)).to_bytes(2, "big"), head, nlri))]
            return [
                b"".join((_MARKER, (base_len + len(chunk)).to_bytes(2, "big"), head, chunk))
                for chunk in _nlri_chunks(prefixes, room)
            ]
        return self._announce_mp(afi, attrs, prefixes)

    def _v4_entry(self, attrs: PathAttrs) -> tuple[PathAttrs, bytes, int, int]:
        block = encode_attrs(attrs, self.four_octet, True)
        n = len(block)
        room = self.max_len - HEADER_LEN - 4 - n
        if room < 5:
            raise ValueError(f"path attributes of {n} bytes leave no room for NLRI")
        # The message after its length field, up to the NLRI: type, withdrawn length 0, attributes.
        head = b"".join((_UPDATE_NO_WITHDRAWN, n.to_bytes(2, "big"), block))
        cache = self._v4_cache
        if len(cache) >= self.cache_size:
            cache.clear()
        entry = cache[id(attrs)] = (attrs, head, HEADER_LEN + 4 + n, room)
        return entry

    def _mp_block(self, attrs: PathAttrs) -> bytes:
        cache = self._mp_cache
        hit = cache.get(id(attrs))
        if hit is not None and hit[0] is attrs:
            return hit[1]
        block = encode_attrs(attrs, self.four_octet, False)
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[id(attrs)] = (attrs, block)
        return block

    def _announce_mp(self, afi: Afi, attrs: PathAttrs, prefixes: Iterable[PrefixKey]) -> list[bytes]:
        block = self._mp_block(attrs)
        nh = next_hop_bytes(attrs.next_hop, attrs.next_hop_ll, afi == _IPV6)
        mp_head = struct.pack(">HBB", afi, Safi.UNICAST, len(nh)) + nh + b"\x00"
        # MP_REACH_NLRI goes first (RFC 7606 5.1), always with a 2-byte length.
        room = self.max_len - HEADER_LEN - 4 - len(block) - 4 - len(mp_head)
        if room < 17:
            raise ValueError("path attributes leave no room for NLRI")
        out: list[bytes] = []
        for nlri in _nlri_chunks(prefixes, room):
            mp_len = len(mp_head) + len(nlri)
            body = b"".join(
                (
                    b"\x00\x00",
                    (4 + mp_len + len(block)).to_bytes(2, "big"),
                    bytes((OPTIONAL | EXTENDED, MP_REACH_NLRI)),
                    mp_len.to_bytes(2, "big"),
                    mp_head,
                    nlri,
                    block,
                )
            )
            out.append(encode_message(MsgType.UPDATE, body))
        return out

    def withdraw(
        self, afi: Afi, prefixes: Iterable[PrefixKey], path_ids: Iterable[int] | None = None
    ) -> list[bytes]:
        if self.add_path_tx and afi in self.add_path_tx:
            prefixes = _with_path_ids(prefixes, path_ids)
        out: list[bytes] = []
        if afi == _IPV4:
            for nlri in _nlri_chunks(prefixes, self.max_len - HEADER_LEN - 4):
                out.append(encode_message(MsgType.UPDATE, len(nlri).to_bytes(2, "big") + nlri + b"\x00\x00"))
            return out
        # MP_UNREACH_NLRI, always with the 2-byte attribute length.
        for nlri in _nlri_chunks(prefixes, self.max_len - HEADER_LEN - 4 - 4 - 3):
            attr = b"".join(
                (
                    bytes((OPTIONAL | EXTENDED, MP_UNREACH_NLRI)),
                    (len(nlri) + 3).to_bytes(2, "big"),
                    struct.pack(">HB", afi, Safi.UNICAST),
                    nlri,
                )
            )
            out.append(encode_message(MsgType.UPDATE, b"\x00\x00" + len(attr).to_bytes(2, "big") + attr))
        return out

    def end_of_rib(self, afi: Afi) -> bytes:
        """RFC 4724 2: an empty UPDATE for IPv4, an empty MP_UNREACH_NLRI otherwise."""
        if afi == _IPV4:
            return encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00")
        attr = bytes((OPTIONAL, MP_UNREACH_NLRI, 3)) + struct.pack(">HB", afi, Safi.UNICAST)
        return encode_message(MsgType.UPDATE, b"\x00\x00" + len(attr).to_bytes(2, "big") + attr)
