"""Graceful restart decisions and timers (bgpd/graceful.py) and our capability bits (RFC 4724 3)."""

from __future__ import annotations

import asyncio

import structlog

from bgpd.connection import ConnParams, Negotiated, SessionClosed
from bgpd.graceful import Helper, Recovery, ends_gracefully, forwarding_families
from bgpd.wire.messages import Capabilities, GracefulRestart
from rib.prefix import Afi, parse_prefix
from tests.unit.rib.helpers import attrs
from tests.unit.rib.test_engine import World

V4, V6 = Afi.IPV4, Afi.IPV6
TCP_LOST = SessionClosed("connection closed by peer")
CEASE_IN = SessionClosed("received NOTIFICATION", notification_received=(6, 2, b""))
HOLD_EXPIRED = SessionClosed("sent NOTIFICATION", notification_sent=(4, 0, b""))


def neg(restart_time: int = 5, f_bit: bool = True, gr: bool = True) -> Negotiated:
    cap = GracefulRestart(0x8, restart_time, [(1, 1, 0x80 if f_bit else 0), (2, 1, 0x80 if f_bit else 0)])
    return Negotiated(
        "192.0.2.1",
        65001,
        90,
        30,
        True,
        [V4, V6],
        True,
        Capabilities(graceful_restart=cap),
        graceful_restart=gr,
    )


def world() -> tuple[World, Helper, list[int]]:
    w = World()
    flushes: list[int] = []
    loop = asyncio.get_running_loop()
    helper = Helper(w.rib, structlog.get_logger(), lambda: flushes.append(1), loop.call_later)
    return w, helper, flushes


def k(text: str) -> bytes:
    return parse_prefix(text)[1]


def test_our_capability_bits() -> None:
    p = ConnParams(65010, "10.0.0.1", 65001, 90, [V4, V6], graceful_restart=True, restart_time=120)
    gr = p.capabilities().graceful_restart
    # Helper only: R and F clear; N (RFC 8538) set by default.
    assert gr == GracefulRestart(0x4, 120, [(1, 1, 0), (2, 1, 0)])
    p.restart_state, p.forwarding = True, frozenset({V4})
    gr = p.capabilities().graceful_restart
    assert gr == GracefulRestart(0xC, 120, [(1, 1, 0x80), (2, 1, 0)])
    assert gr is not None and gr.restarting
    assert forwarding_families(gr) == {V4}


def test_only_a_tcp_failure_starts_a_restart() -> None:
    assert ends_gracefully(TCP_LOST)
    assert not ends_gracefully(CEASE_IN)
    assert not ends_gracefully(HOLD_EXPIRED)  # RFC 4724 without the N bit: a NOTIFICATION sent
    assert not ends_gracefully(None)


async def test_notification_withdraws_at_once() -> None:
    w, helper, _ = world()
    a = w.channel("192.0.2.1", "red", 65001)
    src = w.up(a)
    helper.session_up("192.0.2.1", a, src, neg(), 360)
    w.announce(a, "10.1.0.0/16", attrs(path=(65001,), nh="192.0.2.1"))
    assert not helper.session_down("192.0.2.1", a, CEASE_IN, True)


async def test_restart_time_runs_out() -> None:
    w, helper, flushes = world()
    a = w.channel("192.0.2.1", "red", 65001)
    src = w.up(a)
    helper.session_up("192.0.2.1", a, src, neg(restart_time=1), 360)
    w.announce(a, "10.1.0.0/16", attrs(path=(65001,), nh="192.0.2.1"))
    assert helper.session_down("192.0.2.1", a, TCP_LOST, True)
    info = helper.json("192.0.2.1", a, True)
    assert info["state"] == "restarting" and info["stale"] == 1 and 0 < info["time_left_s"] <= 1
    assert w.rib.table("red", V4).get(k("10.1.0.0/16")) is not None
    await asyncio.sleep(1.2)
    assert w.rib.table("red", V4).get(k("10.1.0.0/16")) is None
    assert helper.json("192.0.2.1", a, True)["state"] == "none" and flushes


async def test_back_with_f_bit_clear_sweeps_at_once_else_waits_for_eor_or_stale_time() -> None:
    w, helper, _ = world()
    a = w.channel("192.0.2.1", "red", 65001)
    src = w.up(a)
    helper.session_up("192.0.2.1", a, src, neg(), 360)
    w.announce(a, "10.1.0.0/16", attrs(path=(65001,), nh="192.0.2.1"))
    helper.session_down("192.0.2.1", a, TCP_LOST, True)
    back = helper.session_up("192.0.2.1", a, src, neg(f_bit=False), 360)
    assert back is src  # same speaker, but its forwarding state is gone: nothing stale is left
    assert w.rib.table("red", V4).get(k("10.1.0.0/16")) is None
    w.rib.channel_up(a, back, (V4, V6))
    # Again, with F set: no End-of-RIB comes, so the stale time sweeps.
    w.announce(a, "10.2.0.0/16", attrs(path=(65001,), nh="192.0.2.1"))
    helper.session_down("192.0.2.1", a, TCP_LOST, True)
    back = helper.session_up("192.0.2.1", a, src, neg(), 1)
    w.rib.channel_up(a, back, (V4, V6))
    assert helper.json("192.0.2.1", a, True)["state"] == "waiting_eor"
    assert helper.is_stale(V4, k("10.2.0.0/16"), w.rib.table("red", V4).get(k("10.2.0.0/16")).selected[0])  # type: ignore[union-attr]
    await asyncio.sleep(1.2)
    assert w.rib.table("red", V4).get(k("10.2.0.0/16")) is None


def test_recovery_waits_for_every_graceful_peer() -> None:
    rec = Recovery({"a", "b", "c"}, {}, frozenset({V4}), deadline=1e18)
    rec.session_up("a", [V4, V6], True)
    rec.session_up("c", [V4], False)  # no graceful restart negotiated: not waited for
    assert not rec.done(0.0)
    rec.end_of_rib("a", V4)
    assert not rec.done(0.0)
    rec.end_of_rib("a", V6)
    rec.session_up("b", [V4], True)
    rec.end_of_rib("b", V4)
    assert rec.done(0.0)
    assert Recovery({"x"}, {}, frozenset(), deadline=5.0).done(5.0)  # our restart time passed
