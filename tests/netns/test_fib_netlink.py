"""NetlinkFib and FibSync against real kernel tables, in throwaway network namespaces (root only).

Namespace "r" holds the tables; a veth to namespace "gw" puts 10.77.0.0/24 and fd00:77::/64
on a link, so gateways there are valid next hops. The netlink socket is opened inside "r"
(setns around its creation); the kernel state is checked with ``ip -N -j``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import json
import os
from collections.abc import Iterator

import pytest

from fib.model import FibOp, NextHops
from fib.netlink import NetlinkFib
from fib.sync import FibSync
from rib.prefix import Afi, PrefixKey, key_to_str, parse_prefix
from tests.support.netns import Lab, need_root, run

pytestmark = pytest.mark.root

CLONE_NEWNET = 0x40000000
PROTO = 186
ip = ipaddress.ip_address
G4 = (ip("10.77.0.2"), ip("10.77.0.3"), ip("10.77.0.4"))
G6 = (ip("fd00:77::2"), ip("fd00:77::3"), ip("fd00:77::4"))


def key(text: str) -> PrefixKey:
    return parse_prefix(text)[1]


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run this thread in namespace ``name`` for the block (sockets opened here stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


@pytest.fixture
def ns() -> Iterator[str]:
    need_root()
    with Lab() as lab:
        r, gw = lab.ns("r"), lab.ns("gw")
        lab.link(r, gw, ["10.77.0.1/24", "fd00:77::1/64"], ["10.77.0.2/24", "fd00:77::2/64"], name="fv")
        yield r


@pytest.fixture
def fib(ns: str) -> Iterator[NetlinkFib]:
    with in_netns(ns):
        backend = NetlinkFib(protocol=PROTO)
    yield backend
    backend.close()


def ip_cmd(ns: str, args: str) -> str:
    return run("ip", "-n", ns, *args.split()).stdout


def kernel(ns: str, afi: Afi, table: int) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``prefix -> (protocol number, sorted gateways)`` as ``ip -N -j route show table N`` prints it.

    Routes of the kernel itself (proto 2: the link's subnet) are left out.
    """
    family = "-4" if afi is Afi.IPV4 else "-6"
    out = ip_cmd(ns, f"-N -j {family} route show table {table}")
    routes = {}
    for r in json.loads(out or "[]"):
        if str(r.get("protocol")) == "2":
            continue
        dst = r["dst"]
        if dst == "default":
            dst = "0.0.0.0/0" if afi is Afi.IPV4 else "::/0"
        elif "/" not in dst:
            dst += "/32" if afi is Afi.IPV4 else "/128"
        hops = r.get("nexthops", [r])
        gws = tuple(sorted(h["via"]["host"] if "via" in h else h.get("gateway", "") for h in hops))
        routes[dst] = (str(r.get("protocol")), gws)
    return routes


def ours(routes: dict[PrefixKey, NextHops], afi: Afi) -> dict[str, tuple[str, tuple[str, ...]]]:
    """What ``kernel`` should show for ``routes`` installed by us."""
    return {key_to_str(afi, p): (str(PROTO), tuple(sorted(str(g) for g in nh))) for p, nh in routes.items()}


def check(ns: str, fib: NetlinkFib, afi: Afi, table: int, want: dict[PrefixKey, NextHops]) -> None:
    assert kernel(ns, afi, table) == ours(want, afi)
    dumped = fib.dump(table, afi)
    assert {p: frozenset(nh) for p, nh in dumped.items()} == {p: frozenset(nh) for p, nh in want.items()}


@pytest.mark.parametrize("table", [500, 254])
@pytest.mark.parametrize("afi", [Afi.IPV4, Afi.IPV6])
def test_install_replace_delete(ns: str, fib: NetlinkFib, afi: Afi, table: int) -> None:
    g = G4 if afi is Afi.IPV4 else G6
    texts = (
        ["198.51.100.0/24", "203.0.113.0/25", "192.0.2.1/32", "0.0.0.0/0"]
        if afi is Afi.IPV4
        else ["2001:db8:1::/48", "2001:db8:2::/64", "2001:db8::1/128", "::/0"]
    )
    p1, p2, p3, p4 = (key(t) for t in texts)
    want: dict[PrefixKey, NextHops] = {p1: g[:1], p2: g[:2], p3: (g[2],), p4: g}
    assert fib.apply(table, afi, list(want.items())) == []
    check(ns, fib, afi, table, want)

    # Replace: single -> ECMP, ECMP -> single, ECMP -> another ECMP set, gateway change.
    change: dict[PrefixKey, NextHops] = {p1: (g[1], g[2]), p2: (g[1],), p4: (g[0], g[2]), p3: (g[0],)}
    assert fib.apply(table, afi, list(change.items())) == []
    want.update(change)
    check(ns, fib, afi, table, want)

    assert fib.apply(table, afi, [(p1, ()), (p4, ())]) == []
    del want[p1], want[p4]
    check(ns, fib, afi, table, want)

    # Deleting what is already gone is not an error.
    assert fib.apply(table, afi, [(p, ()) for p in (p1, p2, p3, p4)]) == []
    check(ns, fib, afi, table, {})


def test_rejected_op_is_reported_for_its_prefix_only(ns: str, fib: NetlinkFib) -> None:
    good = {key(f"10.{i}.0.0/16"): G4[:1] for i in range(1, 6)}
    bad = key("10.100.0.0/16")
    ops: list[FibOp] = [*list(good.items())[:2], (bad, (ip("192.0.2.99"),)), *list(good.items())[2:]]
    errors = fib.apply(500, Afi.IPV4, ops)
    assert [(e.table, e.afi, e.prefix, e.op, e.errno) for e in errors] == [
        (500, Afi.IPV4, bad, "replace", errno.ENETUNREACH)
    ]
    assert errors[0].reason  # the kernel's extended-ack text, or strerror
    check(ns, fib, Afi.IPV4, 500, good)

    bad6 = key("2001:db8:bad::/48")
    errors = fib.apply(500, Afi.IPV6, [(key("2001:db8:1::/48"), G6[:1]), (bad6, (ip("2001:db8:ffff::1"),))])
    assert [(e.prefix, e.op) for e in errors] == [(bad6, "replace")]
    assert errors[0].errno != 0
    check(ns, fib, Afi.IPV6, 500, {key("2001:db8:1::/48"): G6[:1]})


@pytest.mark.parametrize("recvmmsg", [True, False], ids=["recvmmsg", "recv"])
def test_many_routes_in_several_batches_with_scattered_failures(ns: str, recvmmsg: bool) -> None:
    with in_netns(ns):
        fib = NetlinkFib(batch=64 * 1024)  # many sends, so the sender thread pipelines
    if not recvmmsg:
        fib._mrecv = None  # the fallback for a libc without recvmmsg: one recv per ack
    try:
        prefixes = [key(f"20.{i >> 8}.{i & 255}.0/24") for i in range(30_000)]
        bad = set(prefixes[5::7919])
        ops: list[FibOp] = [(p, (ip("192.0.2.99"),) if p in bad else G4[:2]) for p in prefixes]
        errors = fib.apply(1000, Afi.IPV4, ops)
        assert {e.prefix for e in errors} == bad
        assert all(e.errno == errno.ENETUNREACH for e in errors)
        dumped = fib.dump(1000, Afi.IPV4)
        assert len(dumped) == len(prefixes) - len(bad)
        assert set(dumped) == set(prefixes) - bad
        assert all(set(nh) == set(G4[:2]) for nh in dumped.values())
        assert fib.apply(1000, Afi.IPV4, [(p, ()) for p in prefixes]) == []
        assert fib.dump(1000, Afi.IPV4) == {}
        assert kernel(ns, Afi.IPV4, 1000) == {}
    finally:
        fib.close()


def test_receive_buffer_overrun_is_recovered(ns: str) -> None:
    with in_netns(ns):
        fib = NetlinkFib(rcvbuf=4096)  # room for a few acks only: most of a batch's are dropped
    try:
        prefixes = [key(f"21.0.{i}.0/24") for i in range(200)]
        assert fib.apply(500, Afi.IPV4, [(p, G4[:1]) for p in prefixes]) == []
        assert fib._max_ops < 64  # it learnt to send less at a time
        assert set(fib.dump(500, Afi.IPV4)) == set(prefixes)
        assert fib.apply(500, Afi.IPV4, [(p, ()) for p in prefixes]) == []
        assert fib.dump(500, Afi.IPV4) == {}
    finally:
        fib.close()


def test_dump_is_per_table_and_ours_only(ns: str, fib: NetlinkFib) -> None:
    p = key("198.51.100.0/24")
    assert fib.apply(500, Afi.IPV4, [(p, G4[:1])]) == []
    assert fib.apply(501, Afi.IPV4, [(key("198.51.101.0/24"), G4[:1])]) == []
    assert fib.apply(254, Afi.IPV4, [(key("198.51.102.0/24"), G4[:1])]) == []
    ip_cmd(ns, "route add 203.0.113.0/24 via 10.77.0.2 table 500 proto static")
    assert fib.dump(500, Afi.IPV4) == {p: G4[:1]}
    assert fib.dump(501, Afi.IPV4) == {key("198.51.101.0/24"): G4[:1]}
    assert fib.dump(254, Afi.IPV4) == {key("198.51.102.0/24"): G4[:1]}  # no kernel link routes
    assert fib.dump(502, Afi.IPV4) == {}  # a table that does not exist
    assert fib.dump(500, Afi.IPV6) == {}


def test_link_local_gateway_and_ipv4_via_ipv6(ns: str, fib: NetlinkFib) -> None:
    ifindex = json.loads(ip_cmd(ns, "-j link show dev fva"))[0]["ifindex"]
    ll = ip(f"fe80::2%{ifindex}")
    p6, p4 = key("2001:db8:11::/48"), key("198.51.100.0/24")
    with in_netns(ns):  # interface names resolve in the namespace
        assert fib.apply(500, Afi.IPV6, [(p6, (ll,))]) == []
        assert fib.apply(500, Afi.IPV4, [(p4, (G6[0],))]) == []
        dumped6 = fib.dump(500, Afi.IPV6)
        dumped4 = fib.dump(500, Afi.IPV4)
    assert dumped6 == {p6: (ip("fe80::2%fva"),)}
    assert dumped4 == {p4: (G6[0],)}
    shown = json.loads(ip_cmd(ns, "-N -j -6 route show table 500"))
    assert [(r["gateway"], r["dev"]) for r in shown] == [("fe80::2", "fva")]
    assert kernel(ns, Afi.IPV4, 500) == {"198.51.100.0/24": ("186", ("fd00:77::2",))}


async def test_sync_reconcile_and_flush_leave_other_routes_alone(ns: str, fib: NetlinkFib) -> None:
    # Another protocol's routes, in a managed table and in main; ours in an unmanaged table.
    ip_cmd(ns, "route add 203.0.113.0/24 via 10.77.0.2 table 500 proto static")
    ip_cmd(ns, "-6 route add 2001:db8:ff::/48 via fd00:77::2 table 500 proto static")
    ip_cmd(ns, "route add 203.0.114.0/24 via 10.77.0.3 proto static")
    assert fib.apply(600, Afi.IPV4, [(key("198.18.0.0/15"), G4[:1])]) == []
    # Left by a previous run: one stale, one to change, one right.
    stale, change, right, missing = (key(f"198.51.{i}.0/24") for i in (100, 101, 102, 103))
    assert fib.apply(500, Afi.IPV4, [(stale, G4[:1]), (change, G4[:1]), (right, G4[:2])]) == []
    stale6 = key("2001:db8:1::/48")
    assert fib.apply(500, Afi.IPV6, [(stale6, G6[:1])]) == []
    static = {
        Afi.IPV4: {"203.0.113.0/24": ("4", ("10.77.0.2",))},
        Afi.IPV6: {"2001:db8:ff::/48": ("4", ("fd00:77::2",))},
    }

    sync = FibSync(fib)
    try:
        desired = {(500, Afi.IPV4): {change: G4[1:3], right: (G4[1], G4[0]), missing: G4[:1]}}
        await sync.reconcile(desired, [(500, Afi.IPV4), (500, Afi.IPV6)])
        want4 = {change: G4[1:3], right: G4[:2], missing: G4[:1]}
        assert kernel(ns, Afi.IPV4, 500) == {**static[Afi.IPV4], **ours(want4, Afi.IPV4)}
        assert kernel(ns, Afi.IPV6, 500) == static[Afi.IPV6]
        assert sync.installed[(500, Afi.IPV4)].keys() == want4.keys()
        assert sync.installed_count() == 3
        assert sync.errors == []

        sync.submit(254, Afi.IPV4, key("100.64.0.0/10"), G4[:2])
        sync.submit(500, Afi.IPV6, key("2001:db8:2::/48"), G6[:2])
        sync.submit(500, Afi.IPV4, missing, ())
        sync.submit(500, Afi.IPV4, key("198.51.200.0/24"), (ip("192.0.2.99"),))  # not reachable
        await sync.wait_idle()
        assert kernel(ns, Afi.IPV4, 254)["100.64.0.0/10"] == ("186", ("10.77.0.2", "10.77.0.3"))
        assert key_to_str(Afi.IPV4, missing) not in kernel(ns, Afi.IPV4, 500)
        assert [(e.prefix_str, e.errno) for e in sync.errors] == [("198.51.200.0/24", errno.ENETUNREACH)]

        await sync.flush_all()
        assert kernel(ns, Afi.IPV4, 500) == static[Afi.IPV4]
        assert kernel(ns, Afi.IPV6, 500) == static[Afi.IPV6]
        main = kernel(ns, Afi.IPV4, 254)
        assert main["203.0.114.0/24"] == ("4", ("10.77.0.3",))
        assert all(proto != "186" for proto, _ in main.values())
        assert fib.dump(600, Afi.IPV4) == {key("198.18.0.0/15"): G4[:1]}  # never managed
        assert sync.installed_count() == 0
    finally:
        await sync.close()


def test_namespace_helper_restores_this_thread() -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    need_root()
    with Lab() as lab:
        other = lab.ns("x")
        with in_netns(other):
            assert os.readlink("/proc/thread-self/ns/net") != before
    assert os.readlink("/proc/thread-self/ns/net") == before
