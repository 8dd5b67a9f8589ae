"""A PeerSession on a busy event loop, against a plain-socket BGP speaker in a thread (real
loopback TCP): received bytes are processed in slices that leave the loop free, and a hold
timer never runs out while the peer's messages wait unread on our side."""

from __future__ import annotations

import asyncio
import itertools
import time

from bgpd.session import PeerSession
from bgpd.wire import UpdateEncoder
from bgpd.wire.messages import Update
from rib.prefix import Afi
from tests.pair.test_pair_tcp import Speaker, attrs, until
from tests.support.raw_peer import RawPeer


async def passive_speaker(hold: int = 3) -> tuple[Speaker, int]:
    b = Speaker(65002, "10.0.0.2", 65001, passive=True, hold=hold)
    port = await b.listen()
    b.session.start()
    return b, port


async def test_hold_timer_waits_for_messages_that_sit_unread_while_the_loop_was_busy() -> None:
    b, port = await passive_speaker(hold=3)
    peer = RawPeer(port, hold=3, every=0.5, timeout=10)  # AS 65001 from 127.0.0.1
    try:
        await asyncio.get_running_loop().run_in_executor(None, peer.start)
        await until(lambda: b.rec.up == 1, "established")
        # One callback holds the loop for longer than the hold time; the peer's KEEPALIVEs
        # meanwhile pile up in our socket. BIRD reads first in that case; so must we.
        time.sleep(4.0)
        await asyncio.sleep(2.0)
        assert b.rec.down == [], b.rec.down
        assert b.session.flaps == 0 and b.session.state.value == "Established"
        # A peer that really goes silent still loses its session.
        peer.every = 3600
        await until(lambda: bool(b.rec.down), "hold timer expiry", timeout=8)
        assert "hold timer expired" in b.rec.down[0]
    finally:
        peer.close()
        await b.close()


class SlowHandler:
    """A RIB that takes ``cost`` seconds of CPU per UPDATE."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.updates = 0

    def update_received(self, session: PeerSession, update: Update) -> None:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            pass
        self.updates += 1


async def test_a_burst_of_updates_leaves_the_loop_free_between_slices() -> None:
    b, port = await passive_speaker(hold=9)
    slow = SlowHandler(0.001)
    b.session.handler.update_received = slow.update_received  # type: ignore[method-assign]
    peer = RawPeer(port, hold=9, every=3.0, timeout=10)
    n = 1000
    enc = UpdateEncoder(four_octet=True)
    burst = b"".join(
        m
        for i in range(n)
        for m in enc.announce(
            Afi.IPV4,
            attrs(65001),
            [bytes([32]) + ((10 << 24) + i * 10 + j).to_bytes(4, "big") for j in range(10)],
        )
    )
    try:
        await asyncio.get_running_loop().run_in_executor(None, peer.start)
        await until(lambda: b.rec.up == 1, "established")
        seen: list[int] = []  # UPDATEs processed so far, at each turn of the loop the ticker gets

        async def ticker() -> None:
            while slow.updates < n:
                seen.append(slow.updates)
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        await asyncio.get_running_loop().run_in_executor(None, peer.send, burst)
        await until(lambda: slow.updates == n, "every UPDATE processed", timeout=60)
        await tick
        # Unsliced, one 64 KiB read (~680 UPDATEs here) was processed in one go; sliced, the
        # loop gets a turn after a round (10 ms: ~5 UPDATEs) and a piece (2 KiB: ~22 UPDATEs).
        # Counted in UPDATEs rather than seconds, so a busy machine cannot fail it.
        assert len(seen) > n / 100, f"the loop got {len(seen)} turns while {n} UPDATEs were processed"
        steps = [y - x for x, y in itertools.pairwise(seen)]
        assert max(steps) < 100, f"{max(steps)} UPDATEs processed without the loop getting a turn"
        assert b.session.flaps == 0
    finally:
        peer.close()
        await b.close()
