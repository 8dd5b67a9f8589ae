"""What the FIB writer works with: next-hop sets, per-prefix errors and the backend interface.

A backend is a blocking object driven from one writer thread (``fib.sync.FibSync``); the
kernel one is ``fib.netlink.NetlinkFib``, the test double ``fib.memory.MemoryFib``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rib.prefix import Afi, IPAddress, PrefixKey, key_to_str

NextHops = tuple[IPAddress, ...]
"""Gateways of one route (several = ECMP). The empty tuple means "no route": delete it.

An IPv6 link-local gateway names its interface as a scope (``fe80::1%eth0`` or ``fe80::1%7``).
"""

FibOp = tuple[PrefixKey, NextHops]
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

    def apply(self, table: int, afi: Afi, ops: Sequence[FibOp]) -> list[FibError]:
        """Create-or-replace (non-empty next hops) or delete (``()``) each prefix; return the failures.

        Deleting a route that is already gone is not a failure. A prefix appears at most once per
        call, so the ops are independent: a backend may reorder them, and one failing does not
        stop the others.
        """
        ...

    def close(self) -> None: ...
