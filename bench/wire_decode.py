"""Throughput of the UPDATE codec on a synthetic full table.

Builds ~1M IPv4 prefixes in ~100k distinct attribute sets (~10 prefixes per UPDATE) with
our encoder, then times:

* encode: UpdateEncoder.announce for every set (fresh encoder, so every block is encoded);
* decode cold: a fresh UpdateDecoder over the framed stream (every attribute set is new:
  decoded, built and interned);
* decode cold, sets already interned: the same while equal sets are registered in
  rib.attrs (decoded and built, but intern() only looks them up);
* decode warm: the same stream again on the same decoder (every block is a cache hit, as when
  a peer re-sends a table or other peers' sessions share the pattern of repeated blocks);
* framing: MessageFramer over the whole stream in 64 KiB reads.

Wall-clock rates depend on what else runs on the machine; the closing lines give the CPU time
per prefix (time.process_time) of the same runs and the load average, for comparisons.

Usage: python bench/wire_decode.py [--prefixes N] [--per-update K] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bgpd.wire import MessageFramer, UpdateDecoder, UpdateEncoder
from rib.attrs import PathAttrs, intern, interned_count, sweep
from rib.prefix import Afi, PrefixKey, make_key

# Rough shape of the IPv4 table: mostly /24, then /22, /23, /21, /20, /19, /16.
PLEN_WEIGHTS = {24: 60, 23: 9, 22: 12, 21: 5, 20: 5, 19: 3, 18: 2, 17: 1, 16: 3}


def make_prefixes(n: int, rng: random.Random) -> list[PrefixKey]:
    plens = list(PLEN_WEIGHTS)
    weights = list(PLEN_WEIGHTS.values())
    seen: set[PrefixKey] = set()
    out: list[PrefixKey] = []
    while len(out) < n:
        plen = rng.choices(plens, weights)[0]
        addr = rng.randrange(1 << 24, 224 << 24).to_bytes(4, "big")
        key = make_key(plen, addr)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def make_attrs(n: int, rng: random.Random) -> list[PathAttrs]:
    next_hops = [ipaddress.IPv4Address(f"192.0.2.{i}") for i in range(1, 5)]
    upstreams = [3356, 174, 1299, 2914, 6939, 6453, 3257, 4200000123]
    out: list[PathAttrs] = []
    for i in range(n):
        path = (
            rng.choice(upstreams),
            *(rng.randrange(1, 400_000) for _ in range(rng.randrange(0, 6))),
            64512 + i,
        )
        comms = tuple(sorted(rng.randrange(1, 1 << 32) for _ in range(rng.choice((0, 0, 1, 2, 4, 6)))))
        out.append(
            intern(
                PathAttrs(
                    origin=rng.choice((0, 0, 0, 2)),
                    as_path=((2, path),),
                    next_hop=rng.choice(next_hops),
                    med=rng.choice((None, 0, 10, 100)),
                    communities=comms,
                    large_communities=((65000, 1, i),) if i % 10 == 0 else (),
                )
            )
        )
    return out


def rate(label: str, n: int, seconds: float) -> str:
    return f"{label:<38} {n / seconds:>12,.0f} prefixes/s  ({seconds:.3f} s)"


def cpu(label: str, n: int, seconds: float) -> str:
    per = seconds / n * 1e9
    return f"{label + ' CPU':<38} {per:>12,.0f} ns/prefix    ({n / seconds:,.0f} prefixes/CPU-s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--per-update", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    prefixes = make_prefixes(args.prefixes, rng)
    n_sets = max(1, args.prefixes // args.per_update)
    attr_sets = make_attrs(n_sets, rng)
    groups = [
        (attr_sets[i], prefixes[i * args.per_update : (i + 1) * args.per_update]) for i in range(n_sets)
    ]
    total = sum(len(g) for _a, g in groups)
    print(f"{total:,} prefixes, {n_sets:,} attribute sets, {args.per_update} per UPDATE")

    gc.collect()
    gc.disable()  # measure the codec, not the collector (the daemon tunes GC separately)
    enc = UpdateEncoder(four_octet=True)
    c0 = time.process_time()
    t0 = time.perf_counter()
    messages = [m for attrs, keys in groups for m in enc.announce(Afi.IPV4, attrs, keys)]
    t_enc = time.perf_counter() - t0
    c_enc = time.process_time() - c0
    stream = b"".join(messages)
    print(f"{len(messages):,} UPDATEs, {len(stream) / 1e6:.1f} MB")
    print(rate("encode", total, t_enc))

    framer = MessageFramer()
    t0 = time.perf_counter()
    framed = []
    for i in range(0, len(stream), 65536):
        framed.extend(framer.feed(stream[i : i + 65536]))
    t_frame = time.perf_counter() - t0
    bodies = [body for _t, body in framed]
    assert len(bodies) == len(messages)

    # First with the encoder's attribute sets still alive: rib.attrs.intern() then finds each
    # decoded set already registered, which isolates the codec from the cost of registering.
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    t0 = time.perf_counter()
    for b in bodies:
        dec.decode(b)
    t_pre = time.perf_counter() - t0

    # Drop our references and sweep the intern table (it only sweeps as it grows, so without
    # this every set would still be registered) so that decoding really builds and interns
    # every set again.
    del groups, attr_sets, enc, dec
    gc.collect()
    sweep()
    assert interned_count() < n_sets // 10, interned_count()

    dec = UpdateDecoder(four_octet=True, ebgp=True)
    decode = dec.decode
    c0 = time.process_time()
    t0 = time.perf_counter()
    updates = [decode(b) for b in bodies]
    t_cold = time.perf_counter() - t0
    c_cold = time.process_time() - c0
    got = sum(len(k) for u in updates for _f, _a, k in u.announce)
    assert got == total, (got, total)

    c0 = time.process_time()
    t0 = time.perf_counter()
    for b in bodies:
        decode(b)
    t_warm = time.perf_counter() - t0
    c_warm = time.process_time() - c0
    gc.enable()

    print(rate("framing", total, t_frame))
    print(rate("decode (cold)", total, t_cold))
    print(rate("decode (cold, sets already interned)", total, t_pre))
    print(rate("decode (warm)", total, t_warm))
    print(rate("frame+decode (cold)", total, t_frame + t_cold))
    # CPU time is less sensitive than wall time to other processes on a shared machine.
    print(cpu("encode", total, c_enc))
    print(cpu("decode (cold)", total, c_cold))
    print(cpu("decode (warm)", total, c_warm))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
