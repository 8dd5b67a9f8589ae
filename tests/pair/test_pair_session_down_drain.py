"""A full-table session going down, on a whole daemon over real TCP: its paths leave in slices.

A daemon built in-process (its FIB a slow in-memory kernel, 40k routes/s) takes 200k routes from
one plain-socket peer and a few from another (real loopback TCP, hold time 3 s). Then the big
one is reset from the control socket. Its 200k withdrawals go a slice per loop turn, paused
while the kernel writer is behind (rib/drain.py, Daemon._drain_slice): the routes queued behind
the kernel never exceed high water plus one slice (all at once they were all 200k),
`show neighbors` answers meanwhile within a fraction of a second, the other session stays
Established, and in the end every route of the reset peer has left the kernel and the Loc-RIB
while the other peer's are all still there.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from bgpd.config.toml import load_config
from bgpd.control import request
from bgpd.daemon import Daemon
from bgpd.wire import UpdateEncoder
from fib.sync import HIGH_WATER
from rib.drain import SLICE
from rib.prefix import Afi, PrefixKey
from tests.pair.test_pair_tcp import attrs, until
from tests.support.daemon import LoadWatch, SlowKernel, cli, free_port, write_config
from tests.support.raw_peer import RawPeer

BIG, SMALL = "127.0.0.2", "127.0.0.3"  # the peers' source addresses (all of 127/8 is loopback)
ROUTES = 200_000
OTHER = 100
HOLD = 3


def keys(first_octet: int, n: int) -> list[PrefixKey]:
    return [bytes([24]) + ((first_octet << 24) + (i << 8)).to_bytes(4, "big")[:3] for i in range(n)]


def peer(address: str, asn: int, port: int) -> RawPeer:
    """A raw speaker: OPEN, its table, a KEEPALIVE every half second; reads what we send."""
    return RawPeer(port, source=address, asn=asn, hold=HOLD, router_id=f"10.0.0.{asn % 256}")


def announce(asn: int, prefixes: list[PrefixKey]) -> bytes:
    return b"".join(UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs(asn), prefixes))


async def test_a_reset_full_table_peer_drains_in_slices_behind_the_kernel(tmp_path: Path) -> None:
    port = free_port()
    sock = str(tmp_path / "bgpd.sock")
    neighbors = "".join(
        f"""
[[neighbor]]
address = "{address}"
asn = {asn}
passive = true
hold_time = {HOLD}
import = "all"
export = "all"
"""
        for address, asn in ((BIG, 65001), (SMALL, 65002))
    )
    conf = write_config(tmp_path, neighbors, listen='["127.0.0.1"]', port=port)
    kernel = SlowKernel()
    d = Daemon(load_config(str(conf)), fib_backend=kernel)
    assert d.fib is not None
    fib = d.fib
    await d.start()
    loop = asyncio.get_running_loop()
    big, small = peer(BIG, 65001, port), peer(SMALL, 65002, port)
    big_keys, small_keys = keys(20, ROUTES), keys(30, OTHER)

    def in_kernel() -> dict[PrefixKey, object]:
        return {**kernel.table(254, Afi.IPV4), **kernel.table(0, Afi.IPV4)}

    # The other session's state on the loop; the queue behind the kernel from a thread.
    watch = LoadWatch(fib, lambda: d.peers[SMALL].session.state.value)
    answers: list[float] = []

    def ask() -> None:  # the control socket, over and over, timed
        while not watch.stop.is_set():
            t0 = time.monotonic()
            resp = request(sock, ["show", "neighbors"], {}, timeout=10)
            answers.append(time.monotonic() - t0)
            assert resp["ok"], resp
            time.sleep(0.05)

    try:
        await loop.run_in_executor(None, lambda: small.start(announce(65002, small_keys)))
        await loop.run_in_executor(None, lambda: big.start(announce(65001, big_keys)))
        await until(lambda: all(p.session.state.value == "Established" for p in d.peers.values()), "up")
        await until(lambda: len(in_kernel()) == ROUTES + OTHER, "every route in the kernel", timeout=60)
        await until(lambda: fib.backlog == 0, "the kernel writer idle")
        table = d.rib.table("main", Afi.IPV4)
        assert len(table) == ROUTES + OTHER
        pauses = fib.input_pauses
        fib.backlog_peak = 0
        threading.Thread(target=ask, daemon=True).start()
        watch.start()
        resp = await loop.run_in_executor(None, request, sock, ["neighbor", BIG, "reset"], {})
        assert resp["ok"], resp
        shown = await loop.run_in_executor(None, request, sock, ["show", "neighbors"], {})
        big_json = next(n for n in shown["data"]["neighbors"] if n["address"] == BIG)
        # The neighbour's own counters say 0 at once; its paths are being withdrawn.
        assert big_json["state"] != "Established"
        assert big_json["received"] == 0 and big_json["accepted"] == 0
        assert big_json["withdrawing"] > 0
        assert d.rib.draining and len(table) > OTHER  # still draining: not all at once
        # The operator's own CLI, mid-drain.
        t0 = time.monotonic()
        _took, out = await loop.run_in_executor(None, cli, sock, "show", "neighbors")
        took = time.monotonic() - t0
        assert "Established" in json.dumps(out), "the other session went down"
        assert d.rib.draining, "the drain ended before the CLI check: make it longer"
        await until(lambda: not d.rib.draining, "the drain done", timeout=60)
        await until(lambda: len(in_kernel()) == OTHER, "the reset routes out of the kernel", timeout=60)
        watch.stop.set()
        peak = fib.backlog_peak
        drain_pauses = fib.input_pauses - pauses
        flaps = d.peers[SMALL].session.flaps
        # The end state: the reset peer's routes gone from the Loc-RIB and the kernel, the
        # other peer's all there.
        assert set(in_kernel()) == set(small_keys)
        assert set(table.dests) == set(small_keys)
        final = (await loop.run_in_executor(None, request, sock, ["show", "neighbors"], {}))["data"]
        assert all(n["withdrawing"] == 0 for n in final["neighbors"])
    finally:
        watch.close()
        big.close()
        small.close()
        await d.shutdown()
    assert took < 3.0, f"bgpd-cli took {took:.2f} s during the drain"
    # Never more queued behind the kernel than high water plus one slice.
    assert peak <= HIGH_WATER + SLICE, (peak, HIGH_WATER + SLICE)
    assert max(watch.samples) <= HIGH_WATER + SLICE, max(watch.samples)
    assert max(watch.samples) > HIGH_WATER // 2  # the drain filled the queue up to the mark
    assert drain_pauses >= 1  # and waited for the kernel writer
    assert len(answers) >= 5 and max(answers) < 0.5, f"show neighbors took up to {max(answers):.2f} s"
    assert set(watch.states) == {"Established"}, sorted(set(watch.states))
    assert flaps == 0
    assert max(watch.gaps) < 0.5, f"the loop stalled for {max(watch.gaps):.2f} s"
