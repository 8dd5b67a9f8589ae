"""The rtnetlink encoding and decoding of fib.netlink, without touching kernel tables.

Messages built by the bulk writer are decoded again with the dump parser (an RTM_NEWROUTE
request has the layout of a dumped route), and checked field by field.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from fib import netlink as nl
from fib.model import FibError
from rib.prefix import Afi, PrefixKey, parse_prefix

ip = ipaddress.ip_address


def key(text: str) -> PrefixKey:
    return parse_prefix(text)[1]


@pytest.fixture
def fib():
    f = nl.NetlinkFib(protocol=186)  # a netlink socket needs no privileges; nothing is sent
    yield f
    f.close()


def messages(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        mlen = struct.unpack_from("=I", data, pos)[0]
        out.append(data[pos : pos + mlen])
        pos += (mlen + 3) & ~3
    return out


def attrs(msg: bytes, start: int = 28) -> dict[int, bytes]:
    found = {}
    pos = start
    while pos + 4 <= len(msg):
        alen, atype = struct.unpack_from("=HH", msg, pos)
        found[atype] = msg[pos + 4 : pos + alen]
        pos += (alen + 3) & ~3
    return found


def encode(fib: nl.NetlinkFib, table: int, afi: Afi, ops: list) -> tuple[list[bytes], list[FibError]]:
    errors: list[FibError] = []
    out = []
    wanted = dict(ops)
    for _base, data, _sent in fib._batches(table, afi, list(wanted), list(wanted.values()), errors):
        out.extend(messages(data))
    return out, errors


def decode(msg: bytes) -> tuple[int, int, int, int, PrefixKey, tuple]:
    parsed = nl.parse_route(msg, 0, len(msg), nl._Gateways())
    assert parsed is not None
    return parsed


@pytest.mark.parametrize("table", [254, 500, 0x7FFFFFFF])
def test_new_route_fields(fib: nl.NetlinkFib, table: int) -> None:
    nexthops = (ip("10.0.0.1"),)
    (msg,), errors = encode(fib, table, Afi.IPV4, [(key("192.0.2.0/24"), nexthops)])
    assert errors == []
    mlen, mtype, flags, _seq, pid = struct.unpack_from("=IHHII", msg)
    assert (mlen, mtype, pid) == (len(msg), nl.RTM_NEWROUTE, 0)
    assert flags == nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    rtmsg = struct.unpack_from("=BBBBBBBBI", msg, 16)
    family, dst_len, src_len, tos, table8, proto, scope, rtype, rflags = rtmsg
    assert (family, dst_len, src_len, tos, proto) == (socket.AF_INET, 24, 0, 0, 186)
    assert (scope, rtype, rflags) == (nl.RT_SCOPE_UNIVERSE, nl.RTN_UNICAST, 0)
    assert table8 == (table if table < 256 else 0)  # ids above 255 only in RTA_TABLE
    found = attrs(msg)
    assert struct.unpack("=I", found[nl.RTA_TABLE])[0] == table
    assert found[nl.RTA_DST] == bytes([192, 0, 2, 0])
    assert found[nl.RTA_GATEWAY] == bytes([10, 0, 0, 1])
    assert nl.RTA_MULTIPATH not in found
    assert decode(msg) == (socket.AF_INET, table, 186, nl.RTN_UNICAST, key("192.0.2.0/24"), nexthops)


def test_delete_matches_only_our_protocol(fib: nl.NetlinkFib) -> None:
    (msg,), _ = encode(fib, 500, Afi.IPV6, [(key("2001:db8::/32"), ())])
    _mlen, mtype, flags, _seq, _pid = struct.unpack_from("=IHHII", msg)
    assert (mtype, flags) == (nl.RTM_DELROUTE, nl.NLM_F_REQUEST | nl.NLM_F_ACK)
    family, dst_len, _s, _t, table8, proto, scope, rtype, _f = struct.unpack_from("=BBBBBBBBI", msg, 16)
    assert (family, dst_len, table8, proto) == (socket.AF_INET6, 32, 0, 186)
    assert (scope, rtype) == (nl.RT_SCOPE_NOWHERE, 0)  # any scope, any type
    found = attrs(msg)
    assert found[nl.RTA_DST] == ipaddress.IPv6Address("2001:db8::").packed
    assert struct.unpack("=I", found[nl.RTA_TABLE])[0] == 500
    assert nl.RTA_GATEWAY not in found


@pytest.mark.parametrize(
    ("afi", "prefix", "gateways"),
    [
        (Afi.IPV4, "10.1.0.0/16", ("10.0.0.1", "10.0.0.2")),
        (Afi.IPV4, "0.0.0.0/0", ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
        (Afi.IPV6, "2001:db8:1::/48", ("fd00::1", "fd00::2")),
        (Afi.IPV6, "::/0", ("fd00::1", "fe80::1%7")),
    ],
)
def test_multipath_round_trip(fib: nl.NetlinkFib, afi: Afi, prefix: str, gateways: tuple[str, ...]) -> None:
    nexthops = tuple(ip(g) for g in gateways)
    (msg,), _ = encode(fib, 500, afi, [(key(prefix), nexthops)])
    found = attrs(msg)
    assert nl.RTA_GATEWAY not in found
    body = found[nl.RTA_MULTIPATH]
    hops = []
    pos = 0
    while pos < len(body):
        nh_len, nh_flags, nh_hops, ifindex = struct.unpack_from("=HBBi", body, pos)
        assert (nh_flags, nh_hops) == (0, 0)  # weight 1
        hops.append(ifindex)
        pos += nh_len
    assert hops == [7 if "%" in g else 0 for g in gateways]
    assert decode(msg)[4:] == (key(prefix), nexthops)


def test_duplicate_gateways_are_sent_once(fib: nl.NetlinkFib) -> None:
    g = ip("10.0.0.1")
    (msg,), _ = encode(fib, 254, Afi.IPV4, [(key("10.9.0.0/16"), (g, g))])
    assert decode(msg)[5] == (g,)
    assert nl.RTA_MULTIPATH not in attrs(msg)


def test_link_local_gateway_carries_its_interface(fib: nl.NetlinkFib) -> None:
    (msg,), _ = encode(fib, 254, Afi.IPV6, [(key("2001:db8::/32"), (ip("fe80::1%7"),))])
    found = attrs(msg)
    assert struct.unpack("=i", found[nl.RTA_OIF])[0] == 7
    assert decode(msg)[5] == (ip("fe80::1%7"),)  # index 7 has no name here: kept numeric


def test_unknown_interface_is_an_error_for_that_prefix_only(fib: nl.NetlinkFib) -> None:
    ops = [(key("10.1.0.0/16"), (ip("fe80::1%nosuchif0"),)), (key("10.2.0.0/16"), (ip("10.0.0.1"),))]
    msgs, errors = encode(fib, 254, Afi.IPV6, ops)
    assert len(msgs) == 1
    assert [(e.prefix, e.op) for e in errors] == [(key("10.1.0.0/16"), "replace")]


def test_ipv4_route_via_ipv6_gateway_uses_rta_via(fib: nl.NetlinkFib) -> None:
    gw = ip("fd00::1")
    (msg,), _ = encode(fib, 254, Afi.IPV4, [(key("198.51.100.0/24"), (gw,))])
    via = attrs(msg)[nl.RTA_VIA]
    assert struct.unpack_from("=H", via)[0] == socket.AF_INET6
    assert via[2:] == gw.packed
    assert decode(msg)[5] == (gw,)


def test_batches_split_by_size_with_consecutive_sequence_numbers() -> None:
    fib = nl.NetlinkFib(batch=4096)
    try:
        ops = [(key(f"10.{i // 256}.{i % 256}.0/24"), (ip("10.255.0.1"),)) for i in range(1000)]
        wanted = dict(ops)
        batches = list(fib._batches(500, Afi.IPV4, list(wanted), list(wanted.values()), []))
        assert len(batches) > 1
        seqs = []
        for base, data, sent in batches:
            assert len(data) <= 4096 + 64
            msgs = messages(data)
            assert len(msgs) == len(sent)
            got = [struct.unpack_from("=I", m, 8)[0] for m in msgs]
            assert got == list(range(base, base + len(msgs)))
            assert [decode(m)[4] for m in msgs] == sent
            seqs.extend(got)
        assert seqs == list(range(seqs[0], seqs[0] + 1000))
    finally:
        fib.close()


def test_spread_keeps_every_op_once() -> None:
    ops = [(bytes([24, 10, i >> 8, i & 255]), ()) for i in range(1000)]
    spread = nl._spread(ops)
    assert sorted(spread) == sorted(ops)
    assert spread != ops
    assert nl._spread(ops[:10]) == ops[:10]


def kernel_route(table: int, dst: bytes, plen: int, tail: bytes, proto: int = 186) -> bytes:
    """An IPv4 route as the kernel dumps it: RTA_TABLE, RTA_DST, then ``tail`` (gateways...)."""
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, plen, 0, 0, min(table, 252), proto, 0, nl.RTN_UNICAST, 0)
    body += nl._attr(nl.RTA_TABLE, struct.pack("=I", table))
    body += (nl._attr(nl.RTA_DST, dst) if plen else b"") + tail  # no RTA_DST for a default route
    return struct.pack("=IHHII", 16 + len(body), nl.RTM_NEWROUTE, 2, 1, 0) + body


ONE_HOP = nl._attr(nl.RTA_GATEWAY, bytes([10, 0, 0, 9])) + nl._attr(nl.RTA_OIF, struct.pack("=i", 3))
TWO_HOPS = nl._attr(
    nl.RTA_MULTIPATH,
    b"".join(
        struct.pack("=HBBi", 16, 0, 0, 3) + nl._attr(nl.RTA_GATEWAY, bytes([10, 0, 0, g])) for g in (9, 10)
    ),
)


@pytest.mark.parametrize(
    ("tail", "gateways"), [(ONE_HOP, ("10.0.0.9",)), (TWO_HOPS, ("10.0.0.9", "10.0.0.10"))]
)
def test_dump_fast_path_agrees_with_the_general_parser(tail: bytes, gateways: tuple[str, ...]) -> None:
    cache = nl._Gateways()
    msg = kernel_route(500, bytes([203, 0, 113, 0]), 24, tail)
    fast = nl._decode_route(msg, 0, len(msg), cache)
    full = nl.parse_route(msg, 0, len(msg), nl._Gateways())
    assert full is not None
    want = (500, key("203.0.113.0/24"), tuple(ip(g) for g in gateways))
    assert fast == (full[1], full[4], full[5]) == want
    # The next route with the same gateways shares the decoded tuple.
    msg2 = kernel_route(500, bytes([203, 0, 114, 0]), 23, tail)
    other = nl._decode_route(msg2, 0, len(msg2), cache)
    assert other is not None and fast is not None
    assert other[1] == key("203.0.114.0/23")
    assert other[2] is fast[2]
    # A default route has no RTA_DST: the general parser takes it.
    msg3 = kernel_route(500, b"", 0, tail)
    assert nl._decode_route(msg3, 0, len(msg3), cache) == (500, key("0.0.0.0/0"), want[2])


def test_error_reason_reads_extended_ack() -> None:
    text = b"Nexthop has invalid gateway\0"
    inner = struct.pack("=IHHII", 52, nl.RTM_NEWROUTE, 0x505, 77, 0)
    payload = struct.pack("=i", -101) + inner + nl._attr(nl.NLMSGERR_ATTR_MSG, text)
    msg = struct.pack("=IHHII", 16 + len(payload), nl.NLMSG_ERROR, nl.NLM_F_CAPPED | 0x200, 77, 0) + payload
    reason = nl._error_reason(bytearray(msg), 0, len(msg), nl.NLM_F_CAPPED, 101)
    assert reason == "Nexthop has invalid gateway"
    bare = struct.pack("=IHHII", 36, nl.NLMSG_ERROR, nl.NLM_F_CAPPED, 77, 0) + struct.pack("=i", -101) + inner
    assert nl._error_reason(bytearray(bare), 0, len(bare), nl.NLM_F_CAPPED, 101) == "Network is unreachable"


def test_protocol_must_fit_rtm_protocol() -> None:
    with pytest.raises(ValueError):
        nl.NetlinkFib(protocol=300)
