"""RFC 8538: the N bit, Cease/Hard Reset, and which session ends start a graceful restart."""

from __future__ import annotations

import pytest

from bgpd.connection import (
    ConnParams,
    NotificationReceived,
    SessionClosed,
    SessionEstablished,
    describe_notification,
    shutdown_communication,
)
from bgpd.graceful import ends_gracefully
from bgpd.wire.errors import CeaseSub
from rib.prefix import Afi
from tests.pair.test_pair_sansio import T0, Side, connect, pump, tick


def gr_pair(n_a: bool = True, n_b: bool = True, hold: int = 9) -> tuple[Side, Side]:
    a, b = Side(65001, "10.0.0.1", 65002, hold), Side(65002, "10.0.0.2", 65001, hold)
    for side, n in ((a, n_a), (b, n_b)):
        side.params.graceful_restart = True
        side.params.graceful_notification = n
    connect(a, b)
    return a, b


def negotiated_n(side: Side) -> bool:
    [est] = side.of(SessionEstablished)
    assert isinstance(est, SessionEstablished)
    return est.negotiated.graceful_notification


def closed(side: Side) -> SessionClosed:
    ev = side.events[-1]
    assert isinstance(ev, SessionClosed)
    return ev


def test_n_bit_advertised_and_negotiated_only_when_both_set_it() -> None:
    p = ConnParams(65010, "10.0.0.1", 65001, 90, [Afi.IPV4], graceful_restart=True)
    gr = p.capabilities().graceful_restart
    assert gr is not None and gr.flags == 0x4 and gr.notification and not gr.restarting
    p.graceful_notification = False
    gr = p.capabilities().graceful_restart
    assert gr is not None and gr.flags == 0 and not gr.notification
    a, b = gr_pair()
    assert negotiated_n(a) and negotiated_n(b)
    a, b = gr_pair(n_b=False)
    assert not negotiated_n(a) and not negotiated_n(b)


@pytest.mark.parametrize(
    "sub", [CeaseSub.MAX_PREFIXES, CeaseSub.ADMIN_SHUTDOWN, CeaseSub.PEER_DECONFIGURED, CeaseSub.ADMIN_RESET]
)
def test_these_ceases_go_as_a_hard_reset_with_the_n_bit(sub: CeaseSub) -> None:
    a, b = gr_pair()
    data = shutdown_communication("maintenance") if sub in (2, 4) else b""
    a.events += a.conn.close(T0 + 1, 6, sub, data)
    pump(a, b, T0 + 1)
    [n] = b.of(NotificationReceived)
    assert isinstance(n, NotificationReceived)
    assert (n.code, n.subcode, n.data) == (6, CeaseSub.HARD_RESET, bytes((6, sub)) + data)
    assert closed(a).notification_sent == closed(b).notification_received == (6, 9, bytes((6, sub)) + data)
    # Neither side keeps the other's routes.
    assert not ends_gracefully(closed(a)) and not ends_gracefully(closed(b))
    text = describe_notification(*closed(b).notification_received)  # type: ignore[misc]
    assert text.startswith("Cease / Hard Reset (Cease / ")
    if data:
        assert text.endswith('"maintenance")')


def test_without_the_n_bit_a_cease_is_sent_as_it_is() -> None:
    a, b = gr_pair(n_a=False)
    a.events += a.conn.close(T0 + 1, 6, CeaseSub.ADMIN_RESET)
    pump(a, b, T0 + 1)
    assert closed(b).notification_received == (6, 4, b"")
    assert not ends_gracefully(closed(a)) and not ends_gracefully(closed(b))


def test_other_config_change_is_not_hard_and_keeps_routes_with_the_n_bit() -> None:
    a, b = gr_pair()
    a.events += a.conn.close(T0 + 1, 6, CeaseSub.OTHER_CONFIG_CHANGE)
    pump(a, b, T0 + 1)
    assert closed(b).notification_received == (6, 6, b"")
    assert ends_gracefully(closed(a)) and ends_gracefully(closed(b))


@pytest.mark.parametrize("n", [True, False])
def test_hold_timer_expiry_keeps_routes_only_with_the_n_bit(n: bool) -> None:
    a, b = gr_pair(n_b=n)
    t = T0
    while b.conn.closed is False and t < T0 + 20:
        t += 0.5
        a.muted = True
        tick(a, b, t)
    a.muted = False
    pump(a, b, t)
    assert closed(b).notification_sent == (4, 0, b"")
    assert closed(a).notification_received == (4, 0, b"")
    assert closed(b).graceful_notification is n and closed(a).graceful_notification is n
    assert ends_gracefully(closed(b)) is n and ends_gracefully(closed(a)) is n


def test_ends_gracefully_table() -> None:
    def sc(sent: tuple[int, int, bytes] | None, got: tuple[int, int, bytes] | None, n: bool) -> SessionClosed:
        return SessionClosed("x", notification_sent=sent, notification_received=got, graceful_notification=n)

    assert ends_gracefully(sc(None, None, False)) and ends_gracefully(sc(None, None, True))
    assert not ends_gracefully(None)
    for notif in [(4, 0, b""), (3, 1, b""), (6, 2, b""), (8, 0, b"")]:
        assert not ends_gracefully(sc(notif, None, False)) and not ends_gracefully(sc(None, notif, False))
        # RFC 8538 4: with the N bit, any NOTIFICATION but a Hard Reset (even an unwrapped Cease)
        assert ends_gracefully(sc(notif, None, True)) and ends_gracefully(sc(None, notif, True))
    hard = (6, 9, b"\x06\x04")
    assert not ends_gracefully(sc(hard, None, True)) and not ends_gracefully(sc(None, hard, True))
