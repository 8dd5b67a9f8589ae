"""Backpressure from the kernel writer to the sessions' input, on a whole daemon over real TCP.

A daemon built in-process (its FIB a slow in-memory kernel) takes a 200k-route table from a
plain-socket peer in a thread (real loopback TCP, hold time 3 s). The routes queued behind
the kernel never exceed high water plus one UPDATE's routes; the kernel stalls for 5 s
(longer than the hold time) in the middle and the session stays Established, our KEEPALIVEs
go on and the control socket answers meanwhile; in the end every route is in the kernel.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bgpd.config.toml import load_config
from bgpd.daemon import Daemon
from bgpd.wire import MessageFramer, UpdateEncoder
from fib.sync import HIGH_WATER, LOW_WATER
from rib.prefix import Afi
from tests.pair.test_pair_tcp import attrs, until
from tests.support.daemon import LoadWatch, SlowKernel, cli, free_port, write_config
from tests.support.raw_peer import RawPeer

ROUTES = 200_000
PEER = "127.0.0.2"  # the peer's source address: our neighbour (all of 127/8 is loopback)
HOLD = 3
STALL = 5.0


def table() -> tuple[bytes, int]:
    """The peer's UPDATEs (4 KiB each, as a full table's) and the most routes one carries."""
    enc = UpdateEncoder(four_octet=True)
    keys = [bytes([24]) + ((20 << 24) + (i << 8)).to_bytes(4, "big")[:3] for i in range(ROUTES)]
    msgs = enc.announce(Afi.IPV4, attrs(65001), keys)
    framer = MessageFramer()
    most = max((len(body) - 4 - 60) // 4 + 1 for m in msgs for _t, body in framer.feed(m))
    return b"".join(msgs), most


async def test_input_waits_for_a_slow_kernel_and_the_session_survives_a_stall(tmp_path: Path) -> None:
    port = free_port()
    sock = str(tmp_path / "bgpd.sock")
    conf = write_config(
        tmp_path,
        f"""
[[neighbor]]
address = "{PEER}"
asn = 65001
passive = true
hold_time = {HOLD}
import = "all"
export = "none"
""",
        listen='["127.0.0.1"]',
        port=port,
    )
    kernel = SlowKernel()
    d = Daemon(load_config(str(conf)), fib_backend=kernel)
    assert d.fib is not None
    fib = d.fib
    data, per_update = table()
    await d.start()
    peer = RawPeer(port, source=PEER, hold=HOLD, router_id="10.0.0.2")
    loop = asyncio.get_running_loop()
    # The session's state on the loop; the queue behind the kernel from a thread.
    watch = LoadWatch(fib, lambda: d.peers[PEER].session.state.value)
    try:
        await loop.run_in_executor(None, peer.start, data)
        await until(lambda: d.peers[PEER].session.state.value == "Established", "established")
        watch.start()
        await until(lambda: fib.input_pauses >= 1, "input paused", timeout=30)
        # The kernel stalls for longer than the hold time, with the gate closed.
        kernel.hold.clear()
        stalled_at, received = time.monotonic(), peer.received
        await asyncio.sleep(1.0)
        took, shown = await loop.run_in_executor(None, cli, sock, "show", "neighbors")
        assert took < 3.0, f"the control socket took {took:.1f} s while input was paused"
        assert "Established" in json.dumps(shown)
        await asyncio.sleep(STALL - (time.monotonic() - stalled_at))
        assert fib.input_blocked(), "the gate should still be closed: the kernel is stalled"
        assert peer.received - received >= 19 * 3, "our KEEPALIVEs stopped while input was paused"
        kernel.hold.set()
        await until(
            lambda: len(kernel.table(0, Afi.IPV4)) + len(kernel.table(254, Afi.IPV4)) == ROUTES,
            "every route in the kernel",
            timeout=60,
        )
        assert peer.sent_all.is_set()
        # Taken now: the shutdown's withdrawals are not input, and rightly not held back.
        watch.stop.set()
        peak = fib.backlog_peak
        flaps = d.peers[PEER].session.flaps  # before the shutdown closes the session
    finally:
        watch.close()
        peer.close()
        await d.shutdown()
    # Never more queued than high water plus the routes of the UPDATE that crossed it.
    assert peak <= HIGH_WATER + per_update, (peak, per_update)
    assert max(watch.samples) <= HIGH_WATER + per_update, max(watch.samples)
    assert max(watch.samples) > HIGH_WATER // 2  # the sampler saw the queue build up
    assert fib.input_pauses >= 2  # paused, resumed at low water, paused again
    assert set(watch.states) == {"Established"}, sorted(set(watch.states))
    assert flaps == 0
    assert max(watch.gaps) < 1.0, f"the loop stalled for {max(watch.gaps):.2f} s"
    assert LOW_WATER < HIGH_WATER
