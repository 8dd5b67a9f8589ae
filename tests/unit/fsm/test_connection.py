"""BgpConnection with a fake clock: OPEN exchange, OPEN checks, timers, errors."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from bgpd.connection import (
    OPEN_HOLD_TIME,
    BgpConnection,
    NotificationReceived,
    OpenReceived,
    RouteRefreshReceived,
    SessionClosed,
    SessionEstablished,
    UpdateReceived,
    describe_notification,
    shutdown_communication,
)
from bgpd.fsm import State
from bgpd.wire import (
    AS_TRANS,
    Notification,
    Open,
    encode_keepalive,
    encode_message,
    encode_notification,
    encode_route_refresh,
)
from bgpd.wire.messages import Keepalive, MsgType, RouteRefresh
from rib.prefix import Afi

from .util import LOCAL_ASN, LOCAL_ID, PEER_ASN, PEER_ID, T0, established, opensent, params, peer_open, sent


def only_notification(conn: BgpConnection) -> Notification:
    msgs = sent(conn)
    assert len(msgs) == 1, msgs
    assert msgs[0][0] == MsgType.NOTIFICATION
    n = msgs[0][1]
    assert isinstance(n, Notification)
    return n


def closed_event(events: Sequence[object]) -> SessionClosed:
    assert isinstance(events[-1], SessionClosed), events
    return events[-1]


# --- OPEN exchange ---------------------------------------------------------------------------


def test_connection_made_sends_our_open() -> None:
    conn = BgpConnection(params(), T0)
    assert conn.state is State.CONNECT
    assert conn.next_deadline() is None
    assert conn.connection_made(T0) == []
    assert conn.state is State.OPENSENT
    [(t, msg)] = sent(conn)
    assert t == MsgType.OPEN and isinstance(msg, Open)
    assert (msg.asn, msg.hold_time, msg.router_id) == (LOCAL_ASN, 90, LOCAL_ID)
    caps = msg.capabilities
    assert caps.multiprotocol == [(1, 1), (2, 1)]
    assert caps.route_refresh and caps.four_octet_as == LOCAL_ASN
    # RFC 4271 8.2.2: a large hold time while waiting for the peer's OPEN.
    assert conn.next_deadline() == T0 + OPEN_HOLD_TIME == T0 + 240


def test_large_local_asn_uses_as_trans() -> None:
    conn = BgpConnection(params(local_asn=4200000001), T0)
    conn.connection_made(T0)
    [(_t, msg)] = sent(conn)
    assert isinstance(msg, Open)
    assert msg.asn == AS_TRANS and msg.capabilities.four_octet_as == 4200000001


def test_open_exchange_to_established() -> None:
    conn = opensent()
    events = conn.receive_data(peer_open(), T0 + 1)
    assert [type(e) for e in events] == [OpenReceived]
    assert isinstance(events[0], OpenReceived) and events[0].open.router_id == PEER_ID
    assert conn.state is State.OPENCONFIRM
    assert [t for t, _m in sent(conn)] == [MsgType.KEEPALIVE]
    events = conn.receive_data(encode_keepalive(), T0 + 2)
    assert [type(e) for e in events] == [SessionEstablished]
    assert conn.state is State.ESTABLISHED
    assert sent(conn) == []
    ev = events[0]
    assert isinstance(ev, SessionEstablished)
    neg = ev.negotiated
    assert neg is conn.negotiated
    assert (neg.peer_router_id, neg.peer_asn, neg.hold_time, neg.keepalive) == (PEER_ID, PEER_ASN, 90, 30)
    assert neg.four_octet and neg.route_refresh
    assert neg.afis == [Afi.IPV4, Afi.IPV6]
    assert neg.peer_capabilities.four_octet_as == PEER_ASN


def test_open_and_keepalive_in_one_segment_byte_by_byte() -> None:
    conn = opensent()
    events = []
    for b in peer_open() + encode_keepalive():
        events += conn.receive_data(bytes((b,)), T0)
    assert [type(e) for e in events] == [OpenReceived, SessionEstablished]


def test_stats_count_messages() -> None:
    conn, _ = established()
    assert conn.stats.messages_in == 2  # OPEN, KEEPALIVE
    assert conn.stats.messages_out == 2  # OPEN, KEEPALIVE


# --- OPEN checks -----------------------------------------------------------------------------


def reject(open_msg: bytes, **kw: object) -> tuple[Notification, SessionClosed, BgpConnection]:
    conn = opensent(T0, **kw)
    events = conn.receive_data(open_msg, T0)
    closed = closed_event(events)
    assert len(events) == 1
    assert conn.state is State.IDLE and conn.closed
    assert conn.next_deadline() is None
    n = only_notification(conn)
    assert closed.notification_sent == (n.code, n.subcode, n.data)
    assert closed.offending  # the OPEN body, for the log's hex excerpt
    return n, closed, conn


def test_bad_peer_as() -> None:
    n, closed, _ = reject(peer_open(asn=65003))
    assert (n.code, n.subcode, n.data) == (2, 2, struct.pack(">H", 65003))
    assert "Bad Peer AS" in closed.reason and "65003" in closed.reason


def test_bad_peer_as_four_octet() -> None:
    n, _, _ = reject(peer_open(asn=4200000002), peer_asn=4200000001)
    assert (n.code, n.subcode, n.data) == (2, 2, struct.pack(">H", AS_TRANS))


def test_four_octet_peer_as_accepted() -> None:
    conn, _events = established(open_msg=peer_open(asn=4200000001), peer_asn=4200000001)
    assert conn.state is State.ESTABLISHED
    assert conn.negotiated is not None and conn.negotiated.peer_asn == 4200000001


def test_large_peer_as_without_four_octet_capability_is_bad_peer_as() -> None:
    # Without the capability a 4-octet speaker can only say AS_TRANS.
    n, _, _ = reject(peer_open(asn=AS_TRANS, four_octet=False), peer_asn=4200000001)
    assert (n.code, n.subcode, n.data) == (2, 2, struct.pack(">H", AS_TRANS))


@pytest.mark.parametrize("hold", [1, 2])
def test_unacceptable_hold_time(hold: int) -> None:
    n, closed, _ = reject(peer_open(hold=hold))
    assert (n.code, n.subcode, n.data) == (2, 6, b"")
    assert "Hold Time" in closed.reason


def test_same_router_id_ibgp_is_bad_identifier() -> None:
    n, _, _ = reject(peer_open(asn=LOCAL_ASN, rid=LOCAL_ID), peer_asn=LOCAL_ASN)
    assert (n.code, n.subcode, n.data) == (2, 3, b"")


def test_same_router_id_ebgp_is_allowed() -> None:
    # RFC 6286 2.2: identifiers need only be unique within an AS.
    conn, _ = established(open_msg=peer_open(rid=LOCAL_ID))
    assert conn.state is State.ESTABLISHED


def test_zero_router_id() -> None:
    n, _, _ = reject(peer_open(rid="0.0.0.0"))
    assert (n.code, n.subcode) == (2, 3)


def test_unsupported_version() -> None:
    msg = bytearray(peer_open())
    msg[19] = 3
    n, closed, _ = reject(bytes(msg))
    assert (n.code, n.subcode, n.data) == (2, 1, b"\x00\x04")
    assert "Version" in closed.reason


def test_unsupported_optional_parameter() -> None:
    # version, AS, hold, id, opt len 3, parameter type 1 (authentication) of length 1
    body = struct.pack(">BHH4sB", 4, PEER_ASN, 90, bytes([10, 0, 0, 2]), 3) + b"\x01\x01\x00"
    n, _, _ = reject(encode_message(MsgType.OPEN, body))
    assert (n.code, n.subcode) == (2, 4)


# --- negotiation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "hold", "keepalive"), [(90, 30, 30, 10), (90, 180, 90, 30), (9, 3, 3, 1)]
)
def test_hold_time_is_the_minimum(ours: int, theirs: int, hold: int, keepalive: int) -> None:
    conn, _ = established(open_msg=peer_open(hold=theirs), hold_time=ours)
    assert conn.negotiated is not None
    assert (conn.negotiated.hold_time, conn.negotiated.keepalive) == (hold, keepalive)


def test_hold_time_zero_means_no_timers() -> None:
    conn, _ = established(open_msg=peer_open(hold=0))
    assert conn.negotiated is not None
    assert (conn.negotiated.hold_time, conn.negotiated.keepalive) == (0, 0)
    assert conn.next_deadline() is None
    assert conn.handle_timer(T0 + 100000) == []
    assert sent(conn) == []


def test_four_octet_needs_both() -> None:
    conn, _ = established(open_msg=peer_open(four_octet=False))
    assert conn.negotiated is not None and not conn.negotiated.four_octet


def test_route_refresh_needs_both() -> None:
    conn, _ = established(open_msg=peer_open(route_refresh=False))
    assert conn.negotiated is not None and not conn.negotiated.route_refresh
    assert not conn.send_route_refresh(Afi.IPV4)


def test_afis_are_the_intersection() -> None:
    conn, _ = established(open_msg=peer_open(afis=[(2, 1), (1, 128)]))
    assert conn.negotiated is not None and conn.negotiated.afis == [Afi.IPV6]
    conn, _ = established(open_msg=peer_open(afis=[(1, 1), (2, 1)]), afis=[Afi.IPV6])
    assert conn.negotiated is not None and conn.negotiated.afis == [Afi.IPV6]


def test_no_multiprotocol_capability_means_ipv4_unicast() -> None:
    conn, _ = established(open_msg=peer_open(afis=[]))
    assert conn.negotiated is not None and conn.negotiated.afis == [Afi.IPV4]
    # ... and nothing when we only want IPv6 (the session still comes up).
    conn, _ = established(open_msg=peer_open(afis=[]), afis=[Afi.IPV6])
    assert conn.state is State.ESTABLISHED
    assert conn.negotiated is not None and conn.negotiated.afis == []


def test_ebgp_flag() -> None:
    assert params().ebgp
    assert not params(peer_asn=LOCAL_ASN).ebgp


# --- timers ----------------------------------------------------------------------------------


def test_opensent_hold_timer_expiry() -> None:
    conn = opensent()
    assert conn.handle_timer(T0 + 239.9) == []
    events = conn.handle_timer(T0 + 240)
    closed = closed_event(events)
    n = only_notification(conn)
    assert (n.code, n.subcode) == (4, 0)
    assert "hold timer expired" in closed.reason
    assert conn.state is State.IDLE


def test_keepalive_timing_and_hold_expiry() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9)  # keepalive every 3 s
    assert conn.next_deadline() == T0 + 3
    assert conn.handle_timer(T0 + 2.9) == []
    assert sent(conn) == []
    assert conn.handle_timer(T0 + 3) == []
    assert [type(m) for _t, m in sent(conn)] == [Keepalive]
    assert conn.next_deadline() == T0 + 6
    # A KEEPALIVE from the peer restarts the hold timer...
    conn.receive_data(encode_keepalive(), T0 + 5)
    conn.handle_timer(T0 + 6)
    assert [type(m) for _t, m in sent(conn)] == [Keepalive]
    conn.handle_timer(T0 + 9)
    conn.handle_timer(T0 + 12)
    assert [type(m) for _t, m in sent(conn)] == [Keepalive, Keepalive]
    assert conn.state is State.ESTABLISHED
    assert conn.next_deadline() == T0 + 14  # hold: 5 + 9 is before the keepalive at 15
    # ... and nothing from the peer for 9 s ends the session.
    events = conn.handle_timer(T0 + 14)
    assert isinstance(events[-1], SessionClosed)
    n = only_notification(conn)
    assert (n.code, n.subcode) == (4, 0)


def test_sending_updates_restarts_keepalive_timer() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9)
    fake_update = encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00")  # End-of-RIB for IPv4
    assert conn.send_update_bytes([fake_update], T0 + 2)
    assert conn.next_deadline() == T0 + 5
    assert conn.data_to_send() == fake_update
    assert conn.stats.updates_out == 1


def test_openconfirm_sends_keepalives_and_uses_negotiated_hold() -> None:
    conn = opensent(hold_time=9)
    conn.receive_data(peer_open(hold=30), T0)
    conn.data_to_send()
    assert conn.state is State.OPENCONFIRM
    conn.handle_timer(T0 + 3)
    assert [type(m) for _t, m in sent(conn)] == [Keepalive]
    conn.handle_timer(T0 + 9)
    assert conn.state is State.IDLE
    n = [m for _t, m in sent(conn) if isinstance(m, Notification)]
    assert [(x.code, x.subcode) for x in n] == [(4, 0)]


def test_update_not_sent_unless_established() -> None:
    conn = opensent()
    assert not conn.send_update_bytes([b"x"])
    assert conn.data_to_send() == b""


# --- FSM errors ------------------------------------------------------------------------------


def test_keepalive_in_opensent_is_fsm_error() -> None:
    conn = opensent()
    closed = closed_event(conn.receive_data(encode_keepalive(), T0))
    n = only_notification(conn)
    assert (n.code, n.subcode) == (5, 1)
    assert "unexpected" in closed.reason and "OpenSent" in closed.reason


def test_update_in_opensent_is_fsm_error() -> None:
    conn = opensent()
    conn.receive_data(encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00"), T0)
    n = only_notification(conn)
    assert (n.code, n.subcode) == (5, 1)


def test_route_refresh_in_opensent_is_fsm_error() -> None:
    conn = opensent()
    conn.receive_data(encode_route_refresh(1, 1), T0)
    assert (only_notification(conn).code, 1) == (5, 1)


def test_open_and_update_in_openconfirm_are_fsm_errors() -> None:
    for second in (peer_open(), encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00")):
        conn = opensent()
        conn.receive_data(peer_open(), T0)
        conn.data_to_send()
        conn.receive_data(second, T0)
        n = only_notification(conn)
        assert (n.code, n.subcode) == (5, 2)


def test_open_in_established_is_fsm_error() -> None:
    conn, _ = established()
    closed = closed_event(conn.receive_data(peer_open(), T0))
    n = only_notification(conn)
    assert (n.code, n.subcode) == (5, 3)
    assert "Established" in closed.reason


def test_messages_after_the_error_are_ignored() -> None:
    conn = opensent()
    events = conn.receive_data(encode_keepalive() + peer_open() + encode_keepalive(), T0)
    assert [type(e) for e in events] == [SessionClosed]
    assert conn.receive_data(peer_open(), T0) == []
    assert len(sent(conn)) == 1


# --- header errors ---------------------------------------------------------------------------


def test_bad_marker() -> None:
    conn = opensent()
    closed = closed_event(conn.receive_data(b"\x00" * 19, T0))
    n = only_notification(conn)
    assert (n.code, n.subcode) == (1, 1)
    assert closed.offending == b"\x00" * 19


def test_bad_length() -> None:
    conn, _ = established()
    conn.receive_data(b"\xff" * 16 + b"\x00\x12\x04", T0)  # length 18
    n = only_notification(conn)
    assert (n.code, n.subcode, n.data) == (1, 2, b"\x00\x12")


def test_bad_type() -> None:
    conn, _ = established()
    conn.receive_data(b"\xff" * 16 + b"\x00\x13\x09", T0)
    n = only_notification(conn)
    assert (n.code, n.subcode, n.data) == (1, 3, b"\x09")


def test_bad_keepalive_length() -> None:
    conn, _ = established()
    conn.receive_data(encode_message(MsgType.KEEPALIVE, b"\x00"), T0)
    n = only_notification(conn)
    assert (n.code, n.subcode, n.data) == (1, 2, b"\x00\x14")


# --- UPDATE ----------------------------------------------------------------------------------


def test_update_decode_error_sends_update_notification() -> None:
    conn, _ = established()
    # Withdrawn Routes Length 5 with only 2 bytes behind it.
    events = conn.receive_data(encode_message(MsgType.UPDATE, b"\x00\x05\x00\x00"), T0)
    closed = closed_event(events)
    n = only_notification(conn)
    assert n.code == 3
    assert closed.offending == b"\x00\x05\x00\x00"
    assert "UPDATE Message Error" in closed.reason


def test_update_received_and_hold_restarted() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9)
    events = conn.receive_data(encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00"), T0 + 8)
    assert [type(e) for e in events] == [UpdateReceived]
    ev = events[0]
    assert isinstance(ev, UpdateReceived)
    assert ev.update.end_of_rib is Afi.IPV4
    assert ev.errors == []
    assert conn.stats.updates_in == 1
    assert conn.handle_timer(T0 + 16.9) is not None and conn.state is State.ESTABLISHED


def test_codec_bugs_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The asyncio layer guards against these; the sans-IO core lets tests see them.
    conn, _ = established()

    class Broken:
        def decode(self, body: bytes) -> None:
            raise ZeroDivisionError

    monkeypatch.setattr(conn, "_decoder", Broken())
    with pytest.raises(ZeroDivisionError):
        conn.receive_data(encode_message(MsgType.UPDATE, b"\x00\x00\x00\x00"), T0)


# --- NOTIFICATION, close, connection loss ----------------------------------------------------


def test_notification_received_is_not_answered() -> None:
    conn, _ = established()
    data = shutdown_communication("maintenance")
    events = conn.receive_data(encode_notification(6, 2, data), T0)
    assert [type(e) for e in events] == [NotificationReceived, SessionClosed]
    nr = events[0]
    assert isinstance(nr, NotificationReceived)
    assert (nr.code, nr.subcode, nr.data) == (6, 2, data)
    assert nr.text == 'Cease / Administrative Shutdown: "maintenance"'
    closed = closed_event(events)
    assert closed.notification_received == (6, 2, data)
    assert closed.notification_sent is None
    assert "maintenance" in closed.reason
    assert conn.data_to_send() == b""
    assert conn.state is State.IDLE


def test_notification_in_opensent() -> None:
    conn = opensent()
    events = conn.receive_data(encode_notification(2, 2), T0)
    assert [type(e) for e in events] == [NotificationReceived, SessionClosed]
    assert conn.data_to_send() == b""


def test_truncated_notification_is_a_header_error() -> None:
    # The framer checks the minimum length of each type before the FSM sees the message.
    conn, _ = established()
    events = conn.receive_data(encode_message(MsgType.NOTIFICATION, b"\x06"), T0)
    assert isinstance(events[-1], SessionClosed)
    n = only_notification(conn)
    assert (n.code, n.subcode, n.data) == (1, 2, b"\x00\x14")


def test_close_sends_cease() -> None:
    conn, _ = established()
    events = conn.close(T0, data=shutdown_communication("bye"))
    closed = closed_event(events)
    n = only_notification(conn)
    assert (n.code, n.subcode, n.data) == (6, 2, b"\x03bye")
    assert closed.notification_sent == (6, 2, b"\x03bye")
    assert conn.close(T0) == []
    assert conn.receive_data(encode_keepalive(), T0) == []
    assert conn.next_deadline() is None


def test_close_collision() -> None:
    conn = opensent()
    conn.close(T0, 6, 7)
    n = only_notification(conn)
    assert (n.code, n.subcode) == (6, 7)


def test_close_before_tcp_is_up_sends_nothing() -> None:
    conn = BgpConnection(params(), T0)
    assert [type(e) for e in conn.close(T0)] == [SessionClosed]
    assert conn.data_to_send() == b""


def test_connection_lost() -> None:
    conn, _ = established()
    closed = closed_event(conn.connection_lost(T0))
    assert closed.reason == "connection closed by peer"
    assert closed.notification_sent is None
    assert conn.data_to_send() == b""
    assert conn.connection_lost(T0) == []


def test_open_hook_can_dump_the_connection() -> None:
    seen: list[Open] = []

    def hook(o: Open) -> bool:
        seen.append(o)
        return False

    conn = BgpConnection(params(), T0, open_hook=hook)
    conn.connection_made(T0)
    conn.data_to_send()
    events = conn.receive_data(peer_open() + encode_keepalive(), T0)
    assert [type(e) for e in events] == [SessionClosed]
    assert seen and seen[0].router_id == PEER_ID
    n = only_notification(conn)  # no KEEPALIVE went out before it
    assert (n.code, n.subcode) == (6, 7)


# --- ROUTE-REFRESH ---------------------------------------------------------------------------


def test_route_refresh() -> None:
    conn, _ = established(afis=[Afi.IPV4])
    events = conn.receive_data(encode_route_refresh(1, 1), T0)
    assert events == [RouteRefreshReceived(Afi.IPV4, 1)]
    # Not negotiated (IPv6), another SAFI, an RFC 7313 marker: ignored.
    assert conn.receive_data(encode_route_refresh(2, 1), T0) == []
    assert conn.receive_data(encode_route_refresh(1, 128), T0) == []
    assert conn.receive_data(encode_route_refresh(1, 1, subtype=1), T0) == []
    assert conn.state is State.ESTABLISHED
    assert conn.send_route_refresh(Afi.IPV4)
    assert not conn.send_route_refresh(Afi.IPV6)
    [(_t, rr)] = sent(conn)
    assert rr == RouteRefresh(1, 1, 0)


def test_describe_notification() -> None:
    assert describe_notification(6, 4, b"") == "Cease / Administrative Reset"
    assert describe_notification(6, 2, b"\x09bad") == "Cease / Administrative Shutdown"  # bad length
    assert describe_notification(4, 0, b"") == "Hold Timer Expired"
    assert shutdown_communication("") == b""
    long = shutdown_communication("é" * 200)
    assert long[0] == len(long) - 1 <= 255
    long[1:].decode("utf-8")
