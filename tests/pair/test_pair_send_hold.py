"""RFC 9687 send hold timer over real loopback TCP.

The peer is a raw socket that completes the OPEN exchange without ever reading (a 4 KiB receive
buffer that fills at once) and sends a KEEPALIVE every second, so our hold timer never fires:
only the send hold timer (`send_hold_time = 2`) can end the session, with NOTIFICATION 8.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket

from bgpd.config.model import NeighborConfig
from bgpd.fsm import State
from bgpd.session import PeerSession
from bgpd.wire import UpdateEncoder, encode_keepalive, encode_open
from rib.prefix import Afi, make_key

from .test_pair_tcp import LOOP4, ListLogger, Recorder, attrs, until


async def _never_reads(listener: socket.socket, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    with conn:
        await loop.sock_sendall(conn, encode_open(65002, 9, "10.0.0.2", [(1, 1)]) + encode_keepalive())
        while not stop.is_set():
            await asyncio.sleep(1.0)
            try:
                await asyncio.wait_for(loop.sock_sendall(conn, encode_keepalive()), 1.0)
            except (OSError, TimeoutError):
                return  # we reset it


async def _session(send_hold_time: int | None, routes: int) -> tuple[PeerSession, list[str], float]:
    """Our session against the peer that never reads: the reasons it went down within 8 s
    (before the test stops it) and how long that took."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted sockets inherit it
    listener.bind((LOOP4, 0))
    listener.listen(1)
    listener.setblocking(False)
    cfg = NeighborConfig(
        address=ipaddress.ip_address(LOOP4),
        asn=65002,
        hold_time=9,
        connect_retry=30,
        port=listener.getsockname()[1],
        send_hold_time=send_hold_time,
    )
    rec = Recorder()
    session = PeerSession(cfg, 65001, "10.0.0.1", rec, ListLogger("us"))  # type: ignore[arg-type]
    stop = asyncio.Event()
    peer = asyncio.create_task(_never_reads(listener, stop))
    loop = asyncio.get_running_loop()
    try:
        session.start()
        await until(lambda: session.state is State.ESTABLISHED, "established")
        enc = UpdateEncoder(four_octet=True)
        keys = [make_key(24, (0x0A000000 + (i << 8)).to_bytes(4, "big")) for i in range(routes)]
        assert session.send_updates(enc.announce(Afi.IPV4, attrs(65001), keys))
        t0 = loop.time()
        with contextlib.suppress(AssertionError):
            await until(lambda: bool(rec.down), "session down", timeout=8)
        return session, list(rec.down), loop.time() - t0
    finally:
        stop.set()
        await session.stop()
        peer.cancel()
        with contextlib.suppress(BaseException):
            await peer
        listener.close()


async def test_a_peer_that_never_reads_is_dropped_with_notification_8() -> None:
    # 20k /24s: ~80 KiB of UPDATEs, far beyond the peer's 4 KiB window.
    session, down, took = await _session(send_hold_time=2, routes=20_000)
    assert down, "the session stayed up"
    assert "send hold timer expired (2 s)" in down[0]
    assert session.notifications_out == 1
    assert 1.5 <= took <= 6.0, took


async def test_without_a_send_hold_timer_the_stuck_peer_keeps_its_session() -> None:
    # The control case: the same stuck peer, the timer off (0): its KEEPALIVEs keep it up.
    session, down, _took = await _session(send_hold_time=0, routes=20_000)
    assert not down
    assert session.notifications_out == 1  # only the Cease of the test's own stop
