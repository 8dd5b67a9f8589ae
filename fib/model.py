"""What the FIB writer works with: next-hop sets, per-prefix errors and the backend interface.

A backend is a blocking object driven from one writer thread (``fib.sync.FibSync``); the
kernel one is ``fib.netlink.NetlinkFib``, the test double ``fib.memory.MemoryFib``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rib.prefix import Afi, IPAddress, PrefixKey, key_to_str

NextHops = tuple[IPAddress, ...]
"""Gateways of one route (several = ECMP). The empty tuple means "no route": delete it.

An IPv6 link-local gateway names its interface as a scope (``fe80::1%eth0`` or ``fe80::1%7``).
"""

FibOp = tuple[PrefixKey, NextHops]
# What ``FibBackend.apply`` takes: prefix -> next hops (the fast form: FibSync hands its dicts
# over without making a tuple per route, which a full table would pay for in the cyclic GC),
# or a sequence of (prefix, next hops) pairs.
FibOps = Mapping[PrefixKey, NextHops] | Sequence[FibOp]
TableKey = tuple[int, Afi]  # (kernel table id, address family)

OP_REPLACE = "replace"
OP_DELETE = "delete"


def op_name(nexthops: NextHops) -> str:
    return OP_REPLACE if nexthops else OP_DELETE


def same_nexthops(a: NextHops, b: NextHops) -> bool:
    """Equal as sets: the kernel may list ECMP members in another order (and merges duplicates)."""
    return a == b or set(a) == set(b)


@dataclass(frozen=True, slots=True)
class FibError:
    """One route operation the kernel (or backend) refused."""

    table: int
    afi: Afi
    prefix: PrefixKey
    op: str  # OP_REPLACE | OP_DELETE
    errno: int
    reason: str

    @property
    def prefix_str(self) -> str:
        return key_to_str(self.afi, self.prefix)


class FibBackend(Protocol):
    """Blocking route writer for one routing protocol number. Not thread-safe: one caller at a time."""

    def dump(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        """Our routes (our protocol number only) in ``table``, ECMP sets merged into one entry.

        A route of ours that has no gateway (e.g. a blackhole) is reported with ``()`` so that a
        reconciliation removes it.
        """
        ...

    def apply(self, table: int, afi: Afi, ops: FibOps) -> list[FibError]:
        """Create-or-replace (non-empty next hops) or delete (``()``) each prefix; return the failures.

        Deleting a route that is already gone is not a failure. A prefix appears at most once per
        call, so the ops are independent: a backend may reorder them, and one failing does not
        stop the others.
        """
        ...

    def close(self) -> None: ...


# What the kernel told us happened (fib.netlink.RouteMonitor), for FibSync to compare with ``installed``.
EV_ROUTE_NEW = "route_new"
EV_ROUTE_DEL = "route_del"
EV_LINK = "link"  # an interface's running state (admin up and carrier) changed
EV_ADDR = "addr"  # an address was added (a next hop may have become reachable) or removed (up=False)
EV_OVERRUN = "overrun"  # notifications were lost (ENOBUFS): only a full resync is safe


@dataclass(frozen=True, slots=True)
class KernelEvent:
    kind: str
    table: int = 0
    afi: Afi = Afi.IPV4
    prefix: PrefixKey = b""
    protocol: int = 0
    nexthops: NextHops = ()
    ifindex: int = 0
    up: bool = False


class KernelMonitor(Protocol):
    """Kernel change notifications, except the ones our own writes caused."""

    def fileno(self) -> int: ...

    def read(self) -> Sequence[KernelEvent]:
        """Every queued event, without blocking (an overrun is reported as an EV_OVERRUN event)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """An `ip rule` steering traffic into a VRF's table (fib.netlink.RuleWriter writes it).

    ``afi`` None: one rule per family (a rule without a source prefix steers both).
    """

    table: int
    priority: int
    afi: Afi | None = None
    source: str | None = None  # a prefix, "10.10.0.0/16"
    iif: str | None = None
    fwmark: int | None = None

    def describe(self) -> str:
        words = [f"from {self.source}" if self.source else "from all"]
        if self.iif is not None:
            words.append(f"iif {self.iif}")
        if self.fwmark is not None:
            words.append(f"fwmark {self.fwmark:#x}")
        words.append(f"lookup {self.table} pref {self.priority}")
        return " ".join(words)
