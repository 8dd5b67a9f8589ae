"""Two PeerSessions over real loopback TCP (127.0.0.1 / ::1, free ports)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog
import structlog.testing

from bgpd import sockopts
from bgpd.config.model import NeighborConfig
from bgpd.fsm import State
from bgpd.listener import Listener, ListenerError, normalise_peer
from bgpd.session import PeerSession
from bgpd.wire import UpdateEncoder
from bgpd.wire.messages import Update
from rib.attrs import Origin, PathAttrs, SegType, intern
from rib.prefix import Afi, parse_prefix

LOOP4 = "127.0.0.1"
LOOP6 = "::1"


class ListLogger:
    """Records structlog-style calls (and is its own bound logger)."""

    def __init__(self, name: str, records: list[tuple[str, str, str, dict[str, Any]]] | None = None) -> None:
        self.name = name
        self.records = records if records is not None else []

    def bind(self, **kw: Any) -> ListLogger:
        return self

    def _log(self, level: str, event: str, **kw: Any) -> None:
        self.records.append((self.name, level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._log("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._log("exception", event, **kw)

    def events(self, level: str | None = None) -> list[str]:
        return [e for _n, lv, e, _kw in self.records if level is None or lv == level]


class Recorder:
    def __init__(self) -> None:
        self.up = 0
        self.down: list[str] = []
        self.updates: list[Update] = []
        self.refresh: list[Afi] = []

    def session_up(self, session: PeerSession) -> None:
        self.up += 1

    def session_down(self, session: PeerSession, reason: str) -> None:
        self.down.append(reason)

    def update_received(self, session: PeerSession, update: Update) -> None:
        self.updates.append(update)

    def refresh_requested(self, session: PeerSession, afi: Afi) -> None:
        self.refresh.append(afi)

    def output_drained(self, session: PeerSession) -> None:
        pass


class Speaker:
    """A minimal daemon: one session towards the other speaker, optionally a listener."""

    def __init__(
        self, asn: int, router_id: str, peer_asn: int, *, passive: bool, hold: int = 9, peer: str = LOOP4
    ) -> None:
        self.cfg = NeighborConfig(
            address=ipaddress.ip_address(peer),
            asn=peer_asn,
            passive=passive,
            hold_time=hold,
            connect_retry=0.2,
            port=0,  # set once the other speaker listens
        )
        self.rec = Recorder()
        self.log = ListLogger(router_id)
        self.session = PeerSession(self.cfg, asn, router_id, self.rec, self.log)  # type: ignore[arg-type]
        self.listener: Listener | None = None

    async def listen(self, addresses: list[str] | None = None, port: int = 0) -> int:
        key = self.cfg.key
        self.listener = Listener(
            addresses or [LOOP4],
            port,
            lambda a: self.session if a == key else None,
            self.log,  # type: ignore[arg-type]
        )
        await self.listener.start()
        return self.listener.bound[0][1]

    async def close(self) -> None:
        await self.session.stop()
        if self.listener is not None:
            await self.listener.close()


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def both_up(a: Speaker, b: Speaker, times: int = 1) -> Callable[[], bool]:
    return lambda: (
        a.rec.up >= times
        and b.rec.up >= times
        and a.session.state is State.ESTABLISHED
        and b.session.state is State.ESTABLISHED
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Speaker, Speaker]]:
    """A active (AS 65001, id 10.0.0.1) towards B passive (AS 65002, id 10.0.0.2) listening."""
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True)
    a.cfg.port = await b.listen()
    a.session.start()
    b.session.start()
    try:
        await until(both_up(a, b), "both sessions established")
        yield a, b
    finally:
        await a.close()
        await b.close()


def attrs(asn: int) -> PathAttrs:
    return intern(
        PathAttrs(
            origin=Origin.IGP,
            as_path=((SegType.AS_SEQUENCE, (asn,)),),
            next_hop=ipaddress.ip_address("192.0.2.1"),
        )
    )


def keys_of(updates: list[Update]) -> list[bytes]:
    return [k for u in updates for _f, _a, ks in u.announce for k in ks]


async def test_establish_and_exchange_routes(pair: tuple[Speaker, Speaker]) -> None:
    a, b = pair
    assert a.session.negotiated is not None and a.session.negotiated.hold_time == 9
    assert a.session.established_at is not None
    assert a.session.peer_asn == 65002 and a.session.ebgp
    assert a.session.local_address == ipaddress.ip_address(LOOP4)
    keys = [parse_prefix(f"10.{i}.0.0/16")[1] for i in range(200)]
    enc = UpdateEncoder(four_octet=True)
    a.session.send_updates([*enc.announce(Afi.IPV4, attrs(65001), keys), enc.end_of_rib(Afi.IPV4)])
    await until(lambda: any(u.end_of_rib is Afi.IPV4 for u in b.rec.updates), "routes at B")
    assert keys_of(b.rec.updates) == keys
    b.session.send_updates(enc.announce(Afi.IPV4, attrs(65002), keys[:1]))
    await until(lambda: len(a.rec.updates) == 1, "route at A")
    assert keys_of(a.rec.updates) == keys[:1]
    assert a.session.updates_out == b.session.updates_in == len(b.rec.updates)
    assert a.session.messages_out >= a.session.updates_out + 2
    assert a.session.request_refresh(Afi.IPV6)
    await until(lambda: b.rec.refresh == [Afi.IPV6], "route refresh at B")

    await a.session.stop(message="planned maintenance")
    await until(lambda: bool(b.rec.down), "B down")
    assert "Administrative Shutdown" in b.rec.down[0] and "planned maintenance" in b.rec.down[0]
    assert b.session.last_notification is not None and "received Cease" in b.session.last_notification
    assert a.session.state is State.IDLE
    assert a.session.notifications_out == 1 and b.session.notifications_in == 1
    await asyncio.sleep(0.5)
    assert a.session.state is State.IDLE  # stopped: no reconnect
    assert b.session.state is State.ACTIVE  # passive: waiting for the next connection
    assert a.rec.down and b.session.flaps == 1


async def test_hold_timer_expiry_when_peer_goes_silent() -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False, hold=3)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True, hold=3)
    a.cfg.port = await b.listen()
    a.session.start()
    b.session.start()
    try:
        await until(both_up(a, b), "established")
        link = a.session._established
        assert link is not None
        link.writer.write = lambda data: None  # type: ignore[method-assign]  # A stops talking
        await until(lambda: bool(b.rec.down), "B's hold timer", timeout=6)
        assert "hold timer expired" in b.rec.down[0]
        await until(lambda: bool(a.rec.down), "A down")
        assert a.session.last_notification == "received Hold Timer Expired"
        # Both come back on a fresh connection.
        await until(both_up(a, b, 2), "re-established")
    finally:
        await a.close()
        await b.close()


async def test_reconnect_after_peer_drops_the_connection(pair: tuple[Speaker, Speaker]) -> None:
    a, b = pair
    link = b.session._established
    assert link is not None
    link.writer.transport.abort()  # B's side of the TCP connection disappears
    await until(lambda: bool(a.rec.down) and bool(b.rec.down), "both down")
    assert a.rec.down[0] == "connection closed by peer"
    await until(both_up(a, b, 2), "re-established")
    assert a.session.flaps == b.session.flaps == 1


async def test_reconnect_after_peer_resets(pair: tuple[Speaker, Speaker]) -> None:
    a, b = pair
    b.session.reset("clearing")
    await until(lambda: bool(a.rec.down), "A down")
    assert "Administrative Reset" in a.rec.down[0] and "clearing" in a.rec.down[0]
    await until(both_up(a, b, 2), "re-established")


async def test_garbage_gets_a_header_notification_and_the_session_recovers(
    pair: tuple[Speaker, Speaker],
) -> None:
    a, b = pair
    link = a.session._established
    assert link is not None
    link.writer.write(b"\x00" * 19)  # not a BGP header
    await until(lambda: bool(a.rec.down) and bool(b.rec.down), "both down")
    assert "Connection Not Synchronized" in b.rec.down[0]
    assert a.session.last_notification == "received Message Header Error / Connection Not Synchronized"
    warnings = [kw for _n, lv, ev, kw in b.log.records if lv == "warning" and ev == "session closed"]
    assert warnings and warnings[0]["message"] == "00" * 19  # hex excerpt of what was received
    await until(both_up(a, b, 2), "re-established")


async def test_collision_keeps_the_connection_of_the_higher_identifier() -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=False)
    a.cfg.port = await b.listen()
    b.cfg.port = await a.listen()
    a.session.start()
    b.session.start()
    try:
        await until(both_up(a, b), "established")
        await asyncio.sleep(0.3)  # let the losing connection finish
        assert a.session.state is b.session.state is State.ESTABLISHED
        la, lb = a.session._established, b.session._established
        assert la is not None and lb is not None
        assert len(a.session._links) == len(b.session._links) == 1
        # Both kept the same TCP connection: the one B (the higher identifier) initiated.
        assert la.writer.get_extra_info("sockname") == lb.writer.get_extra_info("peername")
        assert la.inbound and not lb.inbound
    finally:
        await a.close()
        await b.close()


async def test_established_session_refuses_a_second_connection(pair: tuple[Speaker, Speaker]) -> None:
    a, b = pair
    assert b.listener is not None
    reader, writer = await asyncio.open_connection(LOOP4, b.listener.bound[0][1])
    data = await asyncio.wait_for(reader.read(100), 2)
    assert data[16:21] == b"\x00\x15\x03\x06\x07"  # NOTIFICATION Cease / Connection Collision Resolution
    assert await asyncio.wait_for(reader.read(100), 2) == b""
    writer.close()
    assert a.session.state is b.session.state is State.ESTABLISHED and not a.rec.down


async def test_unknown_peer_is_refused() -> None:
    log = ListLogger("listener")
    listener = Listener([LOOP4], 0, lambda a: None, log)  # type: ignore[arg-type]
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(LOOP4, listener.bound[0][1])
        assert await asyncio.wait_for(reader.read(100), 2) == b""
        writer.close()
        assert ("listener", "warning", "connection from unknown peer refused", {"peer": LOOP4}) in log.records
    finally:
        await listener.close()


async def test_disabled_peer_is_refused_until_enabled() -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True)
    a.cfg.port = await b.listen()
    b.session.start()
    b.session.disable()
    a.session.start()
    try:
        await until(lambda: "connection from disabled peer refused" in b.log.events("warning"), "refusal")
        assert b.session.state is State.IDLE and a.rec.up == 0
        b.session.enable()
        await until(both_up(a, b), "established after enable")
        a.session.disable("bye")
        await until(lambda: bool(b.rec.down), "B down")
        assert a.session.state is State.IDLE
        await asyncio.sleep(0.5)
        assert a.session.state is State.IDLE and a.rec.up == 1  # no reconnect while disabled
    finally:
        await a.close()
        await b.close()


async def test_connect_failure_goes_active_and_backs_off() -> None:
    with socket.socket() as s:
        s.bind((LOOP4, 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    a.cfg.port = port
    states: list[str] = []
    a.session.start()
    try:
        await until(lambda: a.session.state is State.ACTIVE, "Active")
        await until(lambda: a.session._delay >= 0.8, "back-off")
        states = [kw["new"] for _n, _lv, ev, kw in a.log.records if ev == "state changed"]
        assert states[:3] == ["Connect", "Active", "Connect"]
        assert a.session.last_error.startswith("connect failed")
        assert a.log.events("warning").count("connect failed") == 1  # repeats are debug
    finally:
        await a.close()
    assert a.session.state is State.IDLE


async def test_ipv6_and_dual_stack_listener() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind((LOOP6, 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with socket.socket() as s:
        s.bind((LOOP4, 0))
        port = s.getsockname()[1]
    a = Speaker(65001, "10.0.0.1", 65002, passive=False, peer=LOOP6)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True, peer=LOOP6)
    await b.listen(["0.0.0.0", "::"], port)  # both families on one port: "::" is IPv6-only
    assert b.listener is not None and sorted(p for _a, p in b.listener.bound) == [port, port]
    a.cfg.port = port
    a.session.start()
    b.session.start()
    try:
        await until(both_up(a, b), "established over ::1")
    finally:
        await a.close()
        await b.close()


async def test_bind_failure_is_a_clear_error() -> None:
    log = ListLogger("l")
    first = Listener([LOOP4], 0, lambda a: None, log)  # type: ignore[arg-type]
    await first.start()
    port = first.bound[0][1]
    second = Listener([LOOP4], port, lambda a: None, log)  # type: ignore[arg-type]
    try:
        with pytest.raises(ListenerError, match=rf"cannot listen on \[127.0.0.1\]:{port}"):
            await second.start()
    finally:
        await first.close()
        await second.close()


def test_normalise_peer() -> None:
    assert normalise_peer("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_peer("fe80::1%eth0") == "fe80::1"
    assert normalise_peer("2001:db8::1") == "2001:db8::1"
    assert normalise_peer("192.0.2.1") == "192.0.2.1"


async def test_failing_handler_resets_the_session_with_real_structlog() -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True)
    calls = 0

    def broken(session: PeerSession, update: Update) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("RIB bug")

    b.rec.update_received = broken  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        b.session = PeerSession(b.cfg, 65002, "10.0.0.2", b.rec, structlog.get_logger().bind(peer="a"))
        a.cfg.port = await b.listen()
        a.session.start()
        b.session.start()
        try:
            await until(both_up(a, b), "established")
            enc = UpdateEncoder(four_octet=True)
            a.session.send_updates([enc.end_of_rib(Afi.IPV4)])
            await until(lambda: bool(a.rec.down), "A down")
            assert "Cease" in a.rec.down[0]
            await until(both_up(a, b, 2), "re-established")
        finally:
            await a.close()
            await b.close()
    events = [entry["event"] for entry in logs]
    assert "session handler failed" in events
    assert "session established" in events and "state changed" in events


def _md5_supported() -> bool:
    try:
        with socket.socket() as s:
            sockopts.set_md5(s, LOOP4, "x")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _md5_supported(), reason="kernel without TCP MD5")
@pytest.mark.parametrize(("ours", "theirs", "up"), [("s3cret", "s3cret", True), ("s3cret", "other", False)])
async def test_tcp_md5(ours: str, theirs: str, up: bool) -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True)
    a.cfg.password = ours
    b.listener = Listener([LOOP4], 0, lambda _a: b.session, b.log, passwords={LOOP4: theirs})  # type: ignore[arg-type]
    await b.listener.start()
    a.cfg.port = b.listener.bound[0][1]
    a.session.start()
    b.session.start()
    try:
        if up:
            await until(both_up(a, b), "established with matching keys")
        else:
            await asyncio.sleep(1.5)  # segments with a wrong signature are dropped silently
            assert a.session.state is State.CONNECT and b.rec.up == 0
    finally:
        await a.close()
        await b.close()


async def test_prefix_limit_cease_stays_down_until_reset(pair: tuple[Speaker, Speaker]) -> None:
    a, b = pair
    b.session.prefix_limit_exceeded(Afi.IPV4, 20, 21)
    await until(lambda: bool(a.rec.down), "A down")
    assert "Maximum Number of Prefixes Reached" in a.rec.down[0]
    assert b.session.last_error == "prefix limit 20 exceeded (21 received)"
    assert b.session.state is State.IDLE and not b.session.enabled
    await asyncio.sleep(0.6)  # A keeps reconnecting; B refuses while down
    assert b.rec.up == 1 and "connection from disabled peer refused" in b.log.events("warning")
    b.session.reset()  # an operator's reset (or enable) lifts it
    await until(both_up(a, b, 2), "re-established after reset")


async def test_prefix_limit_restart_timer_reconnects() -> None:
    a = Speaker(65001, "10.0.0.1", 65002, passive=False)
    b = Speaker(65002, "10.0.0.2", 65001, passive=True)
    a.cfg.max_prefixes_restart = 1
    a.cfg.port = await b.listen()
    a.session.start()
    b.session.start()
    try:
        await until(both_up(a, b), "established")
        a.session.prefix_limit_exceeded(Afi.IPV6, 5, 6)
        await until(lambda: bool(b.rec.down), "B down")
        assert "Maximum Number of Prefixes Reached" in b.rec.down[0]
        assert b.session.last_notification is not None and "received Cease" in b.session.last_notification
        await asyncio.sleep(0.3)
        assert a.session.state is State.IDLE  # still inside the restart time
        await until(both_up(a, b, 2), "re-established by the restart timer", timeout=10)
        assert a.session.enabled
    finally:
        await a.close()
        await b.close()
