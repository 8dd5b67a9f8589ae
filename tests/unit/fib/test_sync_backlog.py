"""FibSync's backlog (routes pending plus the writer's batch in flight) and the input gate it
drives: closed above high water, open again at low water, never closed when nothing drains it."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Mapping

import pytest

from fib.memory import MemoryFib
from fib.model import FibError, FibOps, NextHops
from fib.sync import FibSync
from rib.prefix import Afi, PrefixKey

GW: NextHops = (ipaddress.ip_address("192.0.2.1"),)
T = 100


def key(i: int) -> PrefixKey:
    return bytes([32]) + ((10 << 24) + i).to_bytes(4, "big")


def routes(lo: int, hi: int, nh: NextHops = GW) -> dict[PrefixKey, NextHops]:
    return {key(i): nh for i in range(lo, hi)}


class SlowFib(MemoryFib):
    """A kernel that writes ``rate`` routes a second; records the backlog at each call."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.sync: FibSync | None = None
        self.seen: list[tuple[int, int]] = []  # (ops in the call, backlog when it began)

    def apply(self, table: int, afi: Afi, ops: FibOps) -> list[FibError]:
        n = len(ops) if isinstance(ops, Mapping) else len(list(ops))
        if self.sync is not None:
            self.seen.append((n, self.sync.backlog))
        time.sleep(n / self.rate)
        return super().apply(table, afi, ops)


def make(rate: float = 1e9, **kw: int) -> tuple[FibSync, SlowFib]:
    backend = SlowFib(rate)
    sync = FibSync(backend, linger=0, **kw)  # type: ignore[arg-type]
    backend.sync = sync
    return sync, backend


async def test_backlog_counts_pending_and_in_flight_and_falls_to_zero() -> None:
    sync, fib = make(write_chunk=1000)
    fib.hold.clear()
    sync.submit_many(T, Afi.IPV4, routes(0, 10))
    await asyncio.to_thread(fib.entered.wait, 5)  # the writer took those 10 and waits in apply
    assert sync.backlog == 10
    sync.submit_many(T, Afi.IPV4, routes(10, 3000))
    sync.submit_many(T, Afi.IPV4, routes(2000, 3500))  # 1,000 of these are pending already
    sync.submit(T, Afi.IPV4, key(0), ())  # a prefix in flight and pending again counts twice
    assert sync.backlog == 10 + 3490 + 1
    assert sync.pending_count() == 3491
    fib.hold.set()
    await sync.wait_idle()
    assert sync.backlog == 0
    assert len(fib.table(T, Afi.IPV4)) == 3499
    # Written in chunks of 1,000 at most, the backlog shrinking by each chunk.
    steps = [b for n, b in fib.seen if n]
    assert steps[0] == 10 and steps[1] == 3491 and steps[1:] == sorted(steps[1:], reverse=True)
    assert all(n <= 1000 for n, _b in fib.seen)
    await sync.close()


async def test_no_ops_leave_the_backlog_too() -> None:
    sync, fib = make()
    sync.submit_many(T, Afi.IPV4, dict.fromkeys(routes(0, 5000), ()))  # withdrawals of routes we lack
    await sync.wait_idle()
    assert sync.backlog == 0 and fib.calls == []
    await sync.close()


async def test_gate_closes_above_high_water_and_opens_at_low_water() -> None:
    sync, fib = make(rate=200_000, high_water=4000, low_water=1000, write_chunk=500)
    fib.hold.clear()
    assert not sync.input_blocked() and sync.when_input_open() is None
    sync.submit_many(T, Afi.IPV4, routes(0, 4000))
    assert not sync.input_blocked()  # at high water: still open
    sync.submit_many(T, Afi.IPV4, routes(4000, 4001))
    assert sync.input_blocked() and sync.input_pauses == 1
    fut = sync.when_input_open()
    assert fut is not None and sync.when_input_open() is fut  # one future per loop, however asked
    fib.hold.set()
    await asyncio.wait_for(fut, 5)
    # Opened at low water, while the writer still had work: no pipeline bubble.
    assert sync.backlog <= 1000
    assert not sync.input_blocked()
    await sync.wait_idle()
    assert len(fib.table(T, Afi.IPV4)) == 4001
    # Between the marks the gate keeps its state: open now, so 2,000 do not close it.
    fib.hold.clear()
    sync.submit_many(T, Afi.IPV4, routes(10_000, 12_000))
    assert not sync.input_blocked()
    fib.hold.set()
    await sync.wait_idle()
    await sync.close()


async def test_a_writer_failure_empties_the_backlog_and_opens_the_gate() -> None:
    sync, fib = make(high_water=100, low_water=10)
    fib.hold.clear()
    fib.raise_on_apply = OSError(5, "netlink socket gone")
    sync.submit_many(T, Afi.IPV4, routes(0, 500))
    assert sync.input_blocked()
    fut = sync.when_input_open()
    assert fut is not None
    fib.hold.set()
    await asyncio.wait_for(fut, 5)
    await sync.wait_idle()
    assert sync.backlog == 0 and not sync.input_blocked()
    assert len(sync.errors) == 500  # failed, recorded, not lost
    await sync.close()


async def test_never_closed_when_the_writer_cannot_drain() -> None:
    sync, fib = make(high_water=100, low_water=10)
    fib.hold.clear()
    sync.submit_many(T, Afi.IPV4, routes(0, 500))
    assert sync.input_blocked()
    sync._closing = True  # closing: the backlog is written, no more input comes
    assert not sync.input_blocked()
    sync._closing = False
    fib.hold.set()
    await sync.close()
    # A writer thread that is gone (closed here; a crash alike) never holds input back.
    sync._queued = 10_000
    assert not sync.input_blocked()


async def test_flush_all_drops_the_pending_backlog() -> None:
    sync, fib = make(high_water=100, low_water=10)
    fib.hold.clear()
    sync.submit_many(T, Afi.IPV4, routes(0, 1))
    await asyncio.to_thread(fib.entered.wait, 5)
    sync.submit_many(T, Afi.IPV4, routes(1, 500))
    assert sync.input_blocked()
    fut = sync.when_input_open()
    flushing = asyncio.ensure_future(sync.flush_all())
    assert fut is not None
    await asyncio.wait_for(asyncio.shield(fut), 5)  # released while the writer is still held
    assert not fib.hold.is_set() and not sync.input_blocked()
    fib.hold.set()
    await flushing
    assert sync.backlog == 0
    await sync.close()


def test_backlog_reads_need_no_lock() -> None:
    """The loop reads the backlog per piece of input: it must not wait for the writer's lock."""

    async def main() -> None:
        sync, _fib = make()
        sync.submit_many(T, Afi.IPV4, routes(0, 10))
        with sync._lock:  # the writer holds the lock: reading still answers at once
            done = threading.Event()

            def read() -> None:
                assert sync.backlog >= 0
                assert not sync.input_blocked()
                done.set()

            threading.Thread(target=read).start()
            assert done.wait(2)
        await sync.close()

    asyncio.run(main())


@pytest.mark.parametrize("n", [0, 1])
async def test_requeued_failures_are_counted(n: int) -> None:
    sync, fib = make()
    for i in range(n + 2):
        fib.fail(key(i))
    sync.submit_many(T, Afi.IPV4, routes(0, 10))
    await sync.wait_idle()
    assert sync.backlog == 0
    fib.failing.clear()
    fib.hold.clear()
    assert sync.retry_failed() == n + 2
    assert sync.backlog == n + 2
    fib.hold.set()
    await sync.wait_idle()
    assert sync.backlog == 0 and not sync.errors
    await sync.close()
