"""Cost of a full-table session going down: its paths leaving the RIB, a slice at a time.

Loads N prefixes (default 1M, bench/rib_import.py's shape, ~N/10 attribute sets) from one
peer, then ends its session (``Rib.channel_down``) and withdraws its paths with
``Rib.drain_step`` as the daemon does, one step per loop turn (rib/drain.py). The changes go
to a subscriber that does what the daemon's kernel submission does per batch (a dict of
prefix -> next hops, merged into a pending dict) and, with --export all, to a second peer's
Adj-RIB-Out (the withdrawals it will be sent).

Prints the time of ``channel_down`` itself (capture and clear), the longest and median step,
the number of steps and the total CPU (process time) of the whole withdrawal. --one-shot
withdraws everything inside ``channel_down`` (the behaviour before slicing) for comparison.

--graceful times a graceful end instead (RFC 4724 helper): ``retain`` keeping the routes stale,
in one call, then the sweep at End-of-RIB, which goes through the same slices.

Usage: python bench/session_down.py [--prefixes N] [--slice S] [--one-shot] [--export none|all]
                                    [--lean-min N] [--graceful]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rib_import import BATCH, LOCAL_AS, PEER_AS, make_attrs, make_prefixes

from policy.filters import ACCEPT_ALL, REJECT_ALL
from rib.channel import Channel, ChannelSettings
from rib.drain import SLICE
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Source, SourceKind
from rib.stale import retain, sweep

ip = ipaddress.ip_address


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=SLICE, help="prefixes per drain step")
    ap.add_argument("--one-shot", action="store_true", help="withdraw everything in channel_down")
    ap.add_argument("--export", choices=("none", "all"), default="none", help="a second peer's export")
    ap.add_argument("--lean-min", type=int, default=65_536, help="Rib.lean_min (routes to go lean)")
    ap.add_argument(
        "--graceful",
        action="store_true",
        help="the session ends gracefully: its routes kept stale (rib.stale.retain), then swept",
    )
    args = ap.parse_args()
    n = args.prefixes
    prefixes = make_prefixes(n, random.Random(1))
    sets = make_attrs(n // BATCH + 1, random.Random(2), "192.0.2.1")
    slice_size = n + 1 if args.one_shot else args.slice
    rib = Rib(LOCAL_AS, router_id=1, ecmp=8, lean_min=args.lean_min, drain_slice=slice_size)
    pending: dict[PrefixKey, tuple[()]] = {}
    changed = [0]

    def to_kernel(changes: list[Change]) -> None:  # as Daemon._to_kernel_many + FibSync.submit_many
        routes: dict[PrefixKey, tuple[()]] = {}
        for c in changes:
            routes[c.prefix] = ()
        pending.update(routes)
        changed[0] += len(changes)

    rib.batch_subscribers.append(to_kernel)
    peer = Channel(
        ChannelSettings(
            "192.0.2.1", "main", LOCAL_AS, PEER_AS, import_filter=ACCEPT_ALL, export_filter=REJECT_ALL
        ),
        local_addrs={Afi.IPV4: ip("198.51.100.1")},
    )
    rib.add_channel(peer)
    rib.channel_up(peer, Source(SourceKind.EBGP, ip("192.0.2.1"), PEER_AS, 1, "full"), [Afi.IPV4])
    if args.export == "all":
        other = Channel(
            ChannelSettings("192.0.2.9", "main", LOCAL_AS, 65009, export_filter=ACCEPT_ALL),
            local_addrs={Afi.IPV4: ip("198.51.100.1")},
        )
        rib.add_channel(other)
        rib.channel_up(other, Source(SourceKind.EBGP, ip("192.0.2.9"), 65009, 9, "other"), [Afi.IPV4])
    for i in range(0, n, BATCH):
        rib.receive(peer, ((Afi.IPV4, sets[i // BATCH], prefixes[i : i + BATCH]),), (), 1.0)
    if args.export == "all":
        other.take_pending()
    gc.collect()
    gc.freeze()  # as the daemon does once a table is loaded
    pending.clear()
    changed[0] = 0
    loaded = len(rib.table("main", Afi.IPV4))

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if args.graceful:
        # RFC 4724 helper: the routes stay, stale (one loop turn), until End-of-RIB or a timer
        # sweeps them (as a drain, below).
        kept = retain(rib, peer)
        print(f"  retain:              {(time.perf_counter() - t0) * 1000:8.1f} ms ({kept} stale)")
        t0 = time.perf_counter()
        sweep(rib, peer)
    else:
        rib.channel_down(peer)
    gc.freeze()  # as the daemon does: the captured prefixes are never walked by the collector
    down = time.perf_counter() - t0
    steps: list[float] = []
    while rib.draining:
        t = time.perf_counter()
        rib.drain_step(slice_size)
        steps.append(time.perf_counter() - t)
        pending.clear()  # the kernel writer takes the batch
        if args.export == "all":
            other.take_pending()  # the daemon's flush packs them into UPDATEs
    cpu = time.process_time() - cpu0
    left = len(rib.table("main", Afi.IPV4))
    print(
        f"session down, {loaded} prefixes ({'lean' if n >= args.lean_min else 'plain'} Adj-RIB-In), "
        f"export {args.export}, {'one shot' if args.one_shot else f'slice {slice_size}'}"
    )
    label = "sweep:" if args.graceful else "channel_down:"
    print(f"  {label:<21}{down * 1000:8.1f} ms")
    if steps:
        print(f"  steps:               {len(steps):8d}")
        print(f"  longest step:        {max(steps) * 1000:8.1f} ms")
        print(f"  median step:         {statistics.median(steps) * 1000:8.1f} ms")
    print(f"  total CPU:           {cpu:8.2f} s")
    print(f"  changes:             {changed[0]:8d}   Loc-RIB left: {left}")
    assert left == 0 and changed[0] == loaded, "not every path was withdrawn"


if __name__ == "__main__":
    main()
