"""Cost of a kernel route change under a full table: next hops re-evaluated in slices.

Builds N prefixes (default 1M, bench/rib_import.py's table) from one iBGP peer, every one via
10.66.0.9, with a resolver standing in for the kernel view, and a second (eBGP) peer the
changes are exported to. Then, on an asyncio loop driven as the daemon drives it
(``Reselector.step`` once per loop turn, ``call_soon`` between slices):

- ``all``: 10.66.0.9 becomes unreachable (every prefix is decided again and withdrawn), then
  reachable again (every prefix comes back);
- ``none``: a next hop no path carries changes (the daemon still gets such changes: another
  protocol's route moves a next hop that only a gone peer used).

For each: wall time from the change to done, the longest single event-loop turn (measured by
a ticker task that sleeps 0 and records the gap between its wake-ups) and the number of
slices. ``--one-shot`` also times the former way (``Rib.next_hops_changed`` in one turn).

Usage: python bench/reselect.py [--prefixes N] [--slice N] [--one-shot]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rib_import import BATCH, make_attrs, make_prefixes
from rib.channel import Channel, ChannelSettings
from rib.decision import Decision
from rib.engine import Rib
from rib.prefix import Afi, IPAddress
from rib.reselect import SLICE, Reselector
from rib.route import Change, Source, SourceKind

LOCAL_AS = 65010
NH = ipaddress.IPv4Address("10.66.0.9")
UNUSED = ipaddress.IPv4Address("10.99.0.99")


def build(n: int) -> tuple[Rib, dict[IPAddress, int | None], list[int]]:
    rng = random.Random(1)
    prefixes = make_prefixes(n, rng)
    attrs = make_attrs(max(1, n // BATCH), rng, str(NH))
    costs: dict[IPAddress, int | None] = {NH: 10, UNUSED: 10}
    rib = Rib(LOCAL_AS, 1, 8, False, Decision())
    rib.add_vrf("main")
    rib.set_resolver("main", costs.get)
    kernel = [0]  # changes handed to the "kernel writer"

    def to_kernel(changes: list[Change]) -> None:
        kernel[0] += len(changes)

    rib.batch_subscribers.append(to_kernel)
    src = Channel(ChannelSettings("10.0.0.2", "main", LOCAL_AS, LOCAL_AS))
    rib.add_channel(src)
    rib.channel_up(src, Source(SourceKind.IBGP, ipaddress.IPv4Address("10.0.0.2"), LOCAL_AS, 2), [Afi.IPV4])
    out = Channel(ChannelSettings("10.0.1.2", "main", LOCAL_AS, 65001))
    rib.add_channel(out)
    rib.channel_up(out, Source(SourceKind.EBGP, ipaddress.IPv4Address("10.0.1.2"), 65001, 3), [Afi.IPV4])
    for i in range(0, n, BATCH):
        rib.receive(src, [(Afi.IPV4, attrs[i // BATCH % len(attrs)], prefixes[i : i + BATCH])], [], 1.0)
    kernel[0] = 0
    return rib, costs, kernel


async def sliced(rib: Rib, reselect: Reselector, nh: IPAddress) -> tuple[float, float, int]:
    """(wall seconds to done, longest loop turn in seconds, slices) for one change of ``nh``."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    slices = [0]
    longest = [0.0]
    ticking = [True]

    async def ticker() -> None:
        last = time.perf_counter()
        while ticking[0]:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest[0] = max(longest[0], now - last)
            last = now

    def slice_() -> None:
        slices[0] += 1
        before = reselect.decided
        more = reselect.step()
        if reselect.decided // 100_000 != before // 100_000:  # as the daemon's _reselect_slice
            gc.collect(1)
            gc.freeze()
        if more:
            loop.call_soon(slice_)
        else:
            done.set_result(None)
        for ch in rib.take_dirty():  # the daemon packs these; here they are only drained
            ch.pending.clear()

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    reselect.changed("main", {nh})
    if reselect.busy:
        loop.call_soon(slice_)
    else:
        done.set_result(None)
    await done
    wall = time.perf_counter() - t0
    ticking[0] = False
    await tick
    return wall, longest[0], slices[0]


async def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    rib, costs, kernel = build(args.prefixes)
    gc.collect(1)  # as the daemon does once a table is loaded (_freeze_loaded)
    gc.freeze()
    print(f"built {args.prefixes} prefixes in {time.perf_counter() - t0:.1f} s")
    reselect = Reselector(rib, args.slice)
    table = rib.table("main", Afi.IPV4)
    for label, nh, cost in (
        ("all: next hop unreachable", NH, None),
        ("all: next hop back", NH, 10),
        ("none: unused next hop changes", UNUSED, 20),
    ):
        costs[nh] = cost
        kernel[0] = 0
        wall, longest, slices = await sliced(rib, reselect, nh)
        selected = sum(1 for _p, d in table.items() if d.selected)
        print(
            f"{label:32s} wall {wall:6.2f} s  longest turn {longest * 1000:6.1f} ms  slices {slices:4d}  "
            f"kernel changes {kernel[0]:8d}  selected {selected}"
        )
    if args.one_shot:
        for label, cost in (("one-shot: unreachable", None), ("one-shot: back", 10)):
            costs[NH] = cost
            t1 = time.perf_counter()
            rib.next_hops_changed("main", {NH})
            print(f"{label:32s} one turn {time.perf_counter() - t1:6.2f} s")
        costs[UNUSED] = 30
        t1 = time.perf_counter()
        rib.next_hops_changed("main", {UNUSED})
        print(f"{'one-shot: unused next hop':32s} one turn {time.perf_counter() - t1:6.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=SLICE, help="prefixes looked at per loop turn")
    ap.add_argument("--one-shot", action="store_true", help="also time Rib.next_hops_changed in one turn")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
