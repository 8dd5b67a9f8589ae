"""Golden bytes: hand-written hex for each message kind, checked in both directions."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from bgpd.wire import (
    Capabilities,
    Keepalive,
    MessageFramer,
    Notification,
    Open,
    RouteRefresh,
    UpdateDecoder,
    UpdateEncoder,
    decode_message,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from rib.attrs import PathAttrs, intern
from rib.prefix import Afi, parse_prefix

MARKER = "ff" * 16


def h(text: str) -> bytes:
    """Hex with spaces, newlines and ``#`` comments for readability."""
    return bytes.fromhex("".join(line.partition("#")[0] for line in text.splitlines()).replace(" ", ""))


def one(data: bytes, dec: UpdateDecoder | None = None) -> object:
    msgs = MessageFramer().feed(data)
    assert len(msgs) == 1
    return decode_message(*msgs[0], dec)


OPEN_HEX = f"""
{MARKER} 0033 01
04            # version
5ba0          # My AS = AS_TRANS (23456)
005a          # hold time 90
c0000201      # BGP identifier 192.0.2.1
16            # optional parameters length 22
02 14         # capabilities parameter, 20 bytes
  01 04 0001 00 01    # multiprotocol IPv4 unicast
  01 04 0002 00 01    # multiprotocol IPv6 unicast
  02 00               # route refresh
  41 04 fa56ea01      # 4-octet AS 4200000001
"""


def test_open_golden_encode() -> None:
    got = encode_open(4200000001, 90, "192.0.2.1", [(1, 1), (2, 1)], route_refresh=True, four_octet=True)
    assert got == h(OPEN_HEX)


def test_open_golden_decode() -> None:
    msg = one(h(OPEN_HEX))
    assert msg == Open(
        asn=23456,
        hold_time=90,
        router_id="192.0.2.1",
        capabilities=Capabilities(
            multiprotocol=[(1, 1), (2, 1)], route_refresh=True, four_octet_as=4200000001, unknown=[]
        ),
    )
    assert isinstance(msg, Open)
    assert msg.peer_asn == 4200000001


def test_open_small_asn_keeps_my_as() -> None:
    got = encode_open(65001, 180, "10.0.0.1", [(1, 1)], route_refresh=False, four_octet=False)
    assert got == h(f"{MARKER} 0025 01 04 fde9 00b4 0a000001 08 02 06 01 04 0001 00 01")


def test_keepalive_golden() -> None:
    assert encode_keepalive() == h(f"{MARKER} 0013 04")
    assert one(h(f"{MARKER} 0013 04")) == Keepalive()


def test_notification_golden() -> None:
    # Cease / Administrative Shutdown with a shutdown communication "bye" (RFC 9003: length byte).
    wire = h(f"{MARKER} 0019 03 06 02 03 627965")
    assert encode_notification(6, 2, b"\x03bye") == wire
    assert one(wire) == Notification(6, 2, b"\x03bye")


def test_notification_without_data() -> None:
    wire = h(f"{MARKER} 0015 03 04 00")
    assert encode_notification(4, 0) == wire
    assert one(wire) == Notification(4, 0, b"")


def test_route_refresh_golden() -> None:
    wire = h(f"{MARKER} 0017 05 0002 00 01")
    assert encode_route_refresh(2, 1) == wire
    assert one(wire) == RouteRefresh(afi=2, safi=1, subtype=0)
    # RFC 7313 BoRR
    assert one(encode_route_refresh(1, 1, 1)) == RouteRefresh(1, 1, 1)


UPDATE_V4_HEX = f"""
{MARKER} 004e 02
0000                              # withdrawn routes length
0031                              # total path attribute length 49
40 01 01 00                       # ORIGIN IGP
40 02 0a 02 02 0000fde9 0000fdea  # AS_PATH sequence 65001 65002
40 03 04 c0000201                 # NEXT_HOP 192.0.2.1
80 04 04 00000064                 # MED 100
40 05 04 000000c8                 # LOCAL_PREF 200
c0 08 08 fde90001 fde90002        # COMMUNITIES 65001:1 65001:2
08 0a                             # 10.0.0.0/8
18 c0a801                         # 192.168.1.0/24
"""

V4_ATTRS = PathAttrs(
    origin=0,
    as_path=((2, (65001, 65002)),),
    next_hop=IPv4Address("192.0.2.1"),
    med=100,
    local_pref=200,
    communities=((65001 << 16) | 1, (65001 << 16) | 2),
)


def test_update_v4_golden_encode() -> None:
    keys = [parse_prefix("10.0.0.0/8")[1], parse_prefix("192.168.1.0/24")[1]]
    msgs = UpdateEncoder(four_octet=True).announce(Afi.IPV4, intern(V4_ATTRS), keys)
    assert msgs == [h(UPDATE_V4_HEX)]


def test_update_v4_golden_decode() -> None:
    upd = one(h(UPDATE_V4_HEX), UpdateDecoder(four_octet=True, ebgp=False))
    assert upd.announce == [(Afi.IPV4, V4_ATTRS, [b"\x08\x0a", b"\x18\xc0\xa8\x01"])]
    assert upd.announce[0][1] is intern(V4_ATTRS)
    assert upd.withdraw == [] and upd.errors == [] and upd.end_of_rib is None


UPDATE_V6_HEX = f"""
{MARKER} 0059 02
0000                                 # withdrawn routes length
0042                                 # total path attribute length 66
90 0e 0031                           # MP_REACH_NLRI, extended length 49
  0002 01 20                         # AFI 2 SAFI 1, next hop length 32
  20010db8000000000000000000000001   # 2001:db8::1
  fe800000000000000000000000000001   # fe80::1
  00                                 # reserved
  20 20010db8                        # 2001:db8::/32
  30 20010db80001                    # 2001:db8:1::/48
40 01 01 00                          # ORIGIN IGP
40 02 06 02 01 0000fde9              # AS_PATH sequence 65001
"""

V6_ATTRS = PathAttrs(
    origin=0,
    as_path=((2, (65001,)),),
    next_hop=IPv6Address("2001:db8::1"),
    next_hop_ll=IPv6Address("fe80::1"),
)


def test_update_v6_golden_encode() -> None:
    keys = [parse_prefix("2001:db8::/32")[1], parse_prefix("2001:db8:1::/48")[1]]
    msgs = UpdateEncoder(four_octet=True).announce(Afi.IPV6, intern(V6_ATTRS), keys)
    assert msgs == [h(UPDATE_V6_HEX)]


def test_update_v6_golden_decode() -> None:
    upd = one(h(UPDATE_V6_HEX), UpdateDecoder(four_octet=True, ebgp=True))
    keys = [parse_prefix("2001:db8::/32")[1], parse_prefix("2001:db8:1::/48")[1]]
    assert upd.announce == [(Afi.IPV6, V6_ATTRS, keys)]
    assert upd.errors == []


def test_end_of_rib_v4_golden() -> None:
    wire = h(f"{MARKER} 0017 02 0000 0000")
    assert UpdateEncoder(True).end_of_rib(Afi.IPV4) == wire
    upd = one(wire, UpdateDecoder(True, True))
    assert upd.end_of_rib is Afi.IPV4
    assert upd.announce == [] and upd.withdraw == []


def test_end_of_rib_v6_golden() -> None:
    wire = h(f"{MARKER} 001d 02 0000 0006 80 0f 03 0002 01")
    assert UpdateEncoder(True).end_of_rib(Afi.IPV6) == wire
    upd = one(wire, UpdateDecoder(True, True))
    assert upd.end_of_rib is Afi.IPV6
    assert upd.announce == [] and upd.withdraw == [] and upd.errors == []


def test_withdraw_golden() -> None:
    keys = [parse_prefix("10.0.0.0/8")[1], parse_prefix("192.168.1.0/24")[1]]
    wire = h(f"{MARKER} 001d 02 0006 080a 18c0a801 0000")
    assert UpdateEncoder(True).withdraw(Afi.IPV4, keys) == [wire]
    upd = one(wire, UpdateDecoder(True, True))
    assert upd.withdraw == [(Afi.IPV4, keys)]
    assert upd.end_of_rib is None


def test_withdraw_v6_golden() -> None:
    keys = [parse_prefix("2001:db8::/32")[1]]
    wire = h(f"{MARKER} 0023 02 0000 000c 90 0f 0008 0002 01 20 20010db8")
    assert UpdateEncoder(True).withdraw(Afi.IPV6, keys) == [wire]
    upd = one(wire, UpdateDecoder(True, True))
    assert upd.withdraw == [(Afi.IPV6, keys)]
    assert upd.end_of_rib is None
