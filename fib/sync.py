"""The event loop's side of the FIB: cheap submissions, one writer thread doing the kernel work.

``submit`` only records the wanted state of a prefix in a dict and wakes the writer, so the
RIB never waits for the kernel. The writer takes the whole pending dict in one swap and
writes it in batches; a prefix that changes several times before the writer gets to it is
written once, in its last state (coalescing). Kernel calls release the GIL, so route
updates overlap with the daemon decoding the next UPDATEs.

``installed`` is what we believe the kernel holds (ours only); reconcile() makes it true at
start-up by dumping the managed tables. Only the writer thread changes it; other threads
read a table through ``routes()``, a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as errno_mod
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import structlog

from fib.model import FibBackend, FibError, FibOp, NextHops, TableKey, op_name, same_nexthops
from rib.prefix import Afi, PrefixKey, key_to_str

T = TypeVar("T")
PendingKey = tuple[int, Afi, PrefixKey]  # (table, afi, prefix)

_LOGGED_PER_BATCH = 20  # individual error lines per apply; the rest are summarised


class FibSync:
    """Keeps kernel tables equal to what the RIB submits.

    ``chunk`` is the most ops per ``backend.apply`` call (the backend batches further),
    ``max_errors`` bounds the remembered failures (the oldest are forgotten first), ``linger``
    is how long the idle writer lets submissions gather once woken: the RIB submits in bursts
    (one UPDATE, a session going down), and a write of thousands costs little more than a write
    of one.
    """

    def __init__(
        self,
        backend: FibBackend,
        log: Any = None,
        *,
        chunk: int = 100_000,
        max_errors: int = 10_000,
        linger: float = 0.002,
    ) -> None:
        self._backend = backend
        self._linger = linger
        self._log = log if log is not None else structlog.get_logger()
        self._chunk = chunk
        self._max_errors = max_errors
        self._lock = threading.Lock()  # guards _pending, _jobs, _busy, _closing, _waiters, _errors, _failed
        self._wake = threading.Event()
        self._pending: dict[PendingKey, NextHops] = {}
        self._jobs: deque[_Job] = deque()
        self._busy = False
        self._closing = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.installed: dict[TableKey, dict[PrefixKey, NextHops]] = {}
        # Current failures, by prefix (a later success for the prefix clears its entry), and what
        # was wanted for each, so retry_failed() can submit it again.
        self._errors: dict[PendingKey, FibError] = {}
        self._failed: dict[PendingKey, NextHops] = {}
        self.ops_total = 0  # ops handed to the backend
        self.errors_total = 0
        self.last_write_seconds = 0.0  # duration of the last drained pending dict
        self._thread = threading.Thread(target=self._run, name="fib-writer", daemon=True)
        self._thread.start()

    # --- event loop side -----------------------------------------------------------------------

    def submit(self, table: int, afi: Afi, prefix: PrefixKey, nexthops: NextHops) -> None:
        """Want ``prefix`` routed via ``nexthops`` in ``table`` (``()``: no route). O(1), never blocks."""
        lock = self._lock
        lock.acquire()  # not `with`: this runs once per RIB change, and the context protocol costs
        try:
            self._pending[(table, afi, prefix)] = nexthops
        finally:
            lock.release()
        if not self._wake.is_set():
            self._wake.set()

    def pending_count(self) -> int:
        return len(self._pending)

    def installed_count(self) -> int:
        return sum(len(routes) for routes in list(self.installed.values()))

    def routes(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        """A copy of what we installed in one table, safe to iterate while the writer works."""
        return dict(self.installed.get((table, afi), _EMPTY))  # one C-level copy: atomic under the GIL

    @property
    def errors(self) -> list[FibError]:
        """Prefixes whose last write failed, oldest first."""
        with self._lock:
            return list(self._errors.values())

    def retry_failed(self) -> int:
        """Submit the failed prefixes' wanted state again (e.g. once a link is up). Returns how many."""
        with self._lock:
            for key, nexthops in self._failed.items():
                self._pending.setdefault(key, nexthops)  # a newer submission wins
            n = len(self._failed)
        self._wake.set()
        return n

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

    async def flush_all(self) -> None:
        """Delete every route we installed (clean shutdown without ``persist``); drop pending ones."""
        with self._lock:
            self._pending.clear()
        await self._call(self._flush)

    async def close(self) -> None:
        """Write what is pending, stop the writer and close the backend."""
        with self._lock:
            self._closing = True
        self._wake.set()
        await self.wait_idle()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._backend.close()

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
                    batch: dict[PendingKey, NextHops] = {}
                    if job is None and self._pending:
                        batch, self._pending = self._pending, {}
                    if job is None and not batch:
                        self._busy = False
                        waiters, self._waiters = self._waiters, []
                        closing = self._closing
                        break
                    self._busy = True
                if job is not None:
                    job.run()
                    continue
                started = time.monotonic()
                try:
                    self._write(batch)
                except Exception:  # a bug must not kill the writer: log it and go on
                    self._log.exception("fib writer failed", routes=len(batch))
                self.last_write_seconds = time.monotonic() - started
            for loop, fut in waiters:
                _resolve(loop, fut, None, None)
            if closing:
                return

    def _write(self, batch: dict[PendingKey, NextHops]) -> None:
        """Group by table and drop no-ops (already so in the kernel) before the backend sees them."""
        groups: dict[TableKey, list[FibOp]] = {}
        settled: list[PendingKey] = []
        failed = self._failed
        last_tkey: TableKey | None = None
        installed: dict[PrefixKey, NextHops] = _EMPTY
        ops: list[FibOp] = []
        for key, nexthops in batch.items():
            table, afi, prefix = key
            if (table, afi) != last_tkey:  # batches are mostly one table: look it up once per run
                last_tkey = (table, afi)
                installed = self.installed.get(last_tkey, _EMPTY)
                ops = groups.setdefault(last_tkey, [])
            current = installed.get(prefix)
            if nexthops:
                if current is not None and same_nexthops(current, nexthops):
                    if failed and key in failed:
                        settled.append(key)
                    continue
            elif current is None:
                if failed and key in failed:
                    settled.append(key)  # not wanted and not there
                continue
            ops.append((prefix, nexthops))
        if settled:
            with self._lock:
                for key in settled:
                    self._errors.pop(key, None)
                    self._failed.pop(key, None)
        for (table, afi), table_ops in groups.items():
            if table_ops:
                self._apply(table, afi, table_ops)

    def _apply(self, table: int, afi: Afi, ops: list[FibOp]) -> list[FibError]:
        """Hand ``ops`` to the backend in chunks; update ``installed`` and the failure records."""
        routes = self.installed.setdefault((table, afi), {})
        all_errors: list[FibError] = []
        for start in range(0, len(ops), self._chunk):
            chunk = ops[start : start + self._chunk]
            try:
                errors = self._backend.apply(table, afi, chunk)
            except Exception as exc:  # the backend itself broke (socket gone...): every op failed
                errno = getattr(exc, "errno", None) or errno_mod.EIO
                self._log.error(
                    "fib backend failed", table=table, afi=afi.name_lower, ops=len(chunk), error=repr(exc)
                )
                errors = [FibError(table, afi, p, op_name(nh), errno, f"backend: {exc}") for p, nh in chunk]
            self.ops_total += len(chunk)
            failed = {e.prefix for e in errors} if errors else set()
            for prefix, nexthops in chunk:
                if prefix in failed:
                    continue  # a refused op leaves the kernel as it was
                if nexthops:
                    routes[prefix] = nexthops
                else:
                    routes.pop(prefix, None)
            self._record(table, afi, chunk, errors)
            all_errors.extend(errors)
        return all_errors

    def _record(self, table: int, afi: Afi, chunk: list[FibOp], errors: list[FibError]) -> None:
        if not errors and not self._failed:
            return
        wanted = dict(chunk) if errors else {}
        with self._lock:
            if self._failed:  # successes clear earlier failures of the same prefix
                for prefix, _nh in chunk:
                    key = (table, afi, prefix)
                    if key in self._failed:
                        self._failed.pop(key)
                        self._errors.pop(key, None)
            for error in errors:
                key = (table, afi, error.prefix)
                self._errors.pop(key, None)  # re-insert: the newest failures come last
                self._errors[key] = error
                self._failed[key] = wanted.get(error.prefix, ())
            while len(self._errors) > self._max_errors:
                oldest = next(iter(self._errors))
                del self._errors[oldest]
                self._failed.pop(oldest, None)
        self.errors_total += len(errors)
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
            stale = [(p, ()) for p in current if not wanted.get(p)]
            missing = [
                (p, nh)
                for p, nh in wanted.items()
                if nh and ((old := current.get(p)) is None or not same_nexthops(old, nh))
            ]
            ops: list[FibOp] = stale + missing
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
                ops: list[FibOp] = [(p, ()) for p in routes]
                errors = self._apply(table, afi, ops)
                self._log.info(
                    "kernel routes flushed",
                    table=table,
                    afi=afi.name_lower,
                    deleted=len(ops) - len(errors),
                    failed=len(errors),
                )


_EMPTY: dict[PrefixKey, NextHops] = {}


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
