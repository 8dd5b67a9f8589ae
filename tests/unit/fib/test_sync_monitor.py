"""FibSync's reaction to kernel events, with the in-memory backend and a scripted monitor."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import time
from collections.abc import AsyncIterator, Callable

import pytest

from fib.memory import MemoryFib
from fib.model import EV_ADDR, EV_LINK, EV_OVERRUN, EV_ROUTE_DEL, EV_ROUTE_NEW, KernelEvent, NextHops
from fib.sync import FIB_FAILED, FIB_INSTALLED, FIB_UNRESOLVED, FibSync
from rib.prefix import Afi, PrefixKey, parse_prefix

A: NextHops = (ipaddress.ip_address("10.0.0.1"),)
B: NextHops = (ipaddress.ip_address("10.0.0.2"),)
T = (500, Afi.IPV4)


def key(text: str) -> PrefixKey:
    return parse_prefix(text)[1]


P1, P2, P3 = key("1.0.0.0/24"), key("2.0.0.0/24"), key("3.0.0.0/24")


class ScriptedMonitor:
    """Events pushed by the test; a pipe makes the fd readable for FibSync's monitor thread."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self.queue: list[KernelEvent] = []
        self.closed = False

    def push(self, *events: KernelEvent) -> None:
        self.queue.extend(events)
        os.write(self._w, b"x")

    def fileno(self) -> int:
        return self._r

    def read(self) -> list[KernelEvent]:
        os.read(self._r, 4096)
        out, self.queue = self.queue, []
        return out

    def close(self) -> None:
        self.closed = True
        os.close(self._r)
        os.close(self._w)


async def until(what: str, fn: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[MemoryFib, ScriptedMonitor, FibSync]]:
    backend, monitor = MemoryFib(), ScriptedMonitor()
    sync = FibSync(backend, monitor=monitor, protocol=186)
    await sync.reconcile({T: {P1: A, P2: B}}, [])
    yield backend, monitor, sync
    await sync.close()
    assert monitor.closed


async def test_deleted_route_of_ours_is_put_back(setup) -> None:
    backend, monitor, sync = setup
    del backend.table(*T)[P1]
    monitor.push(KernelEvent(EV_ROUTE_DEL, 500, Afi.IPV4, P1, 186, A))
    await until("repair", lambda: backend.table(*T) == {P1: A, P2: B})
    assert sync.repairs_total == 1 and backend.dumps == 1  # the reconcile's dump only


async def test_others_deletions_and_unmanaged_tables_are_ignored(setup) -> None:
    backend, monitor, sync = setup
    monitor.push(
        KernelEvent(EV_ROUTE_DEL, 500, Afi.IPV4, P3, 4, A),  # someone else's route
        KernelEvent(EV_ROUTE_DEL, 600, Afi.IPV4, P1, 186, A),  # a table we do not manage
        KernelEvent(EV_ROUTE_NEW, 500, Afi.IPV4, P2, 186, B),  # agrees with what we installed
    )
    await asyncio.sleep(0.1)
    await sync.wait_idle()
    assert len(backend.calls) == 1 and sync.repairs_total == 0


async def test_changed_or_taken_over_route_is_replaced_and_strays_removed(setup) -> None:
    backend, monitor, sync = setup
    backend.table(*T)[P1] = B  # `ip route change ... proto 186`
    backend.table(*T)[P3] = A  # `ip route add ... proto 186`: ours by number, never submitted
    monitor.push(
        KernelEvent(EV_ROUTE_NEW, 500, Afi.IPV4, P1, 186, B),
        KernelEvent(EV_ROUTE_NEW, 500, Afi.IPV4, P3, 186, A),
        KernelEvent(EV_ROUTE_NEW, 500, Afi.IPV4, P2, 3, A),  # `ip route change` (proto boot)
    )
    await until("repair", lambda: sync.repairs_total == 3)
    assert backend.table(*T) == {P1: A, P2: B}
    assert sync.routes(*T) == {P1: A, P2: B}


@pytest.mark.parametrize(
    "events",
    [
        [KernelEvent(EV_OVERRUN)],
        [KernelEvent(EV_LINK, ifindex=7, up=False)],
    ],
    ids=["overrun", "link-down"],
)
async def test_overrun_and_link_down_resync(setup, events: list[KernelEvent]) -> None:
    backend, monitor, sync = setup
    backend.table(*T).clear()  # lost without a notification per route
    backend.table(*T)[P3] = A
    monitor.push(*events)
    await until("resync", lambda: backend.table(*T) == {P1: A, P2: B})
    assert sync.resyncs_total == 1 and backend.dumps == 2


async def test_link_up_resyncs_only_after_a_down(setup) -> None:
    _backend, monitor, sync = setup
    monitor.push(KernelEvent(EV_LINK, ifindex=7, up=True))  # a new interface: nothing of ours changed
    await asyncio.sleep(0.1)
    await sync.wait_idle()
    assert sync.resyncs_total == 0
    monitor.push(KernelEvent(EV_LINK, ifindex=7, up=False))
    await until("resync on down", lambda: sync.resyncs_total == 1)
    monitor.push(KernelEvent(EV_LINK, ifindex=7, up=True))
    await until("resync on up", lambda: sync.resyncs_total == 2)


async def test_unresolved_route_installed_once_an_address_or_route_appears(setup) -> None:
    backend, monitor, sync = setup
    backend.fail(P3, errno.ENETUNREACH, "Nexthop has invalid gateway")
    sync.submit(*T, P3, A)
    await sync.wait_idle()
    assert sync.status(*T, P3) == FIB_UNRESOLVED
    assert [e.prefix for e in sync.unresolved()] == [P3]
    assert sync.status(*T, P1) == FIB_INSTALLED
    assert sync.status(*T, key("9.0.0.0/8")) is None

    monitor.push(KernelEvent(EV_ROUTE_NEW, 254, Afi.IPV4, key("10.0.0.0/24"), 2, ()))  # still unreachable
    await until("retry", lambda: sum(P3 in dict(ops) for _t, _a, ops in backend.calls) == 2)
    await sync.wait_idle()
    assert sync.status(*T, P3) == FIB_UNRESOLVED

    del backend.failing[P3]
    monitor.push(KernelEvent(EV_ADDR, afi=Afi.IPV4, ifindex=3, up=True))
    await until("installed", lambda: sync.status(*T, P3) == FIB_INSTALLED)
    assert backend.table(*T)[P3] == A and sync.errors == []


async def test_other_failures_are_failed_not_unresolved(setup) -> None:
    backend, _monitor, sync = setup
    backend.fail(P3, errno.EPERM, "Operation not permitted")
    sync.submit(*T, P3, A)
    await sync.wait_idle()
    assert sync.status(*T, P3) == FIB_FAILED
    assert sync.unresolved() == []


async def test_recursive_next_hops_resolved_followed_and_dropped(setup) -> None:
    backend, monitor, sync = setup
    hop1, hop2 = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    loop1, loop2 = ipaddress.ip_address("10.9.0.1"), ipaddress.ip_address("10.9.0.2")
    backend.connected = {hop1, hop2}
    backend.ways = {loop1: (hop1,)}
    sync.submit(*T, P3, (loop1, loop2))  # ECMP over two loopbacks, one of them reachable
    await sync.wait_idle()
    assert backend.table(*T)[P3] == (hop1,)
    assert sync.routes(*T)[P3] == (loop1, loop2) and sync.resolved_via(*T, P3) == (hop1,)
    assert sync.status(*T, P3) == FIB_INSTALLED and sync.errors == []
    resolves = backend.resolves
    sync.submit(*T, P3, (loop1, loop2))  # unchanged: nothing written, nothing resolved
    await sync.wait_idle()
    assert backend.resolves == resolves

    backend.ways = {loop1: (hop1,), loop2: (hop2,)}  # a route to loop2 appears
    monitor.push(KernelEvent(EV_ROUTE_NEW, 254, Afi.IPV4, key("10.9.0.0/24"), 4, (hop2,)))
    await until("followed", lambda: set(backend.table(*T).get(P3, ())) == {hop1, hop2})

    backend.ways = {}  # both ways gone: out of the kernel, unresolved, the RIB's wish kept
    monitor.push(KernelEvent(EV_ROUTE_DEL, 254, Afi.IPV4, key("10.9.0.0/24"), 4, (hop2,)))
    await until("dropped", lambda: P3 not in backend.table(*T))
    assert sync.status(*T, P3) == FIB_UNRESOLVED and sync.resolved_via(*T, P3) is None

    backend.ways = {loop2: (hop2,)}
    monitor.push(KernelEvent(EV_ROUTE_NEW, 254, Afi.IPV4, key("10.9.0.0/24"), 4, (hop2,)))
    await until("back", lambda: backend.table(*T).get(P3) == (hop2,))
    assert sync.status(*T, P3) == FIB_INSTALLED
