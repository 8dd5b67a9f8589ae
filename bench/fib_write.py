"""Kernel FIB write throughput of fib.netlink.NetlinkFib, inside a throwaway network namespace.

    sudo .venv/bin/python bench/fib_write.py --routes 100000 1000000

Creates two namespaces joined by a veth pair (gateways 10.255.0.2/.3 and fd00::2/::3 on the
link), re-runs itself inside the first with ``ip netns exec``, and deletes both at the end
(also on failure or Ctrl-C). Prints routes/s for: install (one next hop), dump, delete,
install (2-way ECMP), replace ECMP -> one next hop, delete; and optionally the same
through fib.sync.FibSync with its kernel monitor (``--sync``, ``--sync-only``) and for IPv6
(``--ipv6``). ``--gate HIGH:LOW:CHUNK ...`` (with ``--sync``) also submits one UPDATE's routes at a
time (``--per-update``, default 1000) holding back while the writer's backlog is above the marks,
as the daemon's input does, with ``--decode-us`` of CPU per route on the loop for the decoding
and the RIB (the GIL held, as they hold it); it prints the peak backlog and the pauses.
``--ab old_sync.py`` runs another copy of fib/sync.py interleaved with the current
one, so that a comparison is not skewed by whatever else loads the machine meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fib.model import NextHops  # noqa: E402
from fib.netlink import NetlinkFib  # noqa: E402
from rib.prefix import Afi, PrefixKey, make_key  # noqa: E402

TABLE = 500
GW4 = (ipaddress.IPv4Address("10.255.0.2"), ipaddress.IPv4Address("10.255.0.3"))
GW6 = (ipaddress.IPv6Address("fd00::2"), ipaddress.IPv6Address("fd00::3"))


def prefixes(afi: Afi, n: int) -> list[PrefixKey]:
    if afi is Afi.IPV4:  # /24s from 11.0.0.0 up: never covering the gateways' 10.255.0.0/24
        return [make_key(24, (0x0B000000 + (i << 8)).to_bytes(4, "big")) for i in range(n)]
    return [make_key(48, (0x20010DB8 << 96 | i << 80).to_bytes(16, "big")) for i in range(n)]


def timed(label: str, n: int, fn: Callable[[], object]) -> float:
    """Run ``fn``; print wall-clock routes/s and this process's CPU time (user = Python, sys = kernel)."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = fn()
    dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    if isinstance(result, list) and result:
        raise SystemExit(f"{label}: {len(result)} errors, first {result[0]}")
    cpu = f"cpu user {r1.ru_utime - r0.ru_utime:5.2f} s, sys {r1.ru_stime - r0.ru_stime:5.2f} s"
    print(f"  {label:<30} {n:>8} routes {dt:6.2f} s {n / dt:>9,.0f} routes/s   {cpu}", flush=True)
    return dt


def kernel_count(afi: Afi) -> int:
    out = subprocess.run(
        ["ip", "-6" if afi is Afi.IPV6 else "-4", "route", "show", "table", str(TABLE)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line and not line[0].isspace())


def bench_backend(afi: Afi, n: int, batch: int) -> None:
    gws = GW4 if afi is Afi.IPV4 else GW6
    keys = prefixes(afi, n)
    # prefix -> next hops: the form FibSync hands over (a list of pairs is accepted too).
    single: dict[PrefixKey, NextHops] = dict.fromkeys(keys, gws[:1])
    ecmp: dict[PrefixKey, NextHops] = dict.fromkeys(keys, gws)
    delete: dict[PrefixKey, NextHops] = dict.fromkeys(keys, ())
    fib = NetlinkFib(batch=batch)
    print(f"{afi.name_lower} table {TABLE}, {n} routes, batch {batch // 1024} KiB")
    timed("install, 1 next hop", n, lambda: fib.apply(TABLE, afi, single))
    dumped: dict[PrefixKey, NextHops] = {}
    timed("dump", n, lambda: dumped.update(fib.dump(TABLE, afi)))
    assert len(dumped) == n and kernel_count(afi) == n, (len(dumped), n)
    timed("delete", n, lambda: fib.apply(TABLE, afi, delete))
    timed("install, 2-way ECMP", n, lambda: fib.apply(TABLE, afi, ecmp))
    assert kernel_count(afi) == n
    timed("replace ECMP -> 1 next hop", n, lambda: fib.apply(TABLE, afi, single))
    timed("delete", n, lambda: fib.apply(TABLE, afi, delete))
    assert kernel_count(afi) == 0
    fib.close()


def load_sync_class(path: str | None) -> type:
    """FibSync, or the class of that name in another copy of fib/sync.py (an A/B run)."""
    if path is None:
        from fib.sync import FibSync

        return FibSync
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"fibsync_ab_{uuid.uuid4().hex[:6]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls: type = module.FibSync
    return cls


def bench_sync(
    afi: Afi,
    n: int,
    batch: int,
    monitor: bool = True,
    impl: str | None = None,
    per_update: int = 0,
    gate: tuple[int, int, int] | None = None,
    decode_us: float = 0.0,
) -> None:
    """The daemon's path: submit() from the event loop, the writer thread drains to the kernel.

    Wall clock depends on what else runs on the machine; the CPU seconds (all threads: user is
    Python, sys is mostly the kernel's route work) per route do much less.
    """
    sync_class = load_sync_class(impl)
    gws = GW4 if afi is Afi.IPV4 else GW6
    keys = prefixes(afi, n)
    name = "FibSync" if impl is None else Path(impl).stem
    if per_update:
        if not hasattr(sync_class, "submit_many"):
            return
        name += f" submit_many({per_update})"
    if gate is not None:
        per_update = per_update or 1000
        name = f"gated {gate[0] // 1024}k/{gate[1] // 1024}k/{gate[2] // 1024}k"

    async def run() -> None:
        backend = NetlinkFib(batch=batch)
        # With the kernel monitor, as the daemon runs it: our own writes must cost it nothing.
        marks = {} if gate is None else {"high_water": gate[0], "low_water": gate[1], "write_chunk": gate[2]}
        sync = sync_class(backend, monitor=backend.open_monitor() if monitor else None, **marks)
        submit = sync.submit
        spin = decode_us * per_update / 1e6

        phases = (
            ("install, 1 next hop", gws[:1]),
            ("delete", ()),
            ("install, 2-way ECMP", gws),
            ("delete", ()),
        )
        for label, nexthops in phases:
            r0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
            peak, pauses0 = 0, getattr(sync, "input_pauses", 0)
            if gate is not None:  # as the daemon's feeder: hold back while the backlog is high
                for start in range(0, n, per_update):
                    while sync.input_blocked():
                        fut = sync.when_input_open()
                        if fut is not None:
                            await asyncio.wait((fut,), timeout=0.25)
                    end = time.perf_counter() + spin
                    while time.perf_counter() < end:  # the decoder's and the RIB's CPU, GIL held
                        pass
                    sync.submit_many(TABLE, afi, dict.fromkeys(keys[start : start + per_update], nexthops))
                    peak = max(peak, sync.backlog)
            elif per_update:  # as the daemon does: one submit_many per UPDATE's changes
                for start in range(0, n, per_update):
                    sync.submit_many(TABLE, afi, dict.fromkeys(keys[start : start + per_update], nexthops))
            else:  # one submit per RIB change, on the loop thread
                for k in keys:
                    submit(TABLE, afi, k, nexthops)
            t1 = time.perf_counter()
            await sync.wait_idle()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            assert not sync.errors, sync.errors[:3]
            want = n if nexthops else 0
            assert kernel_count(afi) == want, (label, kernel_count(afi), want)
            gated = f"  peak backlog {peak}, {sync.input_pauses - pauses0} pauses" if gate is not None else ""
            print(
                f"  {name + ' ' + label:<34} {n:>8} routes {dt:6.2f} s {n / dt:>9,.0f} routes/s"
                f"  cpu {cpu / n * 1e6:5.2f} us/route (user {r1.ru_utime - r0.ru_utime:5.2f} s,"
                f" sys {r1.ru_stime - r0.ru_stime:5.2f} s)  submit loop {t1 - t0:.2f} s" + gated,
                flush=True,
            )
        assert sync.repairs_total == 0 and sync.resyncs_total == 0, (sync.repairs_total, sync.resyncs_total)
        await sync.close()

    asyncio.run(run())


def inner(args: argparse.Namespace) -> None:
    afis = [Afi.IPV4, Afi.IPV6] if args.ipv6 else [Afi.IPV4]
    for n in args.routes:
        for afi in afis:
            if not args.sync_only:
                bench_backend(afi, n, args.batch * 1024)
            if args.sync or args.sync_only:
                print(f"{afi.name_lower} table {TABLE}, {n} routes through FibSync, load {os.getloadavg()}")
                for _round in range(args.rounds):
                    for impl in (None, *args.ab):  # interleaved: a load change hits both alike
                        bench_sync(afi, n, args.batch * 1024, impl=impl)
                    if args.per_update:
                        bench_sync(afi, n, args.batch * 1024, per_update=args.per_update)
                    for spec in args.gate:
                        high, low, chunk = (int(x) for x in spec.split(":"))
                        bench_sync(
                            afi,
                            n,
                            args.batch * 1024,
                            per_update=args.per_update,
                            gate=(high, low, chunk),
                            decode_us=args.decode_us,
                        )
                if args.no_monitor_too:
                    print("  (again without the kernel monitor)")
                    bench_sync(afi, n, args.batch * 1024, monitor=False)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def outer(args: argparse.Namespace, argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("needs root (creates network namespaces)", file=sys.stderr)
        return 2
    tag = uuid.uuid4().hex[:6]
    ns, peer = f"fibbench-{tag}", f"fibbench-{tag}-gw"
    created: list[str] = []
    try:
        for name in (ns, peer):
            sh("ip", "netns", "add", name)
            created.append(name)
        sh("ip", "link", "add", "fb0", "netns", ns, "type", "veth", "peer", "name", "fb1", "netns", peer)
        sh("ip", "-n", ns, "addr", "add", "10.255.0.1/24", "dev", "fb0")
        sh("ip", "-n", ns, "addr", "add", "fd00::1/64", "dev", "fb0", "nodad")
        for name, dev in ((ns, "fb0"), (peer, "fb1"), (ns, "lo")):
            sh("ip", "-n", name, "link", "set", dev, "up")
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()), "--inner", *argv]
        return subprocess.run(cmd).returncode
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=256, help="KiB per netlink send (default 256)")
    parser.add_argument("--ipv6", action="store_true", help="also IPv6 /48s")
    parser.add_argument("--sync", action="store_true", help="also through FibSync (submit + writer thread)")
    parser.add_argument(
        "--no-monitor-too", action="store_true", help="with --sync: also FibSync without its monitor"
    )
    parser.add_argument("--sync-only", action="store_true", help="only the FibSync figures")
    parser.add_argument(
        "--ab", nargs="*", default=[], metavar="SYNC_PY", help="with --sync: also another copy of fib/sync.py"
    )
    parser.add_argument(
        "--per-update", type=int, default=0, metavar="N", help="with --sync: also submit_many of N prefixes"
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --sync: repeat the FibSync runs")
    parser.add_argument(
        "--gate",
        nargs="*",
        default=[],
        metavar="HIGH:LOW:CHUNK",
        help="with --sync: also gated by the backlog (water marks and write chunk, in routes)",
    )
    parser.add_argument(
        "--decode-us", type=float, default=0.0, help="with --gate: CPU microseconds per route on the loop"
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.inner:
        inner(args)
        return 0
    return outer(args, argv)


if __name__ == "__main__":
    sys.exit(main())
