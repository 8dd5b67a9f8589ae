"""Two sans-IO connections wired back to back in memory, with a shared fake clock."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.connection import (
    BgpConnection,
    ConnParams,
    Event,
    NotificationReceived,
    RouteRefreshReceived,
    SessionClosed,
    SessionEstablished,
    UpdateReceived,
    shutdown_communication,
)
from bgpd.fsm import State
from bgpd.wire import UpdateEncoder
from rib.attrs import Origin, PathAttrs, SegType, intern
from rib.prefix import Afi, parse_prefix

T0 = 50.0


class Side:
    def __init__(
        self, local_asn: int, router_id: str, peer_asn: int, hold: int = 90, afis: list[Afi] | None = None
    ):
        self.params = ConnParams(
            local_asn=local_asn,
            router_id=router_id,
            peer_asn=peer_asn,
            hold_time=hold,
            afis=afis if afis is not None else [Afi.IPV4, Afi.IPV6],
            peer_address="peer",
        )
        self.conn = BgpConnection(self.params, T0)
        self.events: list[Event] = []
        self.muted = False  # bytes it sends are lost

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def pump(a: Side, b: Side, now: float, chunks: list[int] | None = None) -> None:
    """Move bytes both ways until nothing is left; ``chunks`` cuts the stream at those sizes."""
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.conn.data_to_send()
            if not data or src.muted:
                continue
            moved = True
            sizes = list(chunks or [])
            pos = 0
            while pos < len(data):
                n = sizes.pop(0) if sizes else len(data) - pos
                dst.events += dst.conn.receive_data(data[pos : pos + n], now)
                pos += n


def connect(a: Side, b: Side, now: float = T0, chunks: list[int] | None = None) -> None:
    a.events += a.conn.connection_made(now)
    b.events += b.conn.connection_made(now)
    pump(a, b, now, chunks)


def tick(a: Side, b: Side, now: float) -> None:
    for s in (a, b):
        s.events += s.conn.handle_timer(now)
    pump(a, b, now)


def ebgp_pair(hold: int = 90) -> tuple[Side, Side]:
    return Side(65001, "10.0.0.1", 65002, hold), Side(65002, "10.0.0.2", 65001, hold)


def route_attrs(asn: int, next_hop: str) -> PathAttrs:
    return intern(
        PathAttrs(
            origin=Origin.IGP,
            as_path=((SegType.AS_SEQUENCE, (asn,)),),
            next_hop=ipaddress.ip_address(next_hop),
        )
    )


def test_pair_reaches_established() -> None:
    a, b = ebgp_pair()
    connect(a, b)
    assert a.conn.state is b.conn.state is State.ESTABLISHED
    [ea] = a.of(SessionEstablished)
    [eb] = b.of(SessionEstablished)
    assert isinstance(ea, SessionEstablished) and isinstance(eb, SessionEstablished)
    assert (ea.negotiated.peer_asn, eb.negotiated.peer_asn) == (65002, 65001)
    assert ea.negotiated.hold_time == eb.negotiated.hold_time == 90
    assert ea.negotiated.afis == eb.negotiated.afis == [Afi.IPV4, Afi.IPV6]
    assert ea.negotiated.four_octet and eb.negotiated.route_refresh


def test_update_exchange_and_cease() -> None:
    a, b = ebgp_pair()
    connect(a, b)
    enc = UpdateEncoder(four_octet=True)
    attrs4 = route_attrs(65001, "192.0.2.1")
    keys4 = [parse_prefix("10.1.0.0/16")[1], parse_prefix("10.2.3.0/24")[1]]
    attrs6 = route_attrs(65001, "2001:db8::1")
    keys6 = [parse_prefix("2001:db8:100::/48")[1]]
    msgs = enc.announce(Afi.IPV4, attrs4, keys4) + enc.announce(Afi.IPV6, attrs6, keys6)
    msgs.append(enc.end_of_rib(Afi.IPV4))
    assert a.conn.send_update_bytes(msgs, T0 + 1)
    pump(a, b, T0 + 1)
    updates = [e.update for e in b.of(UpdateReceived) if isinstance(e, UpdateReceived)]
    announced = [(afi, at, keys) for u in updates for afi, at, keys in u.announce]
    assert (Afi.IPV4, attrs4, keys4) in announced
    assert (Afi.IPV6, attrs6, keys6) in announced
    assert updates[-1].end_of_rib is Afi.IPV4
    assert all(not u.errors for u in updates)
    assert b.conn.stats.updates_in == a.conn.stats.updates_out == len(msgs)

    # Withdraw, then a route refresh the other way.
    assert a.conn.send_update_bytes(enc.withdraw(Afi.IPV4, keys4[:1]), T0 + 2)
    pump(a, b, T0 + 2)
    last = b.of(UpdateReceived)[-1]
    assert isinstance(last, UpdateReceived)
    assert last.update.withdraw == [(Afi.IPV4, keys4[:1])]
    assert b.conn.send_route_refresh(Afi.IPV6)
    pump(a, b, T0 + 2)
    assert a.of(RouteRefreshReceived) == [RouteRefreshReceived(Afi.IPV6, 1)]

    a.events += a.conn.close(T0 + 3, 6, 2, shutdown_communication("maintenance"))
    pump(a, b, T0 + 3)
    [na] = b.of(NotificationReceived)
    assert isinstance(na, NotificationReceived) and (na.code, na.subcode) == (6, 2)
    closed_b = b.events[-1]
    closed_a = a.events[-1]
    assert isinstance(closed_b, SessionClosed) and isinstance(closed_a, SessionClosed)
    assert "maintenance" in closed_b.reason
    assert closed_a.notification_sent == closed_b.notification_received == (6, 2, b"\x0bmaintenance")
    assert a.conn.state is b.conn.state is State.IDLE


def test_keepalives_keep_the_session_up() -> None:
    a, b = ebgp_pair(hold=9)
    connect(a, b)
    t = T0
    for _ in range(300):
        t += 0.5
        tick(a, b, t)
    assert a.conn.state is b.conn.state is State.ESTABLISHED
    # 150 s at one KEEPALIVE per 3 s, plus the one answering the OPEN.
    assert 45 <= a.conn.stats.messages_out - 1 <= 52


def test_silent_peer_hits_hold_timer() -> None:
    a, b = ebgp_pair(hold=9)
    connect(a, b)
    a.muted = True
    t = T0
    while b.conn.state is State.ESTABLISHED and t < T0 + 20:
        t += 0.5
        a.muted = True
        tick(a, b, t)
    assert b.conn.state is State.IDLE
    assert t == T0 + 9
    a.muted = False
    pump(a, b, t)
    [n] = a.of(NotificationReceived)
    assert isinstance(n, NotificationReceived) and (n.code, n.subcode) == (4, 0)
    assert a.conn.state is State.IDLE


def test_ibgp_four_octet_pair() -> None:
    a = Side(4200000001, "10.0.0.1", 4200000001)
    b = Side(4200000001, "10.0.0.2", 4200000001)
    connect(a, b)
    assert a.conn.state is b.conn.state is State.ESTABLISHED
    assert not a.params.ebgp


def test_misconfigured_peer_as() -> None:
    a = Side(65001, "10.0.0.1", 65003)  # b is really 65002
    b = Side(65002, "10.0.0.2", 65001)
    connect(a, b)
    [n] = b.of(NotificationReceived)
    assert isinstance(n, NotificationReceived)
    assert (n.code, n.subcode, n.data) == (2, 2, (65002).to_bytes(2, "big"))
    assert a.conn.state is b.conn.state is State.IDLE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_any_segmentation_gives_the_same_result(chunks: list[int]) -> None:
    a, b = ebgp_pair()
    connect(a, b, chunks=chunks)
    assert a.conn.state is b.conn.state is State.ESTABLISHED
    enc = UpdateEncoder(four_octet=True)
    keys = [parse_prefix(f"10.{i}.0.0/16")[1] for i in range(50)]
    msgs = enc.announce(Afi.IPV4, route_attrs(65001, "192.0.2.1"), keys)
    a.conn.send_update_bytes(msgs, T0)
    pump(a, b, T0, chunks)
    got = [
        k
        for e in b.of(UpdateReceived)
        if isinstance(e, UpdateReceived)
        for _f, _a, ks in e.update.announce
        for k in ks
    ]
    assert got == keys
