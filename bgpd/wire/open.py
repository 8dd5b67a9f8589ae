"""OPEN messages and capabilities (RFC 4271 4.2 and 6.2, RFC 5492, RFC 4760, RFC 2918, RFC 6793)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from bgpd.wire.errors import BgpError, ErrCode, OpenSub
from bgpd.wire.framing import encode_message
from bgpd.wire.messages import (
    AS_TRANS,
    BGP_VERSION,
    Capabilities,
    CapCode,
    GracefulRestart,
    LlgrFamily,
    MsgType,
    Open,
)

PARAM_CAPABILITIES = 2
# RFC 9072: an Optional Parameters Length of 255 followed by a parameter type of 255 switches
# to 2-byte lengths. We never send it but accept it.
PARAM_EXTENDED = 255

_OPEN_HEAD = struct.Struct(">BHH4sB")


def _malformed(reason: str) -> BgpError:
    return BgpError(ErrCode.OPEN_MESSAGE, 0, b"", f"OPEN Message Error: {reason}")


def encode_capability(code: int, value: bytes = b"") -> bytes:
    return bytes((code, len(value))) + value


def encode_open(
    my_asn: int,
    hold_time: int,
    router_id: str,
    afis: list[tuple[int, int]],
    route_refresh: bool = True,
    four_octet: bool = True,
    extra_caps: Iterable[tuple[int, bytes]] = (),
    capabilities: Capabilities | None = None,
) -> bytes:
    """A whole OPEN message (with header).

    ``capabilities`` adds the optional capabilities it sets (enhanced route refresh, extended
    message, extended next hop, graceful restart, LLGR, ADD-PATH, FQDN; its ``unknown`` ones as
    is); ``extra_caps`` are further raw (code, value) capabilities, appended as is.
    """
    caps = [encode_capability(CapCode.MULTIPROTOCOL, struct.pack(">HBB", afi, 0, safi)) for afi, safi in afis]
    if route_refresh:
        caps.append(encode_capability(CapCode.ROUTE_REFRESH))
    if four_octet:
        caps.append(encode_capability(CapCode.FOUR_OCTET_AS, struct.pack(">I", my_asn)))
    if capabilities is not None:
        caps.extend(encode_capability(code, value) for code, value in optional_capabilities(capabilities))
    caps.extend(encode_capability(code, value) for code, value in extra_caps)
    # All capabilities in one Capabilities parameter, as BIRD does.
    value = b"".join(caps)
    if len(value) <= 253:
        params = bytes((PARAM_CAPABILITIES, len(value))) + value
    else:
        # RFC 9072: the non-extended form cannot hold them; switch to 2-byte lengths.
        inner = bytes((PARAM_CAPABILITIES,)) + struct.pack(">H", len(value)) + value
        params = bytes((PARAM_EXTENDED,)) + struct.pack(">H", len(inner)) + inner
        wire_asn = my_asn if my_asn <= 0xFFFF else AS_TRANS
        rid = ipaddress.IPv4Address(router_id).packed
        body = _OPEN_HEAD.pack(BGP_VERSION, wire_asn, hold_time, rid, 255) + params
        return encode_message(MsgType.OPEN, body)
    wire_asn = my_asn if my_asn <= 0xFFFF else AS_TRANS
    rid = ipaddress.IPv4Address(router_id).packed
    body = _OPEN_HEAD.pack(BGP_VERSION, wire_asn, hold_time, rid, len(params)) + bytes(params)
    return encode_message(MsgType.OPEN, body)


def optional_capabilities(caps: Capabilities) -> list[tuple[int, bytes]]:
    """(code, value) for every optional capability ``caps`` sets (not MP/RR/4-octet AS)."""
    out: list[tuple[int, bytes]] = []
    if caps.extended_next_hop:
        out.append(
            (CapCode.EXTENDED_NEXT_HOP, b"".join(struct.pack(">HHH", *t) for t in caps.extended_next_hop))
        )
    if caps.extended_message:
        out.append((CapCode.EXTENDED_MESSAGE, b""))
    gr = caps.graceful_restart
    if gr is not None:
        head = struct.pack(">H", ((gr.flags & 0xF) << 12) | (gr.time & 0xFFF))
        out.append((CapCode.GRACEFUL_RESTART, head + b"".join(struct.pack(">HBB", *f) for f in gr.families)))
    if caps.add_path:
        out.append((CapCode.ADD_PATH, b"".join(struct.pack(">HBB", *t) for t in caps.add_path)))
    if caps.enhanced_route_refresh:
        out.append((CapCode.ENHANCED_ROUTE_REFRESH, b""))
    if caps.llgr is not None:
        value = b"".join(
            struct.pack(">HBB", f.afi, f.safi, f.flags) + (f.stale_time & 0xFFFFFF).to_bytes(3, "big")
            for f in caps.llgr
        )
        out.append((CapCode.LLGR, value))
    if caps.hostname is not None:
        host = caps.hostname.encode("utf-8")[:255]
        dom = (caps.domain or "").encode("utf-8")[:255]
        out.append((CapCode.FQDN, bytes((len(host),)) + host + bytes((len(dom),)) + dom))
    out.extend(caps.unknown)
    return out


def decode_open(body: bytes) -> Open:
    """Parse and check an OPEN body (RFC 4271 6.2); the peer AS is checked by the session."""
    if len(body) < _OPEN_HEAD.size:
        raise _malformed(f"body of {len(body)} bytes is too short")
    version, asn, hold_time, rid, opt_len = _OPEN_HEAD.unpack_from(body)
    if version != BGP_VERSION:
        # Data: the largest version we support, as 2 octets.
        raise BgpError(
            ErrCode.OPEN_MESSAGE,
            OpenSub.UNSUPPORTED_VERSION,
            struct.pack(">H", BGP_VERSION),
            f"OPEN Message Error / Unsupported Version Number: peer speaks version {version}",
        )
    if hold_time in (1, 2):
        raise BgpError(
            ErrCode.OPEN_MESSAGE,
            OpenSub.UNACCEPTABLE_HOLD_TIME,
            b"",
            f"OPEN Message Error / Unacceptable Hold Time: {hold_time}",
        )
    if rid == b"\x00\x00\x00\x00":
        # RFC 6286 relaxed the identifier to any non-zero 32-bit value.
        raise BgpError(ErrCode.OPEN_MESSAGE, OpenSub.BAD_BGP_IDENTIFIER, b"", "BGP identifier is 0.0.0.0")
    caps = Capabilities()
    for ptype, value in _params(body, opt_len):
        if ptype != PARAM_CAPABILITIES:
            # RFC 5492 deprecated everything but capabilities (type 1, authentication, is obsolete).
            raise BgpError(
                ErrCode.OPEN_MESSAGE,
                OpenSub.UNSUPPORTED_OPTIONAL_PARAMETER,
                b"",
                f"OPEN Message Error / Unsupported Optional Parameter: type {ptype}",
            )
        _parse_capabilities(value, caps)
    return Open(
        asn=asn,
        hold_time=hold_time,
        router_id=str(ipaddress.IPv4Address(rid)),
        capabilities=caps,
        version=version,
    )


def _params(body: bytes, opt_len: int) -> list[tuple[int, bytes]]:
    pos = _OPEN_HEAD.size
    end = len(body)
    wide = opt_len == 255 and end > pos and body[pos] == PARAM_EXTENDED
    if wide:
        # RFC 9072: type 255, 2-byte length of the parameters, then (type, 2-byte length) each.
        if end < pos + 3:
            raise _malformed("truncated extended optional parameters length")
        opt_len = (body[pos + 1] << 8) | body[pos + 2]
        pos += 3
    if pos + opt_len != end:
        raise _malformed(f"optional parameters length {opt_len} does not match the message")
    hdr = 3 if wide else 2
    out: list[tuple[int, bytes]] = []
    while pos < end:
        if pos + hdr > end:
            raise _malformed("truncated optional parameter")
        ptype = body[pos]
        plen = (body[pos + 1] << 8) | body[pos + 2] if wide else body[pos + 1]
        pos += hdr
        if pos + plen > end:
            raise _malformed(f"optional parameter type {ptype} overruns the message")
        out.append((ptype, body[pos : pos + plen]))
        pos += plen
    return out


def _parse_capabilities(data: bytes, caps: Capabilities) -> None:
    pos = 0
    end = len(data)
    while pos < end:
        if pos + 2 > end:
            raise _malformed("truncated capability")
        code = data[pos]
        clen = data[pos + 1]
        pos += 2
        if pos + clen > end:
            raise _malformed(f"capability {code} overruns its parameter")
        value = data[pos : pos + clen]
        pos += clen
        if code == CapCode.MULTIPROTOCOL:
            if clen != 4:
                raise _malformed(f"multiprotocol capability of length {clen}")
            afi, _reserved, safi = struct.unpack(">HBB", value)
            if (afi, safi) not in caps.multiprotocol:
                caps.multiprotocol.append((afi, safi))
        elif code == CapCode.ROUTE_REFRESH:
            # Length must be 0; a non-empty value is harmless, so it is not worth a reset.
            caps.route_refresh = True
        elif code == CapCode.FOUR_OCTET_AS:
            if clen != 4:
                raise _malformed(f"4-octet AS capability of length {clen}")
            caps.four_octet_as = int.from_bytes(value, "big")
        elif not _optional_capability(code, value, caps):
            # Unknown, or known but malformed: kept as is for `show neighbors`, never fatal
            # (RFC 5492 5: a speaker ignores capabilities it does not understand).
            caps.unknown.append((code, value))


def _optional_capability(code: int, value: bytes, caps: Capabilities) -> bool:
    """Parse one optional capability into ``caps``; False when unknown or malformed."""
    n = len(value)
    if code == CapCode.EXTENDED_NEXT_HOP:
        if n % 6 or not n:
            return False
        for afi, safi, nh_afi in struct.iter_unpack(">HHH", value):
            if (afi, safi, nh_afi) not in caps.extended_next_hop:
                caps.extended_next_hop.append((afi, safi, nh_afi))
    elif code == CapCode.EXTENDED_MESSAGE:
        if n:
            return False
        caps.extended_message = True
    elif code == CapCode.GRACEFUL_RESTART:
        if n < 2 or (n - 2) % 4:
            return False
        head = (value[0] << 8) | value[1]
        caps.graceful_restart = GracefulRestart(
            head >> 12,
            head & 0xFFF,
            [(afi, safi, fl) for afi, safi, fl in struct.iter_unpack(">HBB", value[2:])],
        )
    elif code == CapCode.ADD_PATH:
        if n % 4 or not n:
            return False
        for afi, safi, mode in struct.iter_unpack(">HBB", value):
            if 1 <= mode <= 3:  # RFC 7911 4: other values are ignored
                caps.add_path.append((afi, safi, mode))
    elif code == CapCode.ENHANCED_ROUTE_REFRESH:
        if n:
            return False
        caps.enhanced_route_refresh = True
    elif code == CapCode.LLGR:
        if n % 7:
            return False
        caps.llgr = [
            LlgrFamily(
                (value[i] << 8) | value[i + 1],
                value[i + 2],
                value[i + 3],
                int.from_bytes(value[i + 4 : i + 7], "big"),
            )
            for i in range(0, n, 7)
        ]
    elif code == CapCode.FQDN:
        if n < 2 or 1 + value[0] + 1 > n or 2 + value[0] + value[1 + value[0]] != n:
            return False
        hl = value[0]
        caps.hostname = value[1 : 1 + hl].decode("utf-8", "replace")
        caps.domain = value[2 + hl :].decode("utf-8", "replace")
    else:
        return False
    return True
