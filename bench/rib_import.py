"""Cost of importing a full IPv4 table into the RIB, beyond decoding.

Builds N prefixes (default 1M, shaped like the real table) in ~N/10 interned attribute sets,
as the decoder would hand them over, then times ``Rib.receive`` for one peer (Adj-RIB-In,
import checks and policy, Loc-RIB best path, one Change per prefix to a counting subscriber
standing in for the kernel writer) and optionally up to three more peers with the same prefixes
(ECMP: the same neighbour AS, another next hop, so every prefix gets a set of that many paths).

Prints CPU seconds (process time) of the import only, the RSS growth it caused and, with
--tracemalloc, Python-allocated bytes per route. The input (prefix keys, attribute sets) is
built before the measurement: the keys are shared with the RIB, as the decoder's are.

With --wire the table instead goes the daemon's whole way for one peer: encoded UPDATEs
(bench/feed.py's table) through the framer and decoder, the RIB, and the daemon's FIB
submission into ``FibSync`` with a backend that writes nothing: CPU is then decoding
included, and the memory is the daemon's per-route state (decoder cache, Adj-RIB-In,
Loc-RIB, FIB ``installed``). --top N lists where the traced memory lives, by source line.

Usage: python bench/rib_import.py [--prefixes N] [--peers 1-4] [--policy all|attrs|prefix]
                                  [--gc default|freeze|periodic|off] [--export none|all] [--tracemalloc]
                                  [--top N] [--wire [--decoder-cache N] [--fib-rate R]
                                                    [--malloc daemon|default]]

--wire also prints the garbage collector's CPU (timed through gc.callbacks) and, with
--tracemalloc --top N, where the memory was at the most-traced of the samples taken every 100k
routes (with --fib-rate the FIB's queue behind a kernel-speed writer is part of it).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.filters import ACCEPT_ALL, REJECT_ALL, Filter, Policy, compile_term
from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, make_key
from rib.route import Change, Source, SourceKind

LOCAL_AS, PEER_AS = 65010, 65001
PLEN_WEIGHTS = {24: 60, 23: 9, 22: 12, 21: 5, 20: 5, 19: 3, 18: 2, 17: 1, 16: 3}
BATCH = 10  # prefixes per UPDATE (one attribute set each), as in real full-table feeds


def make_prefixes(n: int, rng: random.Random) -> list[PrefixKey]:
    plens, weights = list(PLEN_WEIGHTS), list(PLEN_WEIGHTS.values())
    seen: set[PrefixKey] = set()
    out: list[PrefixKey] = []
    while len(out) < n:
        key = make_key(rng.choices(plens, weights)[0], rng.randrange(1 << 24, 224 << 24).to_bytes(4, "big"))
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def make_attrs(n: int, rng: random.Random, next_hop: str) -> list[PathAttrs]:
    nh = ipaddress.IPv4Address(next_hop)
    out = []
    for i in range(n):
        path = (PEER_AS, *(rng.randrange(1, 400_000) for _ in range(rng.randrange(0, 5))), 4_200_000_000 + i)
        comms = tuple(sorted(rng.randrange(1, 1 << 32) for _ in range(rng.choice((0, 0, 1, 2, 4)))))
        out.append(
            intern(
                PathAttrs(
                    origin=rng.choice((0, 0, 0, 2)),
                    as_path=((2, path),),
                    next_hop=nh,
                    med=rng.choice((None, 0, 10)),
                    communities=comms,
                )
            )
        )
    return out


def policy(kind: str) -> Filter:
    if kind == "all":
        return ACCEPT_ALL
    if kind == "attrs":
        # Depends on attributes only: evaluated once per attribute set, cached per channel.
        return Policy(
            "attrs",
            [
                compile_term({"as_path_length": "50.."}, "reject", {}),
                compile_term({"community": "65535:666"}, "reject", {}),
                compile_term({"source": "ebgp"}, "accept", {"local_pref": 120, "community_add": "65010:1"}),
            ],
        )
    # A bogon prefix list: evaluated for every route.
    return Policy(
        "prefix",
        [
            compile_term(
                {"prefix": ["10.0.0.0/8 le 32", "192.168.0.0/16 le 32", "0.0.0.0/0 ge 25"]}, "reject", {}
            ),
            compile_term({}, "accept", {"local_pref": 120}, LOCAL_AS),
        ],
    )


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--peers", type=int, choices=(1, 2, 3, 4), default=1)
    ap.add_argument("--policy", choices=("all", "attrs", "prefix"), default="attrs")
    ap.add_argument(
        "--gc",
        choices=("default", "freeze", "periodic", "off"),
        default="freeze",
        help="periodic: as the daemon does (gc.collect(1) + gc.freeze() every 100k routes)",
    )
    ap.add_argument("--tracemalloc", action="store_true")
    ap.add_argument("--top", type=int, default=0, help="with --tracemalloc: the N biggest source lines")
    ap.add_argument("--wire", action="store_true", help="decoder + RIB + FIB sync (null backend), 1 peer")
    ap.add_argument(
        "--export",
        choices=("none", "all"),
        default="none",
        help="export filter of the peers (all: each"
        " peer's routes are also exported to the other, Adj-RIB-Out included)",
    )
    ap.add_argument(
        "--decoder-cache",
        type=int,
        default=0,
        help="with --wire: the decoder's cache size (default: the daemon's, bgpd.connection.DECODER_CACHE)",
    )
    ap.add_argument(
        "--fib-rate",
        type=float,
        default=0.0,
        help="with --wire: the null backend takes as long as a kernel writing this many routes/s",
    )
    ap.add_argument(
        "--malloc",
        choices=("daemon", "default"),
        default="daemon",
        help="with --wire: glibc's settings as the daemon sets them (bgpd/allocator.py) or its defaults",
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.wire:
        wire(args)
        return

    rng = random.Random(args.seed)
    prefixes = make_prefixes(args.prefixes, rng)
    n_sets = len(prefixes) // BATCH
    feeds = []
    for peer in range(args.peers):
        sets = make_attrs(n_sets, random.Random(args.seed + 1), f"192.0.2.{peer + 1}")
        batches = [(Afi.IPV4, sets[i], prefixes[i * BATCH : (i + 1) * BATCH]) for i in range(n_sets)]
        feeds.append(batches)

    rib = Rib(LOCAL_AS, router_id=1, ecmp=8)
    changes = 0

    def to_kernel(change: Change) -> None:
        nonlocal changes
        changes += 1

    rib.subscribers.append(to_kernel)
    chans = []
    for peer in range(args.peers):
        addr = f"192.0.2.{peer + 1}"
        export = ACCEPT_ALL if args.export == "all" else REJECT_ALL
        settings = ChannelSettings(
            addr, "main", LOCAL_AS, PEER_AS, import_filter=policy(args.policy), export_filter=export
        )
        ch = Channel(settings, local_addrs={Afi.IPV4: ipaddress.ip_address(f"198.51.100.{peer + 1}")})
        rib.add_channel(ch)
        src = Source(SourceKind.EBGP, ipaddress.ip_address(addr), PEER_AS, peer + 1, addr)
        rib.channel_up(ch, src, [Afi.IPV4])
        chans.append(ch)

    gc_time = [0.0]
    gc_start = [0.0]

    def gc_cb(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_start[0]

    gc.collect()
    if args.gc in ("freeze", "periodic"):
        gc.freeze()  # the input and everything before: never scanned again
    elif args.gc == "off":
        gc.disable()
    gc.callbacks.append(gc_cb)
    if args.tracemalloc:
        tracemalloc.start()
    rss0 = rss_kib()
    results = []
    for ch, batches in zip(chans, feeds, strict=True):
        t0 = time.process_time()
        since_freeze = 0
        for batch in batches:
            rib.receive(ch, (batch,), (), 1.0)
            if args.gc == "periodic":
                since_freeze += len(batch[2])
                if since_freeze >= 100_000:
                    since_freeze = 0
                    gc.collect(1)
                    gc.freeze()
        if args.gc == "freeze":
            gc.freeze()  # a loaded table is long-lived: move it out of the collector's way
        results.append((time.process_time() - t0, rss_kib()))
    traced = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
    gc.callbacks.remove(gc_cb)

    table = rib.table("main", Afi.IPV4)
    ecmp = sum(1 for _k, d in table.items() if len(d.selected) > 1)
    print(
        f"{len(prefixes):,} prefixes in {n_sets:,} attribute sets, policy={args.policy}, gc={args.gc}, "
        f"peers={args.peers}, export={args.export}"
    )
    prev = rss0
    for i, (cpu, rss) in enumerate(results):
        n = len(prefixes)
        print(
            f"  peer {i + 1}: {cpu:6.2f} s CPU ({n / cpu:,.0f} prefixes/s), "
            f"RSS +{(rss - prev) / 1024:.0f} MiB ({(rss - prev) * 1024 / n:.0f} B/route)"
        )
        prev = rss
    print(f"  gc work during the import: {gc_time[0]:.2f} s CPU")
    print(
        f"  Loc-RIB: {len(table):,} prefixes, {table.path_count:,} paths, {ecmp:,} with ECMP, "
        f"{changes:,} changes"
    )
    print(f"  RSS total {rss_kib() / 1024:.0f} MiB (input built before: {rss0 / 1024:.0f} MiB)")
    if args.tracemalloc:
        print(f"  tracemalloc: {traced / (len(prefixes) * args.peers):.0f} B per route (Python allocations)")
        top(args.top)


def top(n: int, snap: tracemalloc.Snapshot | None = None) -> None:
    if not n:
        return
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for st in (snap or tracemalloc.take_snapshot()).statistics("lineno")[:n]:
        frame = st.traceback[0]
        where = f"{frame.filename.replace(root, '')}:{frame.lineno}"
        print(f"    {st.size / 2**20:7.1f} MiB {st.count:9,} blocks  {where}")


class NullBackend:
    """A FIB backend that writes nothing (so only our own state is measured); with ``rate``
    it takes as long as a kernel writing ``rate`` routes/s, so that submissions queue up
    behind the writer as in the daemon (its pending dicts are part of the peak)."""

    def __init__(self, rate: float = 0.0) -> None:
        self.rate = rate

    def dump(self, table: int, afi: Afi) -> dict[PrefixKey, tuple[object, ...]]:
        return {}

    def apply(self, table: int, afi: Afi, ops: dict[PrefixKey, object]) -> list[object]:
        if self.rate:
            time.sleep(len(ops) / self.rate)  # the writer thread: releases the GIL as a syscall does
        return []

    def close(self) -> None:
        pass


def wire(args: argparse.Namespace) -> None:
    """One peer's table through the daemon's own path, decoding and FIB submission included."""
    import asyncio
    from types import SimpleNamespace

    import feed

    from bgpd.allocator import tune_malloc
    from bgpd.connection import DECODER_CACHE
    from bgpd.daemon import Daemon
    from bgpd.wire import UpdateDecoder
    from bgpd.wire.framing import MessageFramer
    from fib.sync import FibSync

    peer_as = 4_200_000_001
    table = feed.make_table(Afi.IPV4, args.prefixes, peer_as, "192.0.2.1", args.seed)
    chunks, _withdraw = feed.encode_table(table)
    del table, _withdraw
    fib = FibSync(NullBackend(args.fib_rate))  # type: ignore[arg-type]
    rib = Rib(LOCAL_AS, router_id=1, ecmp=8)
    rib.add_vrf("main")
    # The daemon's own FIB submission, bound to the few attributes it reads.
    daemon = SimpleNamespace(
        fib=fib, recovery=None, vrf_tables={"main": 254}, _kernel_nexthops=Daemon._kernel_nexthops
    )
    rib.batch_subscribers.append(lambda changes: Daemon._to_kernel_many(daemon, changes))  # type: ignore[arg-type]
    settings = ChannelSettings("192.0.2.1", "main", LOCAL_AS, peer_as, import_filter=policy(args.policy))
    ch = Channel(settings, local_addrs={Afi.IPV4: ipaddress.ip_address("198.51.100.1")})
    rib.add_channel(ch)
    rib.channel_up(
        ch, Source(SourceKind.EBGP, ipaddress.ip_address("192.0.2.1"), peer_as, 2, "feed"), [Afi.IPV4]
    )
    if args.malloc == "daemon":
        tune_malloc()
    cache_size = args.decoder_cache or DECODER_CACHE
    framer = MessageFramer()
    decoder = UpdateDecoder(four_octet=True, ebgp=True, cache_size=cache_size)
    # The collector's own CPU time (its runs and the daemon's gc.collect(1) at each freeze).
    gc_time, gc_start, gc_runs = [0.0], [0.0], [0]

    def gc_cb(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_start[0]
            gc_runs[0] += 1

    gc.collect()
    gc.freeze()
    # --gc default: the plain collector over the loading table; off: none at all.
    daemon_gc = args.gc in ("freeze", "periodic")
    if args.gc == "off":
        gc.disable()
    gc.callbacks.append(gc_cb)
    if args.tracemalloc:
        tracemalloc.start()
    rss0 = rss_kib()
    t0 = time.process_time()
    since_freeze = 0
    peak_traced, peak_snap = 0, None
    for chunk in chunks:
        for _type, body in framer.feed(chunk):
            update = decoder.decode(body)
            rib.receive(ch, update.announce, update.withdraw, 1.0)
            since_freeze += sum(len(p) for _a, _t, p in update.announce)
            if since_freeze >= 100_000:  # as the daemon does (Daemon._freeze_loaded)
                since_freeze = 0
                if daemon_gc:
                    gc.collect(1)
                    gc.freeze()
                if args.tracemalloc and args.top:
                    # Where the memory is when the most is traced (the FIB's queue included).
                    now = tracemalloc.get_traced_memory()[0]
                    if now > peak_traced:
                        peak_traced, peak_snap = now, tracemalloc.take_snapshot()

    async def idle() -> None:
        await fib.wait_idle()

    asyncio.run(idle())
    cpu = time.process_time() - t0
    gc.callbacks.remove(gc_cb)
    del chunks
    gc.collect()
    n = args.prefixes
    print(f"{n:,} prefixes from the wire, policy={args.policy}: decoder, RIB, FIB sync (null backend)")
    print(f"  {cpu:.2f} s CPU, decoding included ({n / cpu:,.0f} prefixes/s), decoder cache {cache_size:,}")
    print(
        f"  gc ({'the daemon' if daemon_gc else args.gc}): {gc_time[0]:.3f} s CPU in {gc_runs[0]} collections"
        f" ({100 * gc_time[0] / cpu:.1f} % of it)"
    )
    print(f"  {fib.installed_count():,} routes in the FIB's installed state")
    print(f"  RSS +{(rss_kib() - rss0) / 1024:.0f} MiB ({(rss_kib() - rss0) * 1024 / n:.0f} B/route)")
    print(f"  RSS {rss_kib() / 1024:.0f} MiB, peak (VmHWM) {rss_kib('VmHWM') / 1024:.0f} MiB")
    if args.tracemalloc:
        traced = tracemalloc.get_traced_memory()[0]
        print(f"  tracemalloc: {traced / n:.0f} B per route (Python allocations)")
        top(args.top)
        if peak_snap is not None:
            print(f"  at the highest sample ({peak_traced / 2**20:.0f} MiB traced, taken every 100k routes):")
            top(args.top, peak_snap)


if __name__ == "__main__":
    main()
