"""An in-memory FIB backend for tests: dictionaries instead of kernel tables."""

from __future__ import annotations

import errno as errno_mod
import threading
from collections.abc import Mapping

from fib.model import FibBackend, FibError, FibOp, FibOps, NextHops, TableKey, op_name
from rib.prefix import Afi, IPAddress, PrefixKey


class MemoryFib(FibBackend):
    """Holds ``tables[(table, afi)][prefix] = nexthops``, like a kernel holding only our routes.

    Test hooks: ``fail(prefix, ...)`` makes every later op on that prefix fail; ``hold`` (an
    Event, set by default) blocks ``apply`` while cleared so a test can pile up submissions;
    ``entered`` is set whenever ``apply`` starts; ``raise_on_apply`` makes ``apply`` raise.
    ``calls`` records every ``apply`` as ``(table, afi, ops)``. With ``connected`` set (a set of
    gateways), a route via any other gateway is refused as the kernel does (ENETUNREACH), and
    ``resolve`` answers from ``ways`` (gateway -> the gateways of the route covering it).
    """

    def __init__(self) -> None:
        self.tables: dict[TableKey, dict[PrefixKey, NextHops]] = {}
        self.failing: dict[PrefixKey, tuple[int, str]] = {}
        self.calls: list[tuple[int, Afi, list[FibOp]]] = []
        self.dumps = 0
        self.closed = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.raise_on_apply: BaseException | None = None
        self.connected: set[IPAddress] | None = None
        self.ways: dict[IPAddress, NextHops] = {}
        self.resolves = 0

    def fail(self, prefix: PrefixKey, errno: int = errno_mod.ENETUNREACH, reason: str = "") -> None:
        self.failing[prefix] = (errno, reason or "Network is unreachable")

    def table(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        return self.tables.setdefault((table, afi), {})

    def dump(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        self.dumps += 1
        return dict(self.tables.get((table, afi), {}))

    def apply(self, table: int, afi: Afi, ops: FibOps) -> list[FibError]:
        self.entered.set()
        self.hold.wait()
        pairs = list(ops.items()) if isinstance(ops, Mapping) else list(ops)
        self.calls.append((table, afi, pairs))
        if self.raise_on_apply is not None:
            raise self.raise_on_apply
        routes = self.table(table, afi)
        errors: list[FibError] = []
        for prefix, nexthops in pairs:
            failure = self.failing.get(prefix)
            unreachable = self.connected is not None and not set(nexthops) <= self.connected
            if failure is None and nexthops and unreachable:
                failure = (errno_mod.ENETUNREACH, "Nexthop has invalid gateway")
            if failure is not None:
                errors.append(FibError(table, afi, prefix, op_name(nexthops), failure[0], failure[1]))
            elif nexthops:
                routes[prefix] = nexthops
            else:
                routes.pop(prefix, None)  # already gone is fine, as with the kernel
        return errors

    def resolve(self, table: int, afi: Afi, gateway: IPAddress) -> NextHops | None:
        self.resolves += 1
        if self.connected is not None and gateway in self.connected:
            return (gateway,)
        return self.ways.get(gateway)

    def close(self) -> None:
        self.closed = True
