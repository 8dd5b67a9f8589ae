"""OPEN messages and capabilities (RFC 4271 4.2 and 6.2, RFC 5492, RFC 4760, RFC 2918, RFC 6793)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from bgpd.wire.errors import BgpError, ErrCode, OpenSub
from bgpd.wire.framing import encode_message
from bgpd.wire.messages import AS_TRANS, BGP_VERSION, Capabilities, CapCode, MsgType, Open

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
) -> bytes:
    """A whole OPEN message (with header).

    ``extra_caps`` are further (code, value) capabilities, e.g. graceful restart, appended as is.
    """
    caps = [encode_capability(CapCode.MULTIPROTOCOL, struct.pack(">HBB", afi, 0, safi)) for afi, safi in afis]
    if route_refresh:
        caps.append(encode_capability(CapCode.ROUTE_REFRESH))
    if four_octet:
        caps.append(encode_capability(CapCode.FOUR_OCTET_AS, struct.pack(">I", my_asn)))
    caps.extend(encode_capability(code, value) for code, value in extra_caps)
    # All capabilities in one Capabilities parameter, as BIRD does (the whole optional
    # parameters field is at most 255 bytes, so splitting would not buy room).
    value = b"".join(caps)
    if len(value) > 253:
        raise ValueError("too many capabilities for an OPEN without RFC 9072 extended parameters")
    params = bytes((PARAM_CAPABILITIES, len(value))) + value
    wire_asn = my_asn if my_asn <= 0xFFFF else AS_TRANS
    rid = ipaddress.IPv4Address(router_id).packed
    body = _OPEN_HEAD.pack(BGP_VERSION, wire_asn, hold_time, rid, len(params)) + bytes(params)
    return encode_message(MsgType.OPEN, body)


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
        else:
            caps.unknown.append((code, value))
