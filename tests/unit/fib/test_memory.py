"""The in-memory backend behaves like the kernel one where the tests rely on it."""

from __future__ import annotations

import errno
import ipaddress

from fib.memory import MemoryFib
from fib.model import FibError, same_nexthops
from rib.prefix import Afi, parse_prefix

G = (ipaddress.ip_address("10.0.0.1"),)
P1, P2 = parse_prefix("10.1.0.0/16")[1], parse_prefix("10.2.0.0/16")[1]


def test_apply_dump_and_delete_of_missing() -> None:
    fib = MemoryFib()
    assert fib.apply(500, Afi.IPV4, [(P1, G), (P2, G)]) == []
    assert fib.dump(500, Afi.IPV4) == {P1: G, P2: G}
    assert fib.dump(500, Afi.IPV6) == {}
    assert fib.apply(500, Afi.IPV4, [(P1, ()), (P1, ())]) == []  # already gone: fine
    assert fib.dump(500, Afi.IPV4) == {P2: G}
    dumped = fib.dump(500, Afi.IPV4)
    dumped.clear()  # a copy
    assert fib.tables[(500, Afi.IPV4)] == {P2: G}


def test_failures_are_per_prefix() -> None:
    fib = MemoryFib()
    fib.fail(P1, errno.EPERM, "nope")
    assert fib.apply(254, Afi.IPV4, [(P1, G), (P2, G), (P1, ())]) == [
        FibError(254, Afi.IPV4, P1, "replace", errno.EPERM, "nope"),
        FibError(254, Afi.IPV4, P1, "delete", errno.EPERM, "nope"),
    ]
    assert fib.dump(254, Afi.IPV4) == {P2: G}


def test_same_nexthops_ignores_order_and_duplicates() -> None:
    a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    assert same_nexthops((a, b), (b, a))
    assert same_nexthops((a, a), (a,))
    assert not same_nexthops((a,), (b,))
    assert not same_nexthops((a,), ())
