"""Cost of sending a full table to one peer: the RIB export and the UPDATE packing.

Loads N prefixes (default 1M, ~N/10 attribute sets, bench/rib_import.py's table) from a feed
peer into the RIB (not measured), then brings up one more channel and times, separately:

- export: the table dump to it (``Rib.channel_up`` + ``continue_dump`` in the daemon's slices
  of 2,000): export filter, the protocol's export rules (``Channel._transform``), Adj-RIB-Out
  and pending;
- pack: ``take_batch`` + ``outbound.pack_pending`` in the daemon's batches into encoded UPDATEs
  (the bytes are counted and dropped, as if the socket took them).

Targets: ``ebgp`` (feed eBGP from AS 65001, the peer eBGP AS 65002: AS_PATH prepend, next hop
self unless third party) and ``rr-client`` (feed iBGP from one route-reflector client, the
peer another client: reflection with ORIGINATOR_ID and CLUSTER_LIST). Prints CPU seconds
(process time, not wall: the machine is shared) and the RSS growth.

Usage: python bench/export.py [--prefixes N] [--target ebgp|rr-client|both]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rib_import import make_attrs, make_prefixes, rss_kib

from bgpd.outbound import pack_pending, take_batch
from bgpd.wire import UpdateEncoder
from policy.filters import ACCEPT_ALL
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi
from rib.route import Source, SourceKind

LOCAL_AS = 65010
DUMP_SLICE = 2_000  # bgpd.daemon's slice
BATCH = 4_000  # changes per pack: ~1 MiB of UPDATEs, the daemon's output cap


def run(target: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    prefixes = make_prefixes(n, rng)
    ibgp = target == "rr-client"
    feed_as = LOCAL_AS if ibgp else 65001
    sets = make_attrs(n // 10, random.Random(seed + 1), "192.0.2.1")
    rib = Rib(LOCAL_AS, router_id=0x0A000001, ecmp=8)
    rib.subscribers.append(lambda _c: None)
    feed = Channel(
        ChannelSettings(
            "192.0.2.1",
            "main",
            LOCAL_AS,
            feed_as,
            export_filter=ACCEPT_ALL,
            rr_client=ibgp,
            enforce_first_as=False,
        ),
        local_addrs={Afi.IPV4: ipaddress.ip_address("192.0.2.254")},
    )
    rib.add_channel(feed)
    kind = SourceKind.IBGP if ibgp else SourceKind.EBGP
    src = Source(kind, ipaddress.ip_address("192.0.2.1"), feed_as, 1, "feed", rr_client=ibgp)
    rib.channel_up(feed, src, [Afi.IPV4])
    feed.take_pending()
    for i in range(len(sets)):
        rib.receive(feed, ((Afi.IPV4, sets[i], prefixes[i * 10 : (i + 1) * 10]),), (), 1.0)

    peer_as = LOCAL_AS if ibgp else 65002
    out = Channel(
        ChannelSettings("198.51.100.2", "main", LOCAL_AS, peer_as, export_filter=ACCEPT_ALL, rr_client=ibgp),
        local_addrs={Afi.IPV4: ipaddress.ip_address("198.51.100.1")},
    )
    rib.add_channel(out)
    peer_src = Source(kind, ipaddress.ip_address("198.51.100.2"), peer_as, 2, "peer", rr_client=ibgp)
    gc.collect()
    gc.freeze()
    rss0 = rss_kib()
    t0 = time.process_time()
    done = rib.channel_up(out, peer_src, [Afi.IPV4], DUMP_SLICE)
    while not done:
        done = rib.continue_dump(out, DUMP_SLICE)
    t_export = time.process_time() - t0
    rss1 = rss_kib()
    pending = sum(len(v) for v in out.pending.values())

    encoder = UpdateEncoder(four_octet=True)
    msgs = nbytes = 0
    t0 = time.process_time()
    while out.has_pending():
        batch, eor = take_batch(out, BATCH)
        packed = pack_pending(encoder, batch, eor)
        msgs += len(packed)
        nbytes += sum(map(len, packed))
    t_pack = time.process_time() - t0
    rss2 = rss_kib()
    print(f"{target}: {n:,} prefixes in {len(sets):,} attribute sets")
    print(
        f"  export: {t_export:6.2f} s CPU ({n / t_export:,.0f} routes/s), {pending:,} pending, "
        f"RSS +{(rss1 - rss0) / 1024:.0f} MiB"
    )
    print(
        f"  pack:   {t_pack:6.2f} s CPU, {msgs:,} UPDATEs, {nbytes / 2**20:.1f} MiB, "
        f"RSS +{(rss2 - rss1) / 1024:.0f} MiB"
    )
    print(f"  total:  {t_export + t_pack:6.2f} s CPU, RSS +{(rss2 - rss0) / 1024:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--target", choices=("ebgp", "rr-client", "both"), default="both")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for target in ("ebgp", "rr-client") if args.target == "both" else (args.target,):
        run(target, args.prefixes, args.seed)


if __name__ == "__main__":
    main()
