"""Scapy's BGP layer as an independent implementation: it decodes ours, we decode its."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.config import conf

# Older scapy reads this at import; newer keeps the switch in bgp_module_conf (set below).
conf.contribs["bgp"] = {"use_2_bytes_asn": False}

from scapy.contrib import bgp as sbgp  # noqa: E402
from scapy.contrib.bgp import (  # noqa: E402
    BGPCapability,
    BGPCapFourBytesASN,
    BGPCapGeneric,
    BGPCapMultiprotocol,
    BGPHeader,
    BGPKeepAlive,
    BGPNLRI_IPv4,
    BGPNLRI_IPv6,
    BGPNotification,
    BGPOpen,
    BGPOptParam,
    BGPPAAS4BytesPath,
    BGPPAMPReachNLRI,
    BGPPAMPUnreachNLRI,
    BGPPAMPUnreachNLRI_IPv6,
    BGPPathAttr,
    BGPRouteRefresh,
    BGPUpdate,
)
from scapy.packet import Raw  # noqa: E402

from bgpd.wire import (  # noqa: E402
    Keepalive,
    MessageFramer,
    Notification,
    Open,
    RouteRefresh,
    Update,
    UpdateDecoder,
    UpdateEncoder,
    decode_message,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from rib.attrs import PathAttrs, intern  # noqa: E402
from rib.prefix import Afi, key_to_str, parse_prefix  # noqa: E402


@pytest.fixture(autouse=True)
def four_byte_asn_in_scapy() -> Iterator[None]:
    old = sbgp.bgp_module_conf.use_2_bytes_asn
    sbgp.bgp_module_conf.use_2_bytes_asn = False
    yield
    sbgp.bgp_module_conf.use_2_bytes_asn = old


def ours(data: bytes, dec: UpdateDecoder | None = None) -> object:
    msgs = MessageFramer().feed(data)
    assert len(msgs) == 1
    return decode_message(*msgs[0], dec)


def scapy_caps(opt_params: list[BGPOptParam]) -> list[BGPCapability]:
    """Scapy parses one capability per parameter and leaves the rest as Raw: walk the chain."""
    caps = []
    for param in opt_params:
        assert param.param_type == 2
        cap = param.param_value
        while cap is not None and not isinstance(cap, Raw):
            caps.append(cap)
            rest = bytes(cap.payload)
            cap.remove_payload()
            cap = BGPCapability(rest) if rest else None
        if isinstance(cap, Raw):
            cap = BGPCapability(cap.load)
            caps.append(cap)
    return caps


# --- ours -> scapy ----------------------------------------------------------------------------


def test_open_to_scapy() -> None:
    pkt = BGPHeader(encode_open(4200000001, 90, "192.0.2.1", [(1, 1), (2, 1)]))
    assert pkt.type == 1 and pkt.len == 51
    op = pkt[BGPOpen]
    assert (op.version, op.my_as, op.hold_time, op.bgp_id) == (4, 23456, 90, "192.0.2.1")
    caps = scapy_caps(op.opt_params)
    mp = [(c.afi, c.safi) for c in caps if isinstance(c, BGPCapMultiprotocol)]
    assert mp == [(1, 1), (2, 1)]
    assert [c.asn for c in caps if isinstance(c, BGPCapFourBytesASN)] == [4200000001]
    assert any(c.code == 2 for c in caps)


def test_keepalive_to_scapy() -> None:
    pkt = BGPHeader(encode_keepalive())
    assert isinstance(pkt, BGPKeepAlive)
    assert pkt.type == 4 and pkt.len == 19


def test_notification_to_scapy() -> None:
    pkt = BGPHeader(encode_notification(6, 4, b"reset"))
    n = pkt[BGPNotification]
    assert (n.error_code, n.error_subcode, n.data) == (6, 4, b"reset")


def test_route_refresh_to_scapy() -> None:
    rr = BGPHeader(encode_route_refresh(2, 1))[BGPRouteRefresh]
    assert (rr.afi, rr.safi, rr.subtype) == (2, 1, 0)


def attrs_by_code(upd: BGPUpdate) -> dict[int, BGPPathAttr]:
    return {a.type_code: a for a in upd.path_attr}


def test_update_v4_to_scapy() -> None:
    attrs = intern(
        PathAttrs(
            origin=2,
            as_path=((2, (65001, 4200000001)),),
            next_hop=IPv4Address("192.0.2.7"),
            med=50,
            local_pref=120,
            communities=(0xFDE90001,),
        )
    )
    keys = [parse_prefix(p)[1] for p in ("10.0.0.0/8", "192.168.4.0/22", "0.0.0.0/0")]
    (msg,) = UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs, keys)
    upd = BGPHeader(msg)[BGPUpdate]
    pa = attrs_by_code(upd)
    assert pa[1].attribute.origin == 2
    path = pa[2].attribute
    assert isinstance(path, BGPPAAS4BytesPath)
    assert [(s.segment_type, s.segment_value) for s in path.segments] == [(2, [65001, 4200000001])]
    assert pa[3].attribute.next_hop == "192.0.2.7"
    assert pa[4].attribute.med == 50
    assert pa[5].attribute.local_pref == 120
    assert pa[8].attribute.community == 0xFDE90001
    assert [n.prefix for n in upd.nlri] == ["10.0.0.0/8", "192.168.4.0/22", "0.0.0.0/0"]


def test_update_v6_to_scapy() -> None:
    attrs = intern(
        PathAttrs(
            as_path=((2, (65001,)),),
            next_hop=IPv6Address("2001:db8::1"),
            next_hop_ll=IPv6Address("fe80::1"),
        )
    )
    keys = [parse_prefix(p)[1] for p in ("2001:db8::/32", "2001:db8:ff00::/40")]
    (msg,) = UpdateEncoder(four_octet=True).announce(Afi.IPV6, attrs, keys)
    upd = BGPHeader(msg)[BGPUpdate]
    mp = attrs_by_code(upd)[14].attribute
    assert isinstance(mp, BGPPAMPReachNLRI)
    assert (mp.afi, mp.safi, mp.nh_addr_len) == (2, 1, 32)
    assert (mp.nh_v6_global, mp.nh_v6_link_local) == ("2001:db8::1", "fe80::1")
    assert [n.prefix for n in mp.nlri] == ["2001:db8::/32", "2001:db8:ff00::/40"]
    assert upd.nlri == []


def test_withdraw_v6_to_scapy() -> None:
    keys = [parse_prefix("2001:db8::/32")[1]]
    (msg,) = UpdateEncoder(four_octet=True).withdraw(Afi.IPV6, keys)
    mp = attrs_by_code(BGPHeader(msg)[BGPUpdate])[15].attribute
    assert isinstance(mp, BGPPAMPUnreachNLRI)
    assert (mp.afi, mp.safi) == (2, 1)
    assert [n.prefix for n in mp.afi_safi_specific.withdrawn_routes] == ["2001:db8::/32"]


def test_withdraw_v4_to_scapy() -> None:
    keys = [parse_prefix(p)[1] for p in ("10.0.0.0/8", "172.16.0.0/12")]
    (msg,) = UpdateEncoder(four_octet=True).withdraw(Afi.IPV4, keys)
    upd = BGPHeader(msg)[BGPUpdate]
    assert [n.prefix for n in upd.withdrawn_routes] == ["10.0.0.0/8", "172.16.0.0/12"]
    assert upd.path_attr == []


# --- scapy -> ours ----------------------------------------------------------------------------


def test_open_from_scapy() -> None:
    caps = (
        BGPCapMultiprotocol(afi=1, safi=1)
        / BGPCapMultiprotocol(afi=2, safi=1)
        / BGPCapGeneric(code=2)
        / BGPCapFourBytesASN(asn=4200000009)
    )
    op = BGPOpen(my_as=23456, hold_time=30, bgp_id="10.9.8.7", opt_params=[BGPOptParam(param_value=caps)])
    pkt = BGPHeader(type=1) / op
    msg = ours(bytes(pkt))
    assert isinstance(msg, Open)
    assert (msg.asn, msg.hold_time, msg.router_id, msg.peer_asn) == (23456, 30, "10.9.8.7", 4200000009)
    assert msg.capabilities.multiprotocol == [(1, 1), (2, 1)]
    assert msg.capabilities.route_refresh


def test_keepalive_and_notification_from_scapy() -> None:
    assert ours(bytes(BGPKeepAlive())) == Keepalive()
    pkt = BGPHeader(type=3) / BGPNotification(error_code=6, error_subcode=2, data=b"bye")
    assert ours(bytes(pkt)) == Notification(6, 2, b"bye")
    pkt = BGPHeader(type=5) / BGPRouteRefresh(afi=2, safi=1)
    assert ours(bytes(pkt)) == RouteRefresh(2, 1, 0)


def test_update_v4_from_scapy() -> None:
    seg = BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=[65010, 4200000002])
    path = BGPPAAS4BytesPath(segments=[seg])
    upd = BGPUpdate(
        path_attr=[
            BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=1)),
            BGPPathAttr(type_flags=0x40, type_code=2, attribute=path),
            BGPPathAttr(type_flags=0x40, type_code=3, attribute=sbgp.BGPPANextHop(next_hop="198.51.100.1")),
            BGPPathAttr(type_flags=0x80, type_code=4, attribute=sbgp.BGPPAMultiExitDisc(med=7)),
            BGPPathAttr(type_flags=0xC0, type_code=8, attribute=sbgp.BGPPACommunity(community=0xFFFFFF01)),
        ],
        nlri=[BGPNLRI_IPv4(prefix="203.0.113.0/24"), BGPNLRI_IPv4(prefix="198.18.0.0/15")],
        withdrawn_routes=[BGPNLRI_IPv4(prefix="10.0.0.0/8")],
    )
    msg = ours(bytes(BGPHeader(type=2) / upd), UpdateDecoder(four_octet=True, ebgp=True))
    assert isinstance(msg, Update)
    assert msg.errors == []
    assert [(a, [key_to_str(a, k) for k in keys]) for a, keys in msg.withdraw] == [(Afi.IPV4, ["10.0.0.0/8"])]
    ((afi, attrs, keys),) = msg.announce
    assert afi is Afi.IPV4
    assert [key_to_str(afi, k) for k in keys] == ["203.0.113.0/24", "198.18.0.0/15"]
    assert attrs == PathAttrs(
        origin=1,
        as_path=((2, (65010, 4200000002)),),
        next_hop=IPv4Address("198.51.100.1"),
        med=7,
        communities=(0xFFFFFF01,),
    )


def test_update_v6_from_scapy() -> None:
    mp = BGPPAMPReachNLRI(
        afi=2,
        safi=1,
        nh_addr_len=16,
        nh_v6_addr="2001:db8::99",
        nlri=[BGPNLRI_IPv6(prefix="2001:db8:1::/48"), BGPNLRI_IPv6(prefix="::/0")],
    )
    path = BGPPAAS4BytesPath(
        segments=[BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=[65010])]
    )
    upd = BGPUpdate(
        path_attr=[
            BGPPathAttr(type_flags=0x80, type_code=14, attribute=mp),
            BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=0)),
            BGPPathAttr(type_flags=0x40, type_code=2, attribute=path),
        ]
    )
    msg = ours(bytes(BGPHeader(type=2) / upd), UpdateDecoder(four_octet=True, ebgp=True))
    assert isinstance(msg, Update)
    ((afi, attrs, keys),) = msg.announce
    assert afi is Afi.IPV6
    assert [key_to_str(afi, k) for k in keys] == ["2001:db8:1::/48", "::/0"]
    assert attrs.next_hop == IPv6Address("2001:db8::99") and attrs.next_hop_ll is None
    assert attrs.as_path == ((2, (65010,)),)


def test_mp_unreach_from_scapy() -> None:
    withdrawn = BGPPAMPUnreachNLRI_IPv6(withdrawn_routes=[BGPNLRI_IPv6(prefix="2001:db8::/32")])
    unreach = BGPPAMPUnreachNLRI(afi=2, safi=1, afi_safi_specific=withdrawn)
    upd = BGPUpdate(path_attr=[BGPPathAttr(type_flags=0x80, type_code=15, attribute=unreach)])
    msg = ours(bytes(BGPHeader(type=2) / upd), UpdateDecoder(four_octet=True, ebgp=True))
    assert isinstance(msg, Update)
    assert [(a, [key_to_str(a, k) for k in ks]) for a, ks in msg.withdraw] == [(Afi.IPV6, ["2001:db8::/32"])]
