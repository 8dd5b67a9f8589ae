"""FibSync against the in-memory backend: coalescing, no-op skipping, reconcile, flush, errors."""

from __future__ import annotations

import asyncio
import errno
import ipaddress

import pytest

from fib.memory import MemoryFib
from fib.model import FibError, NextHops
from fib.sync import FibSync
from rib.prefix import Afi, PrefixKey, parse_prefix

GW1 = ipaddress.ip_address("10.0.0.1")
GW2 = ipaddress.ip_address("10.0.0.2")
GW6 = ipaddress.ip_address("fd00::1")
A: NextHops = (GW1,)
B: NextHops = (GW2,)
AB: NextHops = (GW1, GW2)


def key(text: str) -> PrefixKey:
    return parse_prefix(text)[1]


P1, P2, P3, P4 = key("1.0.0.0/24"), key("2.0.0.0/24"), key("3.0.0.0/24"), key("4.0.0.0/24")
V6 = key("2001:db8::/32")


@pytest.fixture
async def setup():
    backend = MemoryFib()
    sync = FibSync(backend)
    yield backend, sync
    backend.hold.set()
    await sync.close()


def ops_of(backend: MemoryFib) -> list[tuple[int, Afi, PrefixKey, NextHops]]:
    return [(t, a, p, nh) for t, a, ops in backend.calls for p, nh in ops]


async def test_submit_installs_and_tracks(setup) -> None:
    backend, sync = setup
    sync.submit(254, Afi.IPV4, P1, A)
    sync.submit(500, Afi.IPV4, P2, AB)
    sync.submit(254, Afi.IPV6, V6, (GW6,))
    await sync.wait_idle()
    assert backend.tables == {
        (254, Afi.IPV4): {P1: A},
        (500, Afi.IPV4): {P2: AB},
        (254, Afi.IPV6): {V6: (GW6,)},
    }
    assert sync.installed == backend.tables
    assert sync.routes(500, Afi.IPV4) == {P2: AB}
    assert sync.routes(501, Afi.IPV4) == {}
    assert sync.installed_count() == 3
    assert sync.pending_count() == 0
    assert sync.errors == []


async def test_coalescing_writes_only_the_last_state(setup) -> None:
    backend, sync = setup
    backend.hold.clear()  # the writer blocks inside the first apply
    sync.submit(254, Afi.IPV4, P4, A)
    await asyncio.to_thread(backend.entered.wait, 5)
    for nexthops in (A, B, AB, B):
        sync.submit(254, Afi.IPV4, P1, nexthops)
    sync.submit(254, Afi.IPV4, P2, A)
    sync.submit(254, Afi.IPV4, P2, ())  # announced then withdrawn before any write: nothing to do
    assert sync.pending_count() == 2
    backend.hold.set()
    await sync.wait_idle()
    assert ops_of(backend) == [(254, Afi.IPV4, P4, A), (254, Afi.IPV4, P1, B)]
    assert backend.tables[(254, Afi.IPV4)] == {P1: B, P4: A}


async def test_no_ops_are_not_sent(setup) -> None:
    backend, sync = setup
    sync.submit(254, Afi.IPV4, P1, AB)
    await sync.wait_idle()
    backend.calls.clear()
    sync.submit(254, Afi.IPV4, P1, (GW2, GW1))  # the same ECMP set in another order
    sync.submit(254, Afi.IPV4, P2, ())  # delete of a route we never installed
    await sync.wait_idle()
    assert backend.calls == []
    sync.submit(254, Afi.IPV4, P1, ())
    await sync.wait_idle()
    assert ops_of(backend) == [(254, Afi.IPV4, P1, ())]
    assert backend.tables[(254, Afi.IPV4)] == {}
    assert sync.installed_count() == 0


async def test_reconcile_removes_stale_installs_missing_and_changed(setup) -> None:
    backend, sync = setup
    backend.table(254, Afi.IPV4).update({P1: A, P2: A, P3: AB})  # left by a previous run
    backend.table(500, Afi.IPV4).update({P1: B})
    backend.table(600, Afi.IPV4).update({P1: B})  # not managed: never looked at
    desired = {(254, Afi.IPV4): {P1: A, P3: B, P4: AB}, (254, Afi.IPV6): {V6: (GW6,)}}
    await sync.reconcile(desired, [(254, Afi.IPV4), (500, Afi.IPV4)])
    assert backend.tables[(254, Afi.IPV4)] == {P1: A, P3: B, P4: AB}
    assert backend.tables[(500, Afi.IPV4)] == {}
    assert backend.tables[(254, Afi.IPV6)] == {V6: (GW6,)}
    assert backend.tables[(600, Afi.IPV4)] == {P1: B}
    # Only the differences were written: P1 was already right.
    written = {(t, p) for t, _a, p, _nh in ops_of(backend)}
    assert written == {(254, P2), (254, P3), (254, P4), (500, P1), (254, V6)}
    assert sync.installed == {k: v for k, v in backend.tables.items() if k[0] != 600}


async def test_reconcile_copies_desired_and_leaves_pending_for_after(setup) -> None:
    backend, sync = setup
    desired = {(254, Afi.IPV4): {P1: A}}
    backend.hold.clear()
    task = asyncio.create_task(sync.reconcile(desired, [(254, Afi.IPV4)]))
    await asyncio.to_thread(backend.entered.wait, 5)
    desired[(254, Afi.IPV4)][P2] = A  # the caller's dict changes: reconcile must not see it
    sync.submit(254, Afi.IPV4, P1, B)  # newer than desired: wins
    backend.hold.set()
    await task
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: B}


async def test_flush_all_deletes_everything_installed_and_drops_pending(setup) -> None:
    backend, sync = setup
    for prefix in (P1, P2, P3):
        sync.submit(254, Afi.IPV4, prefix, A)
    sync.submit(500, Afi.IPV6, V6, (GW6,))
    await sync.wait_idle()
    backend.hold.clear()
    sync.submit(254, Afi.IPV4, P4, A)
    await asyncio.to_thread(backend.entered.wait, 5)
    sync.submit(254, Afi.IPV4, P4, B)  # still pending when flushing: dropped
    backend.hold.set()
    await sync.flush_all()
    await sync.wait_idle()
    assert all(not routes for routes in backend.tables.values())
    assert sync.installed_count() == 0
    assert sync.pending_count() == 0


async def test_errors_are_attributed_to_their_prefix(setup) -> None:
    backend, sync = setup
    backend.fail(P2, errno.ENETUNREACH, "Nexthop has invalid gateway")
    for prefix in (P1, P2, P3):
        sync.submit(254, Afi.IPV4, prefix, A)
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: A, P3: A}
    assert sync.installed[(254, Afi.IPV4)] == {P1: A, P3: A}
    reason = "Nexthop has invalid gateway"
    assert sync.errors == [FibError(254, Afi.IPV4, P2, "replace", errno.ENETUNREACH, reason)]
    assert sync.errors[0].prefix_str == "2.0.0.0/24"
    assert sync.errors_total == 1
    # Once the cause is gone, a retry installs it and clears the error.
    backend.failing.clear()
    assert sync.retry_failed() == 1
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: A, P2: A, P3: A}
    assert sync.errors == []


async def test_error_cleared_when_prefix_no_longer_wanted(setup) -> None:
    backend, sync = setup
    backend.fail(P2)
    sync.submit(254, Afi.IPV4, P2, A)
    await sync.wait_idle()
    assert len(sync.errors) == 1
    sync.submit(254, Afi.IPV4, P2, ())  # withdrawn: nothing installed, nothing wanted
    await sync.wait_idle()
    assert sync.errors == []
    assert sync.retry_failed() == 0


async def test_failed_delete_keeps_route_installed(setup) -> None:
    backend, sync = setup
    sync.submit(254, Afi.IPV4, P1, A)
    await sync.wait_idle()
    backend.fail(P1, errno.EPERM, "Operation not permitted")
    sync.submit(254, Afi.IPV4, P1, ())
    await sync.wait_idle()
    assert sync.installed[(254, Afi.IPV4)] == {P1: A}
    assert [(e.op, e.errno) for e in sync.errors] == [("delete", errno.EPERM)]


async def test_errors_are_bounded(setup) -> None:
    backend, _ = setup
    sync = FibSync(backend, max_errors=3)
    prefixes = [key(f"9.0.{i}.0/24") for i in range(10)]
    for prefix in prefixes:
        backend.fail(prefix)
        sync.submit(254, Afi.IPV4, prefix, A)
    await sync.wait_idle()
    assert [e.prefix for e in sync.errors] == prefixes[-3:]
    assert sync.errors_total == 10
    await sync.close()


async def test_backend_exception_fails_the_chunk_and_writer_survives(setup) -> None:
    backend, sync = setup
    backend.raise_on_apply = OSError(errno.EBADF, "socket closed")
    sync.submit(254, Afi.IPV4, P1, A)
    sync.submit(254, Afi.IPV4, P2, A)
    await sync.wait_idle()
    assert {(e.prefix, e.errno) for e in sync.errors} == {(P1, errno.EBADF), (P2, errno.EBADF)}
    assert sync.installed_count() == 0
    backend.raise_on_apply = None
    sync.submit(254, Afi.IPV4, P3, A)
    sync.retry_failed()
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: A, P2: A, P3: A}
    assert sync.errors == []


async def test_reconcile_dump_failure_reaches_the_caller(setup) -> None:
    backend, sync = setup

    def broken(table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        raise OSError(errno.EPERM, "no")

    backend.dump = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await sync.reconcile({}, [(254, Afi.IPV4)])
    sync.submit(254, Afi.IPV4, P1, A)  # the writer still works
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: A}


async def test_large_batches_are_chunked(setup) -> None:
    backend, _ = setup
    sync = FibSync(backend, chunk=100)
    prefixes = [key(f"10.{i // 256}.{i % 256}.0/24") for i in range(1000)]
    for prefix in prefixes:
        sync.submit(500, Afi.IPV4, prefix, AB)
    await sync.wait_idle()
    assert len(backend.calls) == 10
    assert sync.installed_count() == 1000
    await sync.close()


async def test_close_writes_pending_then_closes_backend() -> None:
    backend = MemoryFib()
    sync = FibSync(backend)
    for i in range(100):
        sync.submit(254, Afi.IPV4, key(f"10.0.{i}.0/24"), A)
    await sync.close()
    assert len(backend.tables[(254, Afi.IPV4)]) == 100
    assert backend.closed
    with pytest.raises(RuntimeError):
        await sync.flush_all()
    await sync.wait_idle()  # returns at once on a closed sync


async def test_submit_many_coalesces_with_single_submissions(setup) -> None:
    backend, sync = setup
    backend.hold.clear()  # the writer blocks inside the first apply
    sync.submit(254, Afi.IPV4, P4, A)
    await asyncio.to_thread(backend.entered.wait, 5)
    sync.submit(254, Afi.IPV4, P1, A)
    sync.submit_many(254, Afi.IPV4, {P1: B, P2: AB, P3: ()})  # one UPDATE's changes
    sync.submit_many(254, Afi.IPV4, {})
    sync.submit(254, Afi.IPV4, P2, A)  # newer than the batch
    assert sync.pending_count() == 3
    assert sync.status(254, Afi.IPV4, P1) == "pending"
    backend.hold.set()
    await sync.wait_idle()
    assert backend.tables[(254, Afi.IPV4)] == {P1: B, P2: A, P4: A}
    assert sync.installed == backend.tables
    # P3 was never installed: its delete was a no-op and never reached the backend.
    assert all(p != P3 for _t, _a, p, _nh in ops_of(backend))


def test_large_batches_are_split_into_strided_parts() -> None:
    """Each part samples the whole batch (every k-th prefix), so the backend's interleaving of
    neighbours holds across the batch, not only inside runs of ``chunk`` prefixes."""
    from fib.sync import _strided

    ops = {key(f"10.{i // 256}.{i % 256}.0/24"): A for i in range(1000)}
    order = list(ops)
    parts = list(_strided(ops, 300))
    assert [len(p) for p in parts] == [250, 250, 250, 250]
    assert [list(p) for p in parts] == [order[s::4] for s in range(4)]
    assert {p for part in parts for p in part} == set(ops)
    small = {P1: A, P2: ()}
    assert list(_strided(small, 300)) == [small]
