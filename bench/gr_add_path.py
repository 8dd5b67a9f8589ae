"""Cost of a route reflector's graceful restart with ADD-PATH paths (rib/stale.py).

A reflector sends two paths (path ids 1 and 2, next hops c1 and c2) for each of N prefixes,
500 prefixes per UPDATE. Its session ends gracefully (``retain``); a new one resumes the stale
source and sends every path again, either under the same ids (identical: the fast path) or
numbered anew (ids swapped, as FRR may do after a restart: every stale path is displaced and
kept until the sweep); then End-of-RIB (``sweep``). Prints the time of each step.

Usage: python bench/gr_add_path.py [--prefixes N]
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, parse_prefix
from rib.route import Source, SourceKind
from rib.stale import resume, retain, stale_count, sweep

ASN = 65070
V4 = Afi.IPV4
CHUNK = 500


def reflected(nh: str) -> PathAttrs:
    return intern(
        PathAttrs(
            as_path=(),
            next_hop=ipaddress.ip_address(nh),
            local_pref=100,
            originator_id=nh,
            cluster_list=("10.70.0.2",),
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=200_000)
    args = ap.parse_args()
    n = args.prefixes
    keys = [parse_prefix(f"{10 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24")[1] for i in range(n)]
    a1, a2 = reflected("10.70.0.11"), reflected("10.70.0.12")

    for renumbered in (False, True):
        rib = Rib(ASN, router_id=0x0A460001)
        ch = Channel(ChannelSettings("10.70.0.2", "main", ASN, ASN))
        rib.add_channel(ch)

        def up(src: Source, ch: Channel = ch, rib: Rib = rib) -> None:
            ch.add_path_rx = frozenset({V4})
            rib.channel_up(ch, src, [V4])
            ch.take_pending()
            rib.take_dirty()

        def send(ids: tuple[int, int], ch: Channel = ch, rib: Rib = rib) -> float:
            t = time.perf_counter()
            for i in range(0, n, CHUNK):
                chunk = keys[i : i + CHUNK]
                rib.receive(ch, [(V4, a1, chunk)], [], 1.0, announce_ids=[[ids[0]] * len(chunk)])
                rib.receive(ch, [(V4, a2, chunk)], [], 1.0, announce_ids=[[ids[1]] * len(chunk)])
            return time.perf_counter() - t

        first = Source(SourceKind.IBGP, ipaddress.ip_address("10.70.0.2"), ASN, 0x0A460002)
        up(first)
        t_load = send((1, 2))
        t = time.perf_counter()
        kept = retain(rib, ch)
        t_retain = time.perf_counter() - t
        up(resume(ch, Source(first.kind, first.peer, first.asn, first.router_id)))
        t_resend = send((2, 1) if renumbered else (1, 2))
        left = stale_count(ch)
        t = time.perf_counter()
        swept = sweep(rib, ch)
        t_sweep = time.perf_counter() - t
        what = "renumbered" if renumbered else "identical"
        print(
            f"{2 * n} paths, re-sent {what}: load {t_load:.2f} s, retain {t_retain:.2f} s ({kept} stale), "
            f"re-send {t_resend:.2f} s ({left} left stale), sweep {t_sweep:.2f} s ({swept})"
        )


if __name__ == "__main__":
    main()
