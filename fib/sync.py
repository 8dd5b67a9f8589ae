"""The event loop's side of the FIB: cheap submissions, one writer thread doing the kernel work.

``submit`` only records the wanted state of a prefix in a dict and wakes the writer, so the
RIB never waits for the kernel. The writer takes the whole pending dict in one swap and
writes it in batches; a prefix that changes several times before the writer gets to it is
written once, in its last state (coalescing). Kernel calls release the GIL, so route
updates overlap with the daemon decoding the next UPDATEs. The queue is bounded by
backpressure: the sessions stop reading while ``backlog`` is above ``HIGH_WATER``.

``installed`` is what we believe the kernel holds (ours only); reconcile() makes it true at
start-up by dumping the managed tables. Only the writer thread changes it; other threads
read a table through ``routes()``, a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as errno_mod
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import repeat
from operator import countOf
from typing import Any, TypeVar

import structlog

from fib.model import (
    EV_ADDR,
    EV_LINK,
    EV_OVERRUN,
    EV_ROUTE_DEL,
    FibBackend,
    FibError,
    KernelEvent,
    KernelMonitor,
    NextHops,
    TableKey,
    op_name,
    same_nexthops,
)
from rib.prefix import Afi, PrefixKey, key_to_str

T = TypeVar("T")
PendingKey = tuple[int, Afi, PrefixKey]  # (table, afi, prefix)
# Route writes of one table, prefix -> next hops (``()``: delete). Dicts all the way to the
# backend: a tuple per route of a full table would cost more in the cyclic GC than the writing.
Ops = dict[PrefixKey, NextHops]
# Pending submissions are grouped by table under an int key, table * 4 + afi: hashing a tuple that
# holds an Afi runs Enum.__hash__ (Python code), which would cost submit() more than its dict store.

_LOGGED_PER_BATCH = 20  # individual error lines per apply; the rest are summarised
# A next hop the kernel cannot reach (no connected route covers it): kept out, retried on changes.
UNRESOLVED_ERRNOS = frozenset({errno_mod.ENETUNREACH, errno_mod.EHOSTUNREACH})
FIB_INSTALLED = "installed"
FIB_UNRESOLVED = "unresolved"
FIB_FAILED = "failed"
FIB_PENDING = "pending"

# Backpressure (``input_blocked``): while more routes than HIGH_WATER wait for the kernel (pending
# plus the writer's batch in flight) the daemon stops processing received bytes, and goes on once
# fewer than LOW_WATER wait. The RIB outruns the writer (they share the GIL, and the kernel takes
# ~5 us a route), so without it a full table queues ~300k routes (~40 MiB) behind the kernel, and
# any number if the kernel stalls. 64k routes are ~0.3 s of kernel work: the writer never runs dry
# while input resumes, and the queue costs ~10 MiB at most (measured: docs/benchmarks.md).
HIGH_WATER = 65_536
LOW_WATER = 16_384
# Ops per backend call for the RIB's batches: the writer reports progress (and so reopens the
# input at LOW_WATER) once per call, so a batch must be several calls for the input to resume
# while the writer still has work.
WRITE_CHUNK = 16_384
GATE_LOG_EVERY = 10.0  # seconds: input paused/resumed is logged at most this often


class FibSync:
    """Keeps kernel tables equal to what the RIB submits.

    ``chunk`` is the most ops per ``backend.apply`` call (the backend batches further),
    ``max_errors`` bounds the remembered failures (the oldest are forgotten first), ``linger``
    is how long the idle writer lets submissions gather once woken: the RIB submits in bursts
    (one UPDATE, a session going down), and a write of thousands costs little more than a write
    of one.

    With a ``monitor`` (kernel notifications other than our own writes' echoes), a route of ours
    deleted or changed by someone else is put back, a link going down or up or lost
    notifications lead to a resync (dump and diff of every managed table), and failed routes are
    retried when an address or a route appears (their next hop may have become reachable).
    """

    def __init__(
        self,
        backend: FibBackend,
        log: Any = None,
        *,
        chunk: int = 100_000,
        max_errors: int = 10_000,
        linger: float = 0.002,
        monitor: KernelMonitor | None = None,
        protocol: int = 186,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        write_chunk: int = WRITE_CHUNK,
    ) -> None:
        self._backend = backend
        self._linger = linger
        self._log = log if log is not None else structlog.get_logger()
        self._chunk = chunk
        self._max_errors = max_errors
        self._lock = threading.Lock()  # guards _pending, _jobs, _busy, _closing, _waiters, _errors, _failed
        self._wake = threading.Event()
        self._pending: dict[int, dict[PrefixKey, NextHops]] = {}  # by table * 4 + afi
        self._tkeys: dict[int, TableKey] = {}  # table * 4 + afi -> (table, afi)
        self._signalled = False  # the writer was woken for the current _pending (guarded by _lock)
        self._jobs: deque[_Job] = deque()
        self._busy = False
        self._closing = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # The backlog, O(1) to read from the loop without the lock: routes in ``_pending``
        # (counted as they are added, under ``_lock``) and routes of the batch the writer took and
        # has not yet written (set at the swap, decreased per backend call).
        self._queued = 0
        self._inflight = 0
        self.high_water = high_water
        self.low_water = low_water
        self._write_chunk = min(write_chunk, chunk)
        self._gate_closed = False  # the loop's view: input paused until the backlog is below low water
        self._gate_since = 0.0
        self._gate_logged = -GATE_LOG_EVERY
        self._open_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.input_pauses = 0  # times the input was paused
        self.backlog_peak = 0  # highest backlog seen at a submit_many (the RIB's path)
        self.installed: dict[TableKey, dict[PrefixKey, NextHops]] = {}
        # Current failures, by prefix (a later success for the prefix clears its entry), and what
        # was wanted for each, so retry_failed() can submit it again.
        self._errors: dict[PendingKey, FibError] = {}
        self._failed: dict[PendingKey, NextHops] = {}
        # The same prefixes by table, so that a batch finds its settled failures with one set
        # intersection instead of a lookup per route.
        self._failed_idx: dict[TableKey, set[PrefixKey]] = {}
        self.ops_total = 0  # ops handed to the backend
        self.errors_total = 0
        self.last_write_seconds = 0.0  # duration of the last drained pending dict
        self.protocol = protocol  # ours, to tell our routes from others' in monitor events
        self._events: list[KernelEvent] = []
        self._links_down: set[int] = set()  # interfaces seen going down, to resync when they are back
        self._eperm_logged = False
        # Routes installed through a resolved (recursive) next hop: key -> (wanted, in the kernel).
        # ``installed`` keeps the wanted form, which is what the RIB submits and compares with.
        self._recursive: dict[PendingKey, tuple[NextHops, NextHops]] = {}
        # Last resolution of each recursive gateway: a route event costs one lookup per gateway,
        # and the recursive routes are scanned only when one of them resolves differently.
        self._gw_seen: dict[tuple[int, Afi, Any], NextHops | None] = {}
        self._resolve = getattr(backend, "resolve", None)
        self.repairs_total = 0  # routes put back after someone else changed them
        self.resyncs_total = 0
        self._thread = threading.Thread(target=self._run, name="fib-writer", daemon=True)
        self._thread.start()
        self._monitor = monitor
        self._monitor_thread: threading.Thread | None = None
        if monitor is not None:
            self._monitor_thread = threading.Thread(target=self._watch, name="fib-monitor", daemon=True)
            self._monitor_thread.start()

    # --- event loop side -----------------------------------------------------------------------

    def submit(self, table: int, afi: Afi, prefix: PrefixKey, nexthops: NextHops) -> None:
        """Want ``prefix`` routed via ``nexthops`` in ``table`` (``()``: no route). O(1), never blocks."""
        # Runs once per RIB change on the event loop: one int key, two dict operations, no Enum hash.
        lock = self._lock
        lock.acquire()  # not `with`: the context protocol costs
        try:
            pending = self._pending.get(table * 4 + afi)
            if pending is None:
                pending = self._pending_table(table, afi)
            n = len(pending)
            pending[prefix] = nexthops
            self._queued += len(pending) - n
            wake = not self._signalled
            self._signalled = True
        finally:
            lock.release()
        if wake:
            self._wake.set()

    def submit_many(self, table: int, afi: Afi, routes: Mapping[PrefixKey, NextHops]) -> None:
        """``submit`` for many prefixes of one table (one UPDATE's): one lock and one C-level update."""
        if not routes:
            return
        with self._lock:
            pending = self._pending.get(table * 4 + afi)
            if pending is None:
                pending = self._pending_table(table, afi)
            n = len(pending)
            pending.update(routes)
            self._queued += len(pending) - n
            backlog = self._queued + self._inflight
            if backlog > self.backlog_peak:
                self.backlog_peak = backlog
            wake = not self._signalled
            self._signalled = True
        if wake:
            self._wake.set()

    def _pending_table(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        """The pending dict of one table (the caller holds ``_lock``)."""
        tkey = table * 4 + afi
        self._tkeys.setdefault(tkey, (table, Afi(afi)))
        return self._pending.setdefault(tkey, {})

    def pending_count(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    @property
    def backlog(self) -> int:
        """Routes waiting for the kernel: pending, and taken by the writer but not yet written. O(1)."""
        return self._queued + self._inflight

    def input_blocked(self) -> bool:
        """Whether the daemon should hold received bytes back now (once per piece of input: O(1)).

        Closes above ``high_water`` and stays closed until the backlog is at most ``low_water``.
        Never closed for a writer that is gone or closing: nothing would drain the backlog.
        """
        backlog = self._queued + self._inflight
        if self._gate_closed:
            if backlog > self.low_water and self._writer_draining():
                return True
            self._gate_closed = False
            if self._gate_logged == self._gate_since:  # its pause was logged: so is the resume
                self._log.info(
                    "input resumed: kernel writer caught up",
                    backlog=backlog,
                    paused_s=round(time.monotonic() - self._gate_since, 3),
                    pauses=self.input_pauses,
                )
            return False
        if backlog <= self.high_water or not self._writer_draining():
            return False
        self._gate_closed = True
        self.input_pauses += 1
        now = self._gate_since = time.monotonic()
        if now - self._gate_logged >= GATE_LOG_EVERY:
            self._gate_logged = now
            self._log.info(
                "input paused: routes queued behind the kernel", backlog=backlog, pauses=self.input_pauses
            )
        return True

    def when_input_open(self) -> asyncio.Future[None] | None:
        """A future done once the backlog is at most ``low_water`` (None: it is already). The
        writer resolves it from its thread; a caller should still re-check now and then
        (``input_blocked``), which also notices a writer that died."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._queued + self._inflight <= self.low_water:
                return None
            for wloop, fut in self._open_waiters:
                if wloop is loop and not fut.done():
                    return fut
            fut = loop.create_future()
            self._open_waiters.append((loop, fut))
            return fut

    def _writer_draining(self) -> bool:
        return not self._closing and self._thread.is_alive()

    def _written(self, n: int) -> None:
        """Writer thread: ``n`` routes of the batch in flight are done (or dropped as no-ops)."""
        with self._lock:
            self._inflight = max(0, self._inflight - n)
            if self._open_waiters and self._queued + self._inflight <= self.low_water:
                self._release_input()

    def _release_input(self) -> None:
        """Resolve the waiters of ``when_input_open`` (the caller holds ``_lock``)."""
        waiters, self._open_waiters = self._open_waiters, []
        for loop, fut in waiters:
            _resolve(loop, fut, None, None)

    def installed_count(self) -> int:
        return sum(len(routes) for routes in list(self.installed.values()))

    def routes(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        """A copy of what we installed in one table, safe to iterate while the writer works."""
        return dict(self.installed.get((table, afi), _EMPTY))  # one C-level copy: atomic under the GIL

    def status(self, table: int, afi: Afi, prefix: PrefixKey) -> str | None:
        """Where a prefix stands in the kernel: installed, unresolved, failed, pending (None: not ours)."""
        error = self._errors.get((table, afi, prefix))
        if error is not None:
            return FIB_UNRESOLVED if error.errno in UNRESOLVED_ERRNOS else FIB_FAILED
        if prefix in self._pending.get(table * 4 + afi, _EMPTY):
            return FIB_PENDING
        routes = self.installed.get((table, afi))
        if routes is not None and prefix in routes:
            return FIB_INSTALLED
        return None

    def status_detail(self, table: int, afi: Afi, prefix: PrefixKey) -> tuple[str | None, str | None]:
        """``status`` and, for a failed or unresolved prefix, the kernel's reason."""
        error = self._errors.get((table, afi, prefix))
        if error is not None:
            return self.status(table, afi, prefix), error.reason
        return self.status(table, afi, prefix), None

    def resolved_via(self, table: int, afi: Afi, prefix: PrefixKey) -> NextHops | None:
        """For a route installed through a recursive next hop, the gateways the kernel holds."""
        entry = self._recursive.get((table, afi, prefix))
        return entry[1] if entry is not None else None

    def unresolved(self) -> list[FibError]:
        """Prefixes kept out of the kernel because their next hop is not reachable."""
        return [e for e in self.errors if e.errno in UNRESOLVED_ERRNOS]

    @property
    def errors(self) -> list[FibError]:
        """Prefixes whose last write failed, oldest first."""
        with self._lock:
            return list(self._errors.values())

    def retry_failed(self) -> int:
        """Submit the failed prefixes' wanted state again (e.g. once a link is up). Returns how many."""
        with self._lock:
            self._requeue_failed()
            n = len(self._failed)
        self._wake.set()
        return n

    def _requeue_failed(self) -> None:
        """Pend the failed prefixes' wanted state again (the caller holds ``_lock``)."""
        for (table, afi, prefix), nexthops in self._failed.items():
            self._pending_table(table, afi).setdefault(prefix, nexthops)  # a newer submission wins
        self._queued = sum(map(len, self._pending.values()))

    async def wait_idle(self) -> None:
        """Return once nothing is pending and the writer has finished what it took."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not (self._busy or self._pending or self._jobs) or not self._thread.is_alive():
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        self._wake.set()
        await fut

    async def reconcile(
        self, desired: dict[TableKey, dict[PrefixKey, NextHops]], tables: Iterable[TableKey]
    ) -> None:
        """Make the kernel hold exactly ``desired`` in ``tables`` (and in every table of ``desired``).

        Dumps our routes in each table, deletes the ones not wanted and installs the missing or
        different ones. Other protocols' routes are not seen, so not touched. Submissions still
        pending are written afterwards (they are newer than ``desired``).
        """
        # Copied here, on the loop: the RIB may change these dicts while the writer works.
        snapshot = {key: dict(routes) for key, routes in desired.items()}
        managed = list(dict.fromkeys([*tables, *snapshot]))
        await self._call(lambda: self._reconcile(snapshot, managed))

    async def adopt(self, tables: Iterable[TableKey]) -> dict[TableKey, int]:
        """Graceful restart (deferred reconciliation): take our routes found in ``tables`` as
        installed and delete none of them. The RIB's submissions then replace only what differs;
        ``reconcile`` later deletes the leftovers. Returns the routes found per table."""
        managed = list(dict.fromkeys(tables))
        return await self._call(lambda: self._adopt(managed))

    def _adopt(self, tables: list[TableKey]) -> dict[TableKey, int]:
        found: dict[TableKey, int] = {}
        for table, afi in tables:
            current = self._backend.dump(table, afi)
            self.installed[(table, afi)] = dict(current)
            found[(table, afi)] = len(current)
            self._log.info(
                "kernel table kept for graceful restart", table=table, afi=afi.name_lower, kept=len(current)
            )
        return found

    async def flush_all(self) -> None:
        """Delete every route we installed (clean shutdown without ``persist``); drop pending ones."""
        with self._lock:
            self._pending.clear()
            self._queued = 0
            self._release_input()
        await self._call(self._flush)

    async def close(self) -> None:
        """Write what is pending, stop the writer and close the backend."""
        with self._lock:
            self._closing = True
        self._wake.set()
        await self.wait_idle()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        if self._monitor_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._monitor_thread.join)
        if self._monitor is not None:
            self._monitor.close()
        self._backend.close()

    async def resync(self) -> None:
        """Dump every managed table and repair any difference with what we installed."""
        await self._call(self._resync)

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer thread, between two batches, and wait for it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closing:
                raise RuntimeError("FibSync is closed")
            self._jobs.append(_Job(fn, loop, fut))
        self._wake.set()
        return await fut

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._linger:
                time.sleep(self._linger)
            self._wake.clear()
            while True:
                with self._lock:
                    job = self._jobs.popleft() if self._jobs else None
                    events: list[KernelEvent] = []
                    if job is None and self._events:
                        events, self._events = self._events, []
                    batch: dict[int, dict[PrefixKey, NextHops]] = {}
                    if job is None and not events and self._pending:
                        batch, self._pending = self._pending, {}
                        self._inflight, self._queued = self._queued, 0
                    self._signalled = False  # a submission from now on wakes the writer again
                    if job is None and not events and not batch:
                        self._busy = False
                        if self._open_waiters:  # idle: nothing is queued (a recount left it so)
                            self._release_input()
                        waiters, self._waiters = self._waiters, []
                        closing = self._closing
                        break
                    self._busy = True
                if job is not None:
                    job.run()
                    continue
                if events:
                    try:
                        self._handle_events(events)
                    except Exception:
                        self._log.exception("fib monitor event handling failed", events=len(events))
                    continue
                started = time.monotonic()
                try:
                    self._write(batch)
                except Exception:  # a bug must not kill the writer: log it and go on
                    self._log.exception("fib writer failed", routes=sum(map(len, batch.values())))
                finally:
                    self._written(self._inflight)  # the whole batch is through (or given up)
                self.last_write_seconds = time.monotonic() - started
            for loop, fut in waiters:
                _resolve(loop, fut, None, None)
            if closing:
                return

    # --- monitor ---------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Monitor thread: wait for notifications, queue them for the writer (which owns ``installed``)."""
        monitor = self._monitor
        assert monitor is not None
        poll = select.poll()
        poll.register(monitor.fileno(), select.POLLIN)
        while not self._closing:
            if not poll.poll(200):
                continue
            try:
                events = monitor.read()
            except Exception as exc:  # the socket broke: resync once, and stop watching
                self._log.error(
                    "kernel monitor failed; routes changed by others are no longer repaired", error=repr(exc)
                )
                events = [KernelEvent(EV_OVERRUN)]
                with self._lock:
                    self._events.extend(events)
                self._wake.set()
                return
            if events:
                with self._lock:
                    self._events.extend(events)
                self._wake.set()

    def _handle_events(self, events: list[KernelEvent]) -> None:
        """Writer thread: compare what others did with ``installed`` and put our routes back.

        The monitor never sees our own writes, so an event is someone else's doing: a route of ours
        deleted (``ip route del``) or changed (``ip route change``, which also takes the protocol),
        or one with our protocol number added by hand. Repairs are create-or-replace or delete
        ops, so a stale event costs an idempotent write at worst.
        """
        resync = retry = reresolve = False
        repairs: dict[TableKey, dict[PrefixKey, NextHops]] = {}
        proto = self.protocol
        for ev in events:
            if ev.kind == EV_OVERRUN:
                self._log.warning("kernel notifications lost (ENOBUFS): resyncing every managed table")
                resync = True
                continue
            if ev.kind == EV_LINK:
                # IPv4 flushes the routes via a link that goes down without a notification per route.
                if not ev.up and ev.ifindex not in self._links_down:
                    self._links_down.add(ev.ifindex)
                    resync = True
                elif ev.up and ev.ifindex in self._links_down:
                    self._links_down.discard(ev.ifindex)
                    resync = True
                continue
            if ev.kind == EV_ADDR:
                # An address gone takes the routes via its subnet with it (IPv4: no notification each).
                retry = True
                resync = resync or not ev.up
                continue
            if ev.protocol != proto:  # others' routes: the ways to recursive next hops may have changed
                reresolve = True
            routes = self.installed.get((ev.table, ev.afi))
            if routes is None:  # not a managed table; it may still make a failed next hop reachable
                retry = retry or (ev.kind != EV_ROUTE_DEL and ev.protocol != proto)
                continue
            want = routes.get(ev.prefix)
            if ev.kind == EV_ROUTE_DEL:
                if ev.protocol == proto and want:
                    repairs.setdefault((ev.table, ev.afi), {})[ev.prefix] = want
                continue
            if ev.protocol != proto:
                retry = True
                if want:  # maybe replaced ours (same metric); replacing again is harmless if not
                    repairs.setdefault((ev.table, ev.afi), {})[ev.prefix] = want
            elif want is None:
                repairs.setdefault((ev.table, ev.afi), {})[ev.prefix] = ()  # ours by number, not by us
            elif not same_nexthops(self._kernel_form(ev.table, ev.afi, ev.prefix, want), ev.nexthops):
                repairs.setdefault((ev.table, ev.afi), {})[ev.prefix] = want
        if resync:
            self._resync()
            return
        if reresolve and self._recursive:
            self._reresolve()
        for (table, afi), ops in repairs.items():
            self._log.warning(
                "routes of ours changed by someone else: repairing",
                table=table,
                afi=afi.name_lower,
                routes=len(ops),
                sample=[key_to_str(afi, p) for p in list(ops)[:5]],
            )
            self._repair(table, afi, ops)
        if retry and self._failed:
            self._retry_failed_now()

    def _repair(self, table: int, afi: Afi, ops: Ops) -> None:
        """Write ``ops`` whatever ``installed`` says; a failed re-add means the kernel lacks the route."""
        routes = self.installed.setdefault((table, afi), {})
        errors = self._apply(table, afi, ops)
        for error in errors:
            if error.op != OP_DELETE_NAME:
                routes.pop(error.prefix, None)
        self.repairs_total += len(ops) - len(errors)

    def _resync(self) -> None:
        """Dump every managed table; put back what is missing or different, remove strays of ours."""
        self.resyncs_total += 1
        for (table, afi), routes in list(self.installed.items()):
            current = self._backend.dump(table, afi)
            stale: Ops = {p: () for p in current if p not in routes}
            missing: Ops = {
                p: nh
                for p, nh in routes.items()
                if (old := current.get(p)) is None
                or not same_nexthops(old, self._kernel_form(table, afi, p, nh))
            }
            if stale or missing:
                self._log.warning(
                    "kernel table differed from what we installed: repairing",
                    table=table,
                    afi=afi.name_lower,
                    missing=len(missing),
                    stale=len(stale),
                )
                self._repair(table, afi, stale | missing)
        self._retry_failed_now()

    def _kernel_form(self, table: int, afi: Afi, prefix: PrefixKey, wanted: NextHops) -> NextHops:
        """What the kernel should hold for a route we installed with ``wanted``."""
        if self._recursive:
            entry = self._recursive.get((table, afi, prefix))
            if entry is not None and entry[0] == wanted:
                return entry[1]
        return wanted

    def _translate(
        self, table: int, afi: Afi, wanted: NextHops, cache: dict[tuple[int, Any], NextHops | None]
    ) -> NextHops | None:
        """The gateways that reach ``wanted`` (recursive next hops resolved); None if none does."""
        assert self._resolve is not None
        out: list[Any] = []
        for gw in wanted:
            ckey = (table, gw)
            if ckey not in cache:
                try:
                    cache[ckey] = self._resolve(table, afi, gw)
                except OSError:
                    cache[ckey] = None
                if len(self._gw_seen) < 65536:
                    self._gw_seen[(table, afi, gw)] = cache[ckey]
            via = cache[ckey]
            if via:
                out.extend(via)
        return tuple(dict.fromkeys(out)) or None

    def _resolve_and_retry(
        self, table: int, afi: Afi, wanted: Ops, errors: list[FibError]
    ) -> tuple[list[FibError], dict[PrefixKey, NextHops]]:
        """Retry the ops refused for an unreachable gateway with their next hops resolved.

        Returns the errors left and, per prefix now installed that way, the gateways used.
        """
        unreachable = [e for e in errors if e.errno in UNRESOLVED_ERRNOS and e.op != OP_DELETE_NAME]
        if not unreachable or self._resolve is None:
            return errors, {}
        cache: dict[tuple[int, Any], NextHops | None] = {}
        retry: Ops = {}
        for e in unreachable:
            via = self._translate(table, afi, wanted[e.prefix], cache)
            if via is not None and not same_nexthops(via, wanted[e.prefix]):
                retry[e.prefix] = via
        if not retry:
            return errors, {}
        try:
            again = self._backend.apply(table, afi, retry)
        except Exception:
            return errors, {}
        refused = {e.prefix for e in again}
        done = {p: via for p, via in retry.items() if p not in refused}
        return [e for e in errors if e.prefix not in done], done

    def _reresolve(self) -> None:
        """Others' routes changed: follow each recursive route's way to its next hop."""
        cache: dict[tuple[int, Any], NextHops | None] = {}
        before = dict(self._gw_seen)
        for table, afi, gw in before:
            self._translate(table, afi, (gw,), cache)
        if all(self._gw_seen.get(k) == v for k, v in before.items()):
            return  # no way to any recursive next hop changed
        changed: dict[TableKey, Ops] = {}
        gone: dict[TableKey, Ops] = {}
        for (table, afi, prefix), (wanted, via) in list(self._recursive.items()):
            now = self._translate(table, afi, wanted, cache)
            if now is None:
                gone.setdefault((table, afi), {})[prefix] = wanted
            elif not same_nexthops(now, via):
                changed.setdefault((table, afi), {})[prefix] = wanted
        for (table, afi), ops in changed.items():
            for prefix in ops:
                self._recursive.pop((table, afi, prefix), None)
            self._repair(table, afi, ops)  # resolved again on the way in
        for (table, afi), ops in gone.items():
            # Nothing leads to the next hop any more: out of the kernel, unresolved until it does.
            self._apply(table, afi, dict.fromkeys(ops, ()))
            reason = "next hop not reachable: no route covers it"
            errors = [FibError(table, afi, p, OP_REPLACE_NAME, errno_mod.ENETUNREACH, reason) for p in ops]
            self._record(table, afi, ops, errors)

    def _retry_failed_now(self) -> None:
        with self._lock:
            self._requeue_failed()

    def _write(self, batch: dict[int, dict[PrefixKey, NextHops]]) -> None:
        """Drop no-ops (already so in the kernel) table by table, then hand the rest to the backend."""
        for tkey, wanted in batch.items():
            table, afi = self._tkeys[tkey]
            taken = len(wanted)
            installed = self.installed.get((table, afi), _EMPTY)
            ops: Ops
            if not installed or installed.keys().isdisjoint(wanted):
                # None of these is in the kernel (a table filling up): every delete is a no-op,
                # and without any the pending dict is the ops as it is.
                ops = wanted if () not in wanted.values() else {p: nh for p, nh in wanted.items() if nh}
            elif countOf(wanted.values(), ()) == len(wanted):
                # Withdrawals only: the ones of routes not in the kernel are no-ops (a set difference, in C).
                for prefix in wanted.keys() - installed.keys():
                    del wanted[prefix]  # ours: swapped out of _pending
                ops = wanted
            else:
                noops: list[PrefixKey] = []
                get = installed.get
                for prefix, nexthops in wanted.items():
                    current = get(prefix)
                    if current is None:
                        if not nexthops:
                            noops.append(prefix)
                    # == is C-fast when the gateways are the same objects; the set compare runs
                    # only for a real change or the kernel's reordering of an ECMP set.
                    elif nexthops and (current == nexthops or set(current) == set(nexthops)):
                        noops.append(prefix)
                for prefix in noops:
                    del wanted[prefix]  # ours: swapped out of _pending
                ops = wanted
            failed_idx = self._failed_idx.get((table, afi))
            if failed_idx:
                # Failed before and now a no-op (withdrawn, or already right): no longer failed.
                candidates = failed_idx.intersection(wanted)
                if candidates:
                    candidates.difference_update(ops)
                    if candidates:
                        with self._lock:
                            for prefix in candidates:
                                self._forget_failure((table, afi, prefix))
            if len(ops) < taken:
                self._written(taken - len(ops))  # the no-ops
            if ops:
                self._apply(table, afi, ops, batch=True)

    def _apply(self, table: int, afi: Afi, ops: Ops, *, batch: bool = False) -> list[FibError]:
        """Hand ``ops`` to the backend in chunks; update ``installed`` and the failure records.
        ``batch``: the ops are the RIB's (in flight): each chunk written lowers the backlog."""
        routes = self.installed.setdefault((table, afi), {})
        all_errors: list[FibError] = []
        for chunk in _strided(ops, self._write_chunk if batch else self._chunk):
            try:
                errors = self._backend.apply(table, afi, chunk)
            except Exception as exc:  # the backend itself broke (socket gone...): every op failed
                errno = getattr(exc, "errno", None) or errno_mod.EIO
                self._log.error(
                    "fib backend failed", table=table, afi=afi.name_lower, ops=len(chunk), error=repr(exc)
                )
                errors = [
                    FibError(table, afi, p, op_name(nh), errno, f"backend: {exc}") for p, nh in chunk.items()
                ]
            self.ops_total += len(chunk)
            via: dict[PrefixKey, NextHops] = {}
            if errors:
                errors, via = self._resolve_and_retry(table, afi, chunk, errors)
            failed = {e.prefix for e in errors} if errors else _NO_PREFIXES
            done = chunk
            if failed:  # a refused op leaves the kernel as it was
                done = {p: nh for p, nh in chunk.items() if p not in failed}
            # ``installed`` in bulk, in C: the installs in one update, the deletes popped by map().
            deletes = countOf(done.values(), ())
            if deletes == len(done):
                deque(map(routes.pop, done, repeat(None)), 0)  # already gone is fine
            else:
                routes.update(done)
                if deletes:
                    deque(map(routes.pop, [p for p, nh in done.items() if not nh], repeat(None)), 0)
            if via or self._recursive:  # recursive routes are rare: no cost per route otherwise
                recursive = self._recursive
                for prefix, nexthops in chunk.items():
                    key = (table, afi, prefix)
                    if prefix in via:
                        recursive[key] = (nexthops, via[prefix])
                    elif prefix not in failed:
                        recursive.pop(key, None)
            self._record(table, afi, chunk, errors)
            all_errors.extend(errors)
            if batch:
                self._written(len(chunk))
        return all_errors

    def _forget_failure(self, key: PendingKey) -> None:
        """The caller holds ``_lock``."""
        self._errors.pop(key, None)
        if self._failed.pop(key, _MISSING) is not _MISSING:
            idx = self._failed_idx.get((key[0], key[1]))
            if idx is not None:
                idx.discard(key[2])

    def _record(self, table: int, afi: Afi, chunk: Ops, errors: list[FibError]) -> None:
        failed_idx = self._failed_idx.get((table, afi))
        if not errors and not failed_idx:
            return
        with self._lock:
            if failed_idx:  # successes (and retried failures) clear earlier failures of the same prefix
                written = failed_idx.intersection(chunk)
                for prefix in written:
                    self._forget_failure((table, afi, prefix))
            if errors:
                idx = self._failed_idx.setdefault((table, afi), set())
                for error in errors:
                    key = (table, afi, error.prefix)
                    self._errors.pop(key, None)  # re-insert: the newest failures come last
                    self._errors[key] = error
                    self._failed[key] = chunk.get(error.prefix, ())
                    idx.add(error.prefix)
            while len(self._errors) > self._max_errors:
                self._forget_failure(next(iter(self._errors)))
        self.errors_total += len(errors)
        if not self._eperm_logged and any(e.errno == errno_mod.EPERM for e in errors):
            self._eperm_logged = True
            self._log.error(
                "the kernel refuses our route writes (EPERM): the daemon lacks CAP_NET_ADMIN; "
                "routes stay out of the kernel and show fib=failed",
                table=table,
                afi=afi.name_lower,
            )
        for error in errors[:_LOGGED_PER_BATCH]:
            self._log.warning(
                "kernel route write failed",
                table=table,
                afi=afi.name_lower,
                prefix=key_to_str(afi, error.prefix),
                op=error.op,
                errno=error.errno,
                reason=error.reason,
            )
        if len(errors) > _LOGGED_PER_BATCH:
            self._log.warning(
                "kernel route write failures (more not logged)",
                table=table,
                afi=afi.name_lower,
                failed=len(errors),
                not_logged=len(errors) - _LOGGED_PER_BATCH,
            )

    def _reconcile(self, desired: dict[TableKey, dict[PrefixKey, NextHops]], tables: list[TableKey]) -> None:
        for table, afi in tables:
            current = self._backend.dump(table, afi)
            self.installed[(table, afi)] = dict(current)
            wanted = desired.get((table, afi), {})
            stale: Ops = {p: () for p in current if not wanted.get(p)}
            missing: Ops = {
                p: nh
                for p, nh in wanted.items()
                if nh and ((old := current.get(p)) is None or not same_nexthops(old, nh))
            }
            ops = stale | missing
            errors = self._apply(table, afi, ops) if ops else []
            self._log.info(
                "kernel table reconciled",
                table=table,
                afi=afi.name_lower,
                found=len(current),
                stale=len(stale),
                installed=len(missing),
                failed=len(errors),
            )

    def _flush(self) -> None:
        for (table, afi), routes in list(self.installed.items()):
            if routes:
                ops: Ops = dict.fromkeys(routes, ())
                errors = self._apply(table, afi, ops)
                self._log.info(
                    "kernel routes flushed",
                    table=table,
                    afi=afi.name_lower,
                    deleted=len(ops) - len(errors),
                    failed=len(errors),
                )


_EMPTY: dict[PrefixKey, NextHops] = {}
_NO_PREFIXES: frozenset[PrefixKey] = frozenset()
_MISSING: Any = object()
OP_DELETE_NAME = op_name(())
OP_REPLACE_NAME = "replace"


class _Job:
    __slots__ = ("fn", "fut", "loop")

    def __init__(
        self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.fut = fut

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:
            _resolve(self.loop, self.fut, None, exc)
        else:
            _resolve(self.loop, self.fut, result, None)


def _strided(ops: Ops, size: int) -> Iterator[Ops]:
    """``ops`` in parts of at most ``size``, each part every k-th prefix (not k runs in a row).

    The backend interleaves the prefixes of one call so that neighbours in the kernel's
    LC-trie are not removed one after another; parts that were runs would undo that at their
    scale: 1M deletes in runs of 100k cost the kernel twice the time of strided parts.
    """
    n = len(ops)
    if n <= size:
        yield ops
        return
    keys = list(ops)
    k = -(-n // size)
    for start in range(k):
        yield {p: ops[p] for p in keys[start::k]}


def _resolve(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any, exc: BaseException | None
) -> None:
    def done() -> None:
        if fut.done():
            return  # the waiter was cancelled
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(done)
