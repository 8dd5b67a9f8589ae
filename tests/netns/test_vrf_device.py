"""A VRF that names a device: its sessions bind to it (SO_BINDTODEVICE), in real namespaces.

This kernel has no `vrf` link type, but SO_BINDTODEVICE works on any device, and binding to a
VRF device is binding to a device: the socket's route lookups see only routes through it. So
namespace "a" reaches the peer address 10.99.0.9 two ways, through namespace "b" (the better
route) and through "c" (metric 100), and a session bound to the veth towards "c" must reach
"c"'s listener while an unbound one reaches "b"'s. Inbound, a connection whose socket is not
bound to the VRF's device (as one arriving in another VRF is not) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import select
import socket
import uuid
from collections.abc import Iterator

import pytest

from bgpd.config.model import NeighborConfig
from bgpd.session import PeerSession
from tests.netns.test_fib_netlink import in_netns
from tests.pair.test_pair_tcp import ListLogger, Recorder, until
from tests.support.netns import Lab, need_root, run

pytestmark = pytest.mark.root

PEER = "10.99.0.9"
MARKER = b"\xff" * 16


@pytest.fixture
def topo() -> Iterator[tuple[str, str, str, str, str]]:
    """(ns a, ns b, ns c, a's device towards b, a's device towards c)."""
    need_root()
    tag = uuid.uuid4().hex[:4]
    with Lab() as lab:
        a, b, c = lab.ns("a"), lab.ns("b"), lab.ns("c")
        to_b, _ = lab.link(a, b, ["10.81.0.1/24"], ["10.81.0.2/24"], name=f"vb{tag}")
        to_c, _ = lab.link(a, c, ["10.82.0.1/24"], ["10.82.0.2/24"], name=f"vc{tag}")
        for ns in (a, b, c):
            run("ip", "link", "set", "lo", "up", ns=ns)
        for ns in (b, c):
            run("ip", "addr", "add", f"{PEER}/32", "dev", "lo", ns=ns)
        run("ip", "route", "add", f"{PEER}/32", "via", "10.81.0.2", ns=a)
        run("ip", "route", "add", f"{PEER}/32", "via", "10.82.0.2", "metric", "100", ns=a)
        yield a, b, c, to_b, to_c


def listening(ns: str, addr: str, port: int) -> socket.socket:
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    s.setblocking(False)
    return s


def pending(listener: socket.socket) -> bool:
    return bool(select.select([listener], [], [], 0)[0])


def session(device: str | None, port: int, passive: bool = False) -> tuple[PeerSession, ListLogger]:
    cfg = NeighborConfig(
        address=ipaddress.ip_address(PEER), asn=65002, port=port, passive=passive, connect_retry=0.2
    )
    log = ListLogger("a")
    return PeerSession(cfg, 65001, "10.0.0.1", Recorder(), log, device), log  # type: ignore[arg-type]


@pytest.mark.parametrize("bound", [True, False])
def test_outgoing_session_reaches_the_peer_only_through_its_device(topo, bound: bool) -> None:
    a, b, c, _to_b, to_c = topo
    via_b, via_c = listening(b, PEER, 1179), listening(c, PEER, 1179)
    sess, _log = session(to_c if bound else None, 1179)

    async def main() -> None:
        sess.start()
        try:
            await until(lambda: pending(via_b) or pending(via_c), "a connection", timeout=10)
        finally:
            await sess.stop()

    try:
        with in_netns(a):
            asyncio.run(main())
        # Bound to the device towards c, the better route via b is not the socket's to use.
        assert pending(via_c) is bound
        assert pending(via_b) is not bound
    finally:
        via_b.close()
        via_c.close()


def test_missing_device_is_a_clear_connect_failure(topo) -> None:
    a, *_ = topo
    sess, log = session("nosuchdev0", 1179)

    async def main() -> None:
        sess.start()
        try:
            await until(lambda: bool(sess.last_error), "a connect failure", timeout=10)
        finally:
            await sess.stop()

    with in_netns(a):
        asyncio.run(main())
    assert sess.last_error == "connect failed: vrf device nosuchdev0: No such device"
    assert "connect failed" in log.events("warning")  # said once, then retried quietly


def test_inbound_connection_must_come_through_the_device(topo) -> None:
    """From c, one connection to a listener bound to the device (accepted, OPEN sent) and one to
    an unbound listener (refused: closed without a message). The listeners hand the connections
    straight to the session, as bgpd.listener does once it has matched the peer's address."""
    a, _b, c, _to_b, to_c = topo
    unbound = listening(a, "10.82.0.1", 1180)
    bound = listening(a, "10.82.0.1", 1181)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, to_c.encode())
    sess, log = session(to_c, 179, passive=True)
    clients: list[socket.socket] = []

    def connect(port: int) -> socket.socket:
        with in_netns(c):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("10.82.0.1", port))
        clients.append(s)
        return s

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sess.start()
        servers = [
            await asyncio.start_server(lambda r, w: sess.accept(r, w), sock=lst) for lst in (unbound, bound)
        ]
        try:
            refused = await loop.run_in_executor(None, connect, 1180)
            assert await loop.run_in_executor(None, refused.recv, 100) == b""  # closed, nothing sent
            assert "inbound connection refused: not through the vrf's device" in log.events("warning")
            accepted = await loop.run_in_executor(None, connect, 1181)
            assert (await loop.run_in_executor(None, accepted.recv, 100)).startswith(MARKER)  # our OPEN
        finally:
            await sess.stop()
            for server in servers:
                server.close()
                await server.wait_closed()

    try:
        with in_netns(a):
            asyncio.run(main())
    finally:
        for s in clients:
            with contextlib.suppress(OSError):
                s.close()
