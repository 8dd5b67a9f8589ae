"""Optional capabilities, ADD-PATH, extended messages, BoRR/EoRR and NOTIFICATION data:
hypothesis round trips, scapy both ways, and the negotiation in the session core."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.config import conf

conf.contribs["bgp"] = {"use_2_bytes_asn": False}

from scapy.contrib import bgp as sbgp  # noqa: E402
from scapy.contrib.bgp import (  # noqa: E402
    BGPCapability,
    BGPCapFourBytesASN,
    BGPCapGeneric,
    BGPCapGracefulRestart,
    BGPCapMultiprotocol,
    BGPHeader,
    BGPNotification,
    BGPOpen,
    BGPOptParam,
    BGPRouteRefresh,
)
from scapy.packet import Raw  # noqa: E402

from bgpd.connection import (  # noqa: E402
    RouteRefreshMarker,
    describe_notification,
    shutdown_communication,
)
from bgpd.wire import (  # noqa: E402
    MessageFramer,
    Notification,
    Open,
    RouteRefresh,
    UpdateDecoder,
    UpdateEncoder,
    decode_message,
    encode_message,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from bgpd.wire.messages import (  # noqa: E402
    EXTENDED_MAX_MESSAGE_LEN,
    Capabilities,
    CapCode,
    GracefulRestart,
    LlgrFamily,
)
from rib.attrs import PathAttrs, intern  # noqa: E402
from rib.prefix import Afi  # noqa: E402
from tests.unit.fsm.util import T0, established, sent  # noqa: E402


@pytest.fixture(autouse=True)
def four_byte_asn_in_scapy() -> Iterator[None]:
    old = sbgp.bgp_module_conf.use_2_bytes_asn
    sbgp.bgp_module_conf.use_2_bytes_asn = False
    yield
    sbgp.bgp_module_conf.use_2_bytes_asn = old


def ours(data: bytes, dec: UpdateDecoder | None = None) -> object:
    msgs = MessageFramer(EXTENDED_MAX_MESSAGE_LEN).feed(data)
    assert len(msgs) == 1
    return decode_message(*msgs[0], dec)


# --- hypothesis round trips --------------------------------------------------------------------

fam = st.tuples(st.sampled_from([1, 2, 25]), st.sampled_from([1, 2, 128]))
u8 = st.integers(0, 255)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20).filter(
    lambda t: len(t.encode()) <= 255
)


@st.composite
def capabilities(draw: st.DrawFn) -> Capabilities:
    gr = draw(
        st.none()
        | st.builds(
            GracefulRestart,
            st.integers(0, 15),
            st.integers(0, 4095),
            st.lists(st.tuples(st.sampled_from([1, 2]), u8, u8), max_size=3),
        )
    )
    llgr = draw(
        st.none()
        | st.lists(
            st.builds(LlgrFamily, st.sampled_from([1, 2]), u8, u8, st.integers(0, 0xFFFFFF)), max_size=3
        )
    )
    hostname = draw(st.none() | text)
    return Capabilities(
        multiprotocol=draw(st.lists(fam, max_size=3, unique=True)),
        route_refresh=draw(st.booleans()),
        four_octet_as=draw(st.integers(1, 2**32 - 1)),
        enhanced_route_refresh=draw(st.booleans()),
        extended_message=draw(st.booleans()),
        extended_next_hop=draw(
            st.lists(
                st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 128]), st.just(2)),
                max_size=3,
                unique=True,
            )
        ),
        graceful_restart=gr,
        llgr=llgr,
        add_path=draw(
            st.lists(st.tuples(st.sampled_from([1, 2]), st.just(1), st.integers(1, 3)), max_size=2)
        ),
        hostname=hostname,
        domain=None if hostname is None else draw(text),
        unknown=draw(st.lists(st.tuples(st.integers(128, 254), st.binary(max_size=20)), max_size=3)),
    )


@settings(max_examples=200, deadline=None)
@given(caps=capabilities(), hold=st.sampled_from([0, 3, 90, 65535]))
def test_open_round_trip(caps: Capabilities, hold: int) -> None:
    assert caps.four_octet_as is not None
    msg = encode_open(
        caps.four_octet_as,
        hold,
        "192.0.2.1",
        caps.multiprotocol,
        route_refresh=caps.route_refresh,
        capabilities=caps,
    )
    got = ours(msg)
    assert isinstance(got, Open)
    assert got.capabilities == caps
    assert got.peer_asn == caps.four_octet_as


@settings(max_examples=100, deadline=None)
@given(afi=st.integers(0, 65535), safi=u8, subtype=st.integers(0, 2))
def test_route_refresh_round_trip(afi: int, safi: int, subtype: int) -> None:
    assert ours(encode_route_refresh(afi, safi, subtype)) == RouteRefresh(afi, safi, subtype)


@settings(max_examples=100, deadline=None)
@given(code=st.integers(1, 7), subcode=u8, data=st.binary(max_size=300))
def test_notification_round_trip(code: int, subcode: int, data: bytes) -> None:
    assert ours(encode_notification(code, subcode, data)) == Notification(code, subcode, data)


@settings(max_examples=100, deadline=None)
@given(message=text)
def test_shutdown_communication_round_trip(message: str) -> None:
    data = shutdown_communication(message)
    got = ours(encode_notification(6, 2, data))
    assert isinstance(got, Notification) and got.data == data
    text_out = describe_notification(6, 2, got.data)
    if message:
        assert message in text_out


prefix4 = st.tuples(st.integers(0, 32), st.integers(0, 2**32 - 1)).map(
    lambda t: (
        bytes((t[0],))
        + (t[1] & ((0xFFFFFFFF << (32 - t[0])) & 0xFFFFFFFF)).to_bytes(4, "big")[: (t[0] + 7) // 8]
    )
)
prefix6 = st.tuples(st.integers(0, 128), st.integers(0, 2**128 - 1)).map(
    lambda t: (
        bytes((t[0],))
        + (t[1] & (((1 << 128) - 1) ^ ((1 << (128 - t[0])) - 1))).to_bytes(16, "big")[: (t[0] + 7) // 8]
    )
)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), afi=st.sampled_from([Afi.IPV4, Afi.IPV6]), v6_nh=st.booleans())
def test_add_path_round_trip(data: st.DataObject, afi: Afi, v6_nh: bool) -> None:
    """Path ids survive encode -> decode, for both families, announce and withdraw, split or not."""
    prefixes = data.draw(st.lists(prefix4 if afi is Afi.IPV4 else prefix6, min_size=1, max_size=400))
    ids = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=len(prefixes), max_size=len(prefixes)))
    nh = IPv6Address("2001:db8::1") if afi is Afi.IPV6 or v6_nh else IPv4Address("192.0.2.1")
    attrs = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=nh))
    enc = UpdateEncoder(True, add_path_tx=[afi])
    dec = UpdateDecoder(True, True, add_path_rx=[afi])
    got: list[tuple[int, bytes]] = []
    for msg in enc.announce(afi, attrs, prefixes, ids):
        upd = ours(msg, dec)
        for (fam_, a, keys), pids in zip(upd.announce, upd.announce_path_ids, strict=True):  # type: ignore[attr-defined]
            assert fam_ is afi and a is attrs and pids is not None
            got.extend(zip(pids, keys, strict=True))
    assert got == list(zip(ids, prefixes, strict=True))
    gone: list[tuple[int, bytes]] = []
    for msg in enc.withdraw(afi, prefixes, ids):
        upd = ours(msg, dec)
        for (_f, keys), pids in zip(upd.withdraw, upd.withdraw_path_ids, strict=True):  # type: ignore[attr-defined]
            assert pids is not None
            gone.extend(zip(pids, keys, strict=True))
    assert gone == list(zip(ids, prefixes, strict=True))


def test_extended_message_encoder_packs_up_to_65535() -> None:
    attrs = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=IPv4Address("192.0.2.1")))
    keys = [bytes((24, 10, i >> 8, i & 0xFF)) for i in range(20000)]
    msgs = UpdateEncoder(True, max_len=EXTENDED_MAX_MESSAGE_LEN).announce(Afi.IPV4, attrs, keys)
    assert len(msgs) == 2 and max(len(m) for m in msgs) > 60000
    assert all(len(m) <= EXTENDED_MAX_MESSAGE_LEN for m in msgs)
    dec = UpdateDecoder(True, True)
    assert [k for m in msgs for k in ours(m, dec).announce[0][2]] == keys  # type: ignore[attr-defined]


# --- scapy ------------------------------------------------------------------------------------


def scapy_caps(op: BGPOpen) -> list[BGPCapability]:
    caps = []
    for param in op.opt_params:
        cap = param.param_value
        while cap is not None and not isinstance(cap, Raw):
            caps.append(cap)
            rest = bytes(cap.payload)
            cap.remove_payload()
            cap = BGPCapability(rest) if rest else None
        if isinstance(cap, Raw):
            caps.append(BGPCapability(cap.load))
    return caps


def test_optional_capabilities_to_scapy() -> None:
    caps = Capabilities(
        enhanced_route_refresh=True,
        extended_message=True,
        extended_next_hop=[(1, 1, 2)],
        graceful_restart=GracefulRestart(8, 300, [(1, 1, 0x80), (2, 1, 0)]),
        add_path=[(1, 1, 3)],
        hostname="edge1",
        domain="example.net",
    )
    pkt = BGPHeader(encode_open(65001, 90, "192.0.2.1", [(1, 1), (2, 1)], capabilities=caps))
    # Scapy swallows what follows a graceful-restart capability into its tuple list, so hand it
    # one capability TLV at a time (the TLV boundaries come from scapy's own parameter parse).
    [param] = pkt[BGPOpen].opt_params
    raw = bytes(param)[2:]
    got = []
    while raw:
        got.append(BGPCapability(raw[: 2 + raw[1]]))
        raw = raw[2 + raw[1] :]
    by_code = {c.code: c for c in got}
    gr = by_code[64]
    assert isinstance(gr, BGPCapGracefulRestart)
    assert (gr.restart_flags, gr.restart_time) == (8, 300)
    # Scapy parses only the first tuple of a list (the rest stays Raw inside it), so compare the
    # whole against the bytes scapy itself builds for the same capability.
    assert [(e.afi, e.safi, e.flags) for e in gr.entries][:1] == [(1, 1, 0x80)]
    tuples = [
        BGPCapGracefulRestart.GRTuple(afi=1, safi=1, flags=0x80),
        BGPCapGracefulRestart.GRTuple(afi=2, safi=1),
    ]
    assert bytes(gr) == bytes(BGPCapGracefulRestart(restart_flags=8, restart_time=300, entries=tuples))
    assert bytes(by_code[5])[2:] == b"\x00\x01\x00\x01\x00\x02"
    assert bytes(by_code[6]) == b"\x06\x00"
    assert bytes(by_code[69])[2:] == b"\x00\x01\x01\x03"
    assert bytes(by_code[70]) == b"\x46\x00"
    assert bytes(by_code[73])[2:] == b"\x05edge1\x0bexample.net"
    assert [c.asn for c in got if isinstance(c, BGPCapFourBytesASN)] == [65001]


def test_optional_capabilities_from_scapy() -> None:
    gr = BGPCapGracefulRestart(
        restart_flags=8,
        restart_time=120,
        entries=[BGPCapGracefulRestart.GRTuple(afi=1, safi=1, flags=0x80)],
    )
    chain = (
        BGPCapMultiprotocol(afi=1, safi=1)
        / BGPCapFourBytesASN(asn=65009)
        / gr
        / BGPCapGeneric(code=70)
        / BGPCapGeneric(code=6)
        / BGPCapGeneric(code=69, cap_data=b"\x00\x01\x01\x02")
        / BGPCapGeneric(code=5, cap_data=b"\x00\x01\x00\x01\x00\x02")
        / BGPCapGeneric(code=73, cap_data=b"\x02r1\x00")
        / BGPCapGeneric(code=222, cap_data=b"zz")
    )
    op = BGPOpen(my_as=65009, hold_time=90, bgp_id="10.9.8.7", opt_params=[BGPOptParam(param_value=chain)])
    msg = ours(bytes(BGPHeader(type=1) / op))
    assert isinstance(msg, Open)
    c = msg.capabilities
    assert c.graceful_restart == GracefulRestart(8, 120, [(1, 1, 0x80)])
    assert c.enhanced_route_refresh and c.extended_message
    assert c.add_path == [(1, 1, 2)]
    assert c.extended_next_hop == [(1, 1, 2)]
    assert (c.hostname, c.domain) == ("r1", "")
    assert c.unknown == [(222, b"zz")]


@pytest.mark.parametrize("subtype", [1, 2])
def test_borr_eorr_both_ways(subtype: int) -> None:
    rr = BGPHeader(encode_route_refresh(1, 1, subtype))[BGPRouteRefresh]
    assert (rr.afi, rr.subtype, rr.safi) == (1, subtype, 1)
    assert ours(bytes(BGPHeader(type=5) / BGPRouteRefresh(afi=2, safi=1, subtype=subtype))) == RouteRefresh(
        2, 1, subtype
    )


def test_shutdown_communication_to_scapy() -> None:
    n = BGPHeader(encode_notification(6, 2, shutdown_communication("maintenance")))[BGPNotification]
    assert (n.error_code, n.error_subcode, n.data) == (6, 2, b"\x0bmaintenance")


# --- negotiation in the session core ------------------------------------------------------------


def peer_open_with(caps: Capabilities, afis: list[tuple[int, int]] | None = None) -> bytes:
    return encode_open(65002, 90, "10.0.0.2", [(1, 1), (2, 1)] if afis is None else afis, capabilities=caps)


def our_open(**kw: object) -> Capabilities:
    from tests.unit.fsm.util import opensent

    conn = opensent(**kw)
    conn.receive_data(b"", T0)
    # What we sent went out in opensent(); rebuild it from the params the same way.
    return conn.params.capabilities()


def test_we_advertise_what_the_config_enables() -> None:
    from bgpd.connection import BgpConnection
    from tests.unit.fsm.util import params

    conn = BgpConnection(
        params(
            graceful_restart=True,
            restart_time=90,
            add_path="both",
            hostname="r1.lab",
            peer_address="2001:db8::2",
        ),
        T0,
    )
    conn.connection_made(T0)
    [(_t, msg)] = sent(conn)
    assert isinstance(msg, Open)
    c = msg.capabilities
    assert c.extended_message and c.enhanced_route_refresh and c.route_refresh
    assert c.graceful_restart == GracefulRestart(0x4, 90, [(1, 1, 0), (2, 1, 0)])  # N: RFC 8538
    assert c.add_path == [(1, 1, 3), (2, 1, 3)]
    assert c.extended_next_hop == [(1, 1, 2)]  # IPv4 over an IPv6 session
    assert (c.hostname, c.domain) == ("r1", "lab")


def test_defaults_advertise_no_gr_add_path_or_ext_nh_over_ipv4() -> None:
    from bgpd.connection import BgpConnection
    from tests.unit.fsm.util import params

    conn = BgpConnection(params(), T0)
    conn.connection_made(T0)
    [(_t, msg)] = sent(conn)
    assert isinstance(msg, Open)
    c = msg.capabilities
    assert c.graceful_restart is None and c.add_path == [] and c.extended_next_hop == []


def test_negotiation_result() -> None:
    peer = Capabilities(
        extended_message=True,
        enhanced_route_refresh=True,
        extended_next_hop=[(1, 1, 2)],
        graceful_restart=GracefulRestart(0, 120, [(1, 1, 0x80)]),
        add_path=[(1, 1, 1), (2, 1, 2)],  # receive for IPv4, send for IPv6
    )
    conn, _ev = established(
        open_msg=peer_open_with(peer), graceful_restart=True, add_path="both", peer_address="2001:db8::2"
    )
    neg = conn.negotiated
    assert neg is not None
    assert neg.extended_message and neg.max_message_len == 65535
    assert conn._framer.max_len == 65535
    assert neg.enhanced_route_refresh and neg.graceful_restart
    assert neg.extended_next_hop == [Afi.IPV4]
    assert neg.add_path_tx == [Afi.IPV4] and neg.add_path_rx == [Afi.IPV6]
    j = neg.capabilities_json()
    assert j["add_path"] == {"receive": ["ipv6"], "send": ["ipv4"]}
    assert j["peer"]["graceful_restart"] == {
        "restart_flags": 0,
        "restart_time": 120,
        "families": [[1, 1, 128]],
    }  # type: ignore[index]


def test_one_sided_capabilities_are_not_negotiated() -> None:
    conn, _ev = established(open_msg=peer_open_with(Capabilities(add_path=[(1, 1, 3)])), add_path="off")
    neg = conn.negotiated
    assert neg is not None
    assert not neg.extended_message and neg.max_message_len == 4096 and conn._framer.max_len == 4096
    assert not neg.enhanced_route_refresh and not neg.graceful_restart
    assert neg.add_path_rx == [] and neg.add_path_tx == []


def test_add_path_rx_reaches_the_decoder() -> None:
    peer = Capabilities(add_path=[(1, 1, 2)])
    conn, _ev = established(open_msg=peer_open_with(peer), add_path="receive")
    attrs = intern(PathAttrs(as_path=((2, (65002,)),), next_hop=IPv4Address("192.0.2.9")))
    [msg] = UpdateEncoder(True, add_path_tx=[1]).announce(Afi.IPV4, attrs, [b"\x08\x0a"], [42])
    events = conn.receive_data(msg, T0 + 1)
    [upd] = [e.update for e in events if hasattr(e, "update")]
    assert upd.announce_path_ids == [[42]] and upd.announce[0][2] == [b"\x08\x0a"]


def test_borr_eorr_delivered_when_negotiated() -> None:
    conn, _ev = established(open_msg=peer_open_with(Capabilities(enhanced_route_refresh=True)))
    events = conn.receive_data(encode_route_refresh(1, 1, 1) + encode_route_refresh(1, 1, 2), T0 + 1)
    assert events == [RouteRefreshMarker(Afi.IPV4, 1, 1), RouteRefreshMarker(Afi.IPV4, 1, 2)]
    assert conn.send_route_refresh(Afi.IPV4, subtype=1)
    assert [m for _t, m in sent(conn)] == [RouteRefresh(1, 1, 1)]


def test_extended_message_not_negotiated_rejects_big_update() -> None:
    conn, _ev = established()
    big = encode_message(2, b"\x00\x00\x00\x00" + bytes(5000))
    conn.receive_data(big[:100], T0 + 1)
    assert conn.closed
    notes = [m for _t, m in sent(conn) if isinstance(m, Notification)]
    assert [(n.code, n.subcode, n.data) for n in notes] == [(1, 2, len(big).to_bytes(2, "big"))]
    assert CapCode.EXTENDED_MESSAGE == 6
