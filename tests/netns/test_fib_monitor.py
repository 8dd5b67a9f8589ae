"""FibSync with its kernel monitor against real kernel tables: hand-made changes are repaired.

After each change someone else makes (``ip route del``, ``ip route change``, a route with our
protocol number added by hand, a link going down and up, notifications lost to ENOBUFS) the
kernel table, as ``ip -N -j route show table 500`` prints it, must equal what FibSync believes
it installed, and that must be what was submitted (unless the kernel cannot hold it: then the
prefix is reported unresolved).
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from fib.model import EV_OVERRUN, KernelEvent, NextHops
from fib.netlink import NetlinkFib, RouteMonitor
from fib.sync import FIB_INSTALLED, FIB_UNRESOLVED, FibSync
from rib.prefix import Afi, PrefixKey
from tests.netns.test_fib_netlink import G4, G6, PROTO, in_netns, ip_cmd, kernel, key, ns, ours
from tests.support.netns import run

__all__ = ["ns"]  # the namespace fixture, shared with test_fib_netlink

pytestmark = pytest.mark.root

V4: dict[PrefixKey, NextHops] = {
    key(f"198.51.{i}.0/24"): (G4[:1] if i % 2 else G4[:2]) for i in range(100, 120)
}
V6: dict[PrefixKey, NextHops] = {
    key(f"2001:db8:{i}::/48"): (G6[:1] if i % 2 else G6[:2]) for i in range(1, 6)
}
ip = ipaddress.ip_address
STATIC = {"203.0.113.0/24": ("4", ("10.77.0.2",))}


async def until(what: str, fn: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def agrees(ns: str, sync: FibSync, afi: Afi, want: dict[PrefixKey, NextHops]) -> bool:
    """Kernel == what FibSync believes == ``want`` (other protocols' routes aside)."""
    shown = {p: r for p, r in kernel(ns, afi, 500).items() if r[0] == str(PROTO)}
    return shown == ours(sync.routes(500, afi), afi) == ours(want, afi)


@pytest.fixture
async def synced(ns: str) -> AsyncIterator[tuple[str, FibSync]]:
    with in_netns(ns):
        backend = NetlinkFib(protocol=PROTO)
        monitor = backend.open_monitor()
    sync = FibSync(backend, monitor=monitor, protocol=PROTO)
    try:
        ip_cmd(ns, "route add 203.0.113.0/24 via 10.77.0.2 table 500 proto static")
        await sync.reconcile({(500, Afi.IPV4): V4, (500, Afi.IPV6): V6}, [])
        assert agrees(ns, sync, Afi.IPV4, V4) and agrees(ns, sync, Afi.IPV6, V6)
        yield ns, sync
    finally:
        await sync.close()


async def test_hand_deleted_and_changed_routes_are_put_back(synced: tuple[str, FibSync]) -> None:
    ns, sync = synced
    ip_cmd(ns, "route del 198.51.100.0/24 table 500")
    ip_cmd(ns, "-6 route del 2001:db8:2::/48 table 500")
    await until(
        "deleted routes repaired", lambda: agrees(ns, sync, Afi.IPV4, V4) and agrees(ns, sync, Afi.IPV6, V6)
    )
    assert sync.repairs_total >= 2

    # `ip route change` takes the route over (protocol "boot", another gateway): ours comes back.
    ip_cmd(ns, "route change 198.51.101.0/24 via 10.77.0.4 table 500")
    ip_cmd(ns, "route change 198.51.102.0/24 via 10.77.0.4 table 500 proto 186")
    await until("changed routes repaired", lambda: agrees(ns, sync, Afi.IPV4, V4))

    # A route with our protocol number that we never installed is removed; others' stay.
    ip_cmd(ns, "route add 198.51.200.0/24 via 10.77.0.3 table 500 proto 186")
    await until("stray route of ours removed", lambda: agrees(ns, sync, Afi.IPV4, V4))
    assert {p: r for p, r in kernel(ns, Afi.IPV4, 500).items() if r[0] != str(PROTO)} == STATIC
    assert sync.errors == []
    assert sync.resyncs_total == 0  # all of that through single events, no table dump


async def test_link_down_and_up_gets_routes_back(synced: tuple[str, FibSync]) -> None:
    ns, sync = synced
    # IPv6 drops a link's addresses when it goes down unless told to keep them (routers do).
    run("sysctl", "-qw", "net.ipv6.conf.fva.keep_addr_on_down=1", ns=ns)
    ip_cmd(ns, "link set fva down")
    # The kernel drops every route via the link (IPv4 without a notification per route).
    await until(
        "FibSync to see the routes gone",
        lambda: agrees(ns, sync, Afi.IPV4, {}) and agrees(ns, sync, Afi.IPV6, {}),
    )
    assert {sync.status(500, Afi.IPV4, p) for p in V4} == {FIB_UNRESOLVED}
    assert {sync.status(500, Afi.IPV6, p) for p in V6} == {FIB_UNRESOLVED}
    assert kernel(ns, Afi.IPV4, 500) == {}  # the static route went too, and is not ours to restore

    ip_cmd(ns, "link set fva up")
    await until("routes back", lambda: agrees(ns, sync, Afi.IPV4, V4) and agrees(ns, sync, Afi.IPV6, V6))
    assert sync.errors == []
    assert {sync.status(500, Afi.IPV4, p) for p in V4} == {FIB_INSTALLED}
    assert sync.resyncs_total >= 2


async def test_lost_notifications_lead_to_a_resync(ns: str) -> None:
    with in_netns(ns):
        backend = NetlinkFib(protocol=PROTO)
        monitor = StalledMonitor(RouteMonitor(ignore_port=backend.port_id, rcvbuf=4096))  # a few fit
    sync = FibSync(backend, monitor=monitor, protocol=PROTO)
    try:
        await sync.reconcile({(500, Afi.IPV4): V4}, [])
        monitor.stall.clear()  # the reader is busy elsewhere while the burst comes
        # A burst of others' changes the monitor cannot keep up with, among them deletions of ours.
        lines = [
            f"route add 10.{i >> 8}.{i & 255}.0/24 via 10.77.0.2 table 501 proto static" for i in range(3000)
        ]
        lines += [
            f"route del {p} table 500" for p in ("198.51.100.0/24", "198.51.110.0/24", "198.51.119.0/24")
        ]
        lines += [f"route del 10.{i >> 8}.{i & 255}.0/24 table 501" for i in range(3000)]
        _batch(ns, lines)
        monitor.stall.set()
        await until(
            "resync after ENOBUFS", lambda: sync.resyncs_total >= 1 and agrees(ns, sync, Afi.IPV4, V4)
        )
        assert sync.errors == []
        assert monitor.overruns >= 1  # the resync came from a real ENOBUFS
    finally:
        await sync.close()


class StalledMonitor:
    """A RouteMonitor whose reader can be held up, so that the kernel must drop notifications."""

    def __init__(self, inner: RouteMonitor) -> None:
        self.inner = inner
        self.stall = threading.Event()
        self.stall.set()

    def fileno(self) -> int:
        return self.inner.fileno()

    def read(self) -> list[KernelEvent]:
        self.stall.wait()
        events = self.inner.read()
        self.overruns = getattr(self, "overruns", 0) + sum(e.kind == EV_OVERRUN for e in events)
        return events

    def close(self) -> None:
        self.inner.close()


def _batch(ns: str, lines: list[str]) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)


def test_monitor_does_not_see_our_own_writes(ns: str) -> None:
    with in_netns(ns):
        backend = NetlinkFib(protocol=PROTO)
        blind = RouteMonitor(ignore_port=backend.port_id)
        seeing = RouteMonitor()
    try:
        ops = [(key(f"100.64.{i}.0/24"), G4[:2]) for i in range(200)]
        assert backend.apply(500, Afi.IPV4, ops) == []
        assert backend.apply(500, Afi.IPV4, [(p, ()) for p, _ in ops]) == []
        ip_cmd(ns, "route add 100.65.0.0/24 via 10.77.0.3 table 500 proto 186")
        events = blind.read()
        assert [(e.kind, e.table, e.protocol, e.nexthops) for e in events] == [
            ("route_new", 500, 186, G4[1:2])
        ]
        seen = seeing.read()
        assert sum(e.kind == "route_new" for e in seen) == 201
        assert sum(e.kind == "route_del" for e in seen) == 200
    finally:
        for closeable in (blind, seeing, backend):
            closeable.close()


async def test_unreachable_next_hop_is_unresolved_until_an_address_makes_it_reachable(
    synced: tuple[str, FibSync],
) -> None:
    ns, sync = synced
    far: dict[PrefixKey, NextHops] = {
        key("192.0.2.0/24"): (ip("10.78.0.2"),),
        key("192.0.3.0/24"): (ip("10.78.0.3"), ip("10.78.0.4")),
    }
    for p, nh in far.items():
        sync.submit(500, Afi.IPV4, p, nh)
    await sync.wait_idle()
    assert {sync.status(500, Afi.IPV4, p) for p in far} == {FIB_UNRESOLVED}
    assert {e.prefix for e in sync.unresolved()} == set(far)
    assert agrees(ns, sync, Afi.IPV4, V4)  # kept out of the kernel

    ip_cmd(ns, "addr add 10.78.0.1/24 dev fva")
    await until("installed once reachable", lambda: agrees(ns, sync, Afi.IPV4, {**V4, **far}))
    assert sync.unresolved() == [] and {sync.status(500, Afi.IPV4, p) for p in far} == {FIB_INSTALLED}

    # The address goes again. The link keeps another address, so the kernel keeps the routes via
    # the gone subnet (it flushes them only with the link's last address): a resync agrees.
    resyncs = sync.resyncs_total
    ip_cmd(ns, "addr del 10.78.0.1/24 dev fva")
    await until("resync", lambda: sync.resyncs_total > resyncs and agrees(ns, sync, Afi.IPV4, {**V4, **far}))


async def test_recursive_next_hop_is_resolved_through_the_kernel_routes(synced: tuple[str, FibSync]) -> None:
    ns, sync = synced

    def via(prefix: str) -> tuple[str, ...] | None:
        route = kernel(ns, Afi.IPV4, 500).get(prefix)
        return route[1] if route is not None and route[0] == str(PROTO) else None

    # iBGP: the next hop is a peer's loopback, reached through a route in the main table.
    ip_cmd(ns, "route add 10.200.0.0/16 via 10.77.0.2")
    ip_cmd(ns, "route add default via 10.77.0.4")  # never used to resolve a next hop
    p, q = key("192.0.2.0/24"), key("192.0.3.0/24")
    sync.submit(500, Afi.IPV4, p, (ip("10.200.0.5"),))
    sync.submit(500, Afi.IPV4, q, (ip("10.201.0.5"),))  # nothing covers it yet
    await sync.wait_idle()
    assert via("192.0.2.0/24") == ("10.77.0.2",)
    assert sync.status(500, Afi.IPV4, p) == FIB_INSTALLED
    assert sync.resolved_via(500, Afi.IPV4, p) == (ip("10.77.0.2"),)
    assert sync.routes(500, Afi.IPV4)[p] == (ip("10.200.0.5"),)  # the RIB's next hop is what we track
    assert sync.status(500, Afi.IPV4, q) == FIB_UNRESOLVED and via("192.0.3.0/24") is None

    # The way to the loopback changes (now ECMP): our route follows.
    ip_cmd(ns, "route replace 10.200.0.0/16 nexthop via 10.77.0.3 nexthop via 10.77.0.4")
    await until("route follows its next hop", lambda: via("192.0.2.0/24") == ("10.77.0.3", "10.77.0.4"))
    # A route to the other loopback appears: the unresolved route goes in.
    ip_cmd(ns, "route add 10.201.0.0/16 via 10.77.0.2")
    await until("installed once resolvable", lambda: via("192.0.3.0/24") == ("10.77.0.2",))
    assert sync.status(500, Afi.IPV4, q) == FIB_INSTALLED and sync.unresolved() == []
    # Deleted by hand: put back, resolved again.
    ip_cmd(ns, "route del 192.0.2.0/24 table 500")
    await until("repaired", lambda: via("192.0.2.0/24") == ("10.77.0.3", "10.77.0.4"))
    # A resync compares the kernel with the resolved form: nothing to repair.
    repairs = sync.repairs_total
    await sync.resync()
    assert sync.repairs_total == repairs and via("192.0.3.0/24") == ("10.77.0.2",)
    # The way goes: the route leaves the kernel and is shown unresolved.
    ip_cmd(ns, "route del 10.200.0.0/16")
    await until("withdrawn when unreachable", lambda: via("192.0.2.0/24") is None)
    assert sync.status(500, Afi.IPV4, p) == FIB_UNRESOLVED
    shown = {pfx: r for pfx, r in kernel(ns, Afi.IPV4, 500).items() if r[0] == str(PROTO)}
    assert shown == {**ours(V4, Afi.IPV4), "192.0.3.0/24": (str(PROTO), ("10.77.0.2",))}
