"""Kernel FIB write throughput of fib.netlink.NetlinkFib, inside a throwaway network namespace.

    sudo .venv/bin/python bench/fib_write.py --routes 100000 1000000

Creates two namespaces joined by a veth pair (gateways 10.255.0.2/.3 and fd00::2/::3 on the
link), re-runs itself inside the first with ``ip netns exec``, and deletes both at the end
(also on failure or Ctrl-C). Prints routes/s for: install (one next hop), dump, delete,
install (2-way ECMP), replace ECMP -> one next hop, delete; and optionally the same
through fib.sync.FibSync with its kernel monitor (``--sync``) and for IPv6 (``--ipv6``).
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

from fib.model import FibOp, NextHops  # noqa: E402
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
    single: list[FibOp] = [(k, gws[:1]) for k in keys]
    ecmp: list[FibOp] = [(k, gws) for k in keys]
    delete: list[FibOp] = [(k, ()) for k in keys]
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


def bench_sync(afi: Afi, n: int, batch: int, monitor: bool = True) -> None:
    """The daemon's path: submit() from the event loop, the writer thread drains to the kernel."""
    from fib.sync import FibSync

    gws = GW4 if afi is Afi.IPV4 else GW6
    keys = prefixes(afi, n)

    async def run() -> None:
        backend = NetlinkFib(batch=batch)
        # With the kernel monitor, as the daemon runs it: our own writes must cost it nothing.
        sync = FibSync(backend, monitor=backend.open_monitor() if monitor else None)

        def submit_all(nexthops: NextHops) -> None:
            for k in keys:
                sync.submit(TABLE, afi, k, nexthops)

        for label, nexthops in (("FibSync install, 1 next hop", gws[:1]), ("FibSync delete", ())):
            t0 = time.perf_counter()
            submit_all(nexthops)
            t1 = time.perf_counter()
            await sync.wait_idle()
            dt = time.perf_counter() - t0
            assert not sync.errors, sync.errors[:3]
            print(
                f"  {label:<30} {n:>8} routes {dt:6.2f} s {n / dt:>9,.0f} routes/s"
                f"  (submit loop {t1 - t0:.2f} s)",
                flush=True,
            )
        assert sync.repairs_total == 0 and sync.resyncs_total == 0, (sync.repairs_total, sync.resyncs_total)
        await sync.close()

    asyncio.run(run())


def inner(args: argparse.Namespace) -> None:
    afis = [Afi.IPV4, Afi.IPV6] if args.ipv6 else [Afi.IPV4]
    for n in args.routes:
        for afi in afis:
            bench_backend(afi, n, args.batch * 1024)
            if args.sync:
                bench_sync(afi, n, args.batch * 1024)
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
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.inner:
        inner(args)
        return 0
    return outer(args, argv)


if __name__ == "__main__":
    sys.exit(main())
