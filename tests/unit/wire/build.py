"""Hand-building of UPDATE bodies for the tests (independent of the encoder under test)."""

from __future__ import annotations

import struct

from bgpd.wire import MessageFramer, Update, UpdateDecoder, decode_message


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return bytes((flags, code)) + struct.pack(">H", len(value)) + value
    assert len(value) <= 255
    return bytes((flags, code, len(value))) + value


def origin(value: int = 0) -> bytes:
    return attr(0x40, 1, bytes((value,)))


def as_path(*asns: int, seg_type: int = 2, four: bool = True) -> bytes:
    fmt = ">%dI" if four else ">%dH"
    return attr(0x40, 2, bytes((seg_type, len(asns))) + struct.pack(fmt % len(asns), *asns))


def next_hop(ip: str = "192.0.2.1") -> bytes:
    return attr(0x40, 3, bytes(int(x) for x in ip.split(".")))


def med(value: int) -> bytes:
    return attr(0x80, 4, struct.pack(">I", value))


def local_pref(value: int) -> bytes:
    return attr(0x40, 5, struct.pack(">I", value))


def communities(*values: int) -> bytes:
    return attr(0xC0, 8, struct.pack(f">{len(values)}I", *values))


def mandatory(*asns: int) -> bytes:
    return origin() + as_path(*(asns or (65001,))) + next_hop()


def v4(*prefixes: str) -> bytes:
    out = b""
    for p in prefixes:
        addr, plen_s = p.split("/")
        plen = int(plen_s)
        octets = bytes(int(x) for x in addr.split("."))
        out += bytes((plen,)) + octets[: (plen + 7) // 8]
    return out


def v6(*prefixes: str) -> bytes:
    import ipaddress

    out = b""
    for p in prefixes:
        net = ipaddress.IPv6Network(p)
        out += bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) // 8]
    return out


def mp_reach(nlri: bytes, nh: bytes, afi: int = 2, safi: int = 1) -> bytes:
    return attr(0x90, 14, struct.pack(">HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


def mp_unreach(nlri: bytes, afi: int = 2, safi: int = 1) -> bytes:
    return attr(0x90, 15, struct.pack(">HB", afi, safi) + nlri)


def body(attrs: bytes = b"", nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    return struct.pack(">H", len(withdrawn)) + withdrawn + struct.pack(">H", len(attrs)) + attrs + nlri


def decode(b: bytes, four_octet: bool = True, ebgp: bool = True) -> Update:
    return UpdateDecoder(four_octet=four_octet, ebgp=ebgp).decode(b)


def decode_stream(data: bytes, dec: UpdateDecoder | None = None) -> list[object]:
    framer = MessageFramer()
    return [decode_message(t, b, dec) for t, b in framer.feed(data)]
