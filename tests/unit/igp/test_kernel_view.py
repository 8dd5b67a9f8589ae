"""The kernel view's longest-prefix match and the next-hop resolver built on it (pure)."""

from __future__ import annotations

import ipaddress

from fib.kernel_view import (
    UNREACHABLE_DIRECT_COST,
    AddrChange,
    KernelAddr,
    KernelRoute,
    KernelView,
    LinkDown,
    NextHopResolver,
    Overrun,
    RouteChange,
)
from rib.prefix import Afi, parse_prefix

ip = ipaddress.ip_address


def route(
    prefix: str, metric: int = 0, table: int = 254, rtype: int = 1, ifs: tuple[int, ...] = (2,)
) -> KernelRoute:
    afi, key = parse_prefix(prefix)
    return KernelRoute(table, afi, key, metric, 4, rtype, ifs)


def test_longest_match_then_lowest_metric_and_only_usable_routes() -> None:
    v = KernelView()
    v.load([route("10.0.0.0/8", 50), route("10.1.0.0/16", 70), route("10.1.0.0/16", 30)], [])
    assert v.lookup(254, ip("10.1.2.3")) == 30
    assert v.lookup(254, ip("10.2.0.1")) == 50
    assert v.lookup(254, ip("11.0.0.1")) is None
    assert v.lookup(500, ip("10.1.2.3")) is None  # another table
    # A default route, a blackhole: no way to a next hop.
    v.apply([RouteChange(route("0.0.0.0/0"), True), RouteChange(route("11.0.0.0/8", rtype=6), True)])
    assert v.lookup(254, ip("11.0.0.1")) is None
    # Removing the more specific's routes falls back to the covering one.
    t = v.apply([RouteChange(route("10.1.0.0/16", 30), False), RouteChange(route("10.1.0.0/16", 70), False)])
    assert v.lookup(254, ip("10.1.2.3")) == 50 and t.routes == {
        (254, Afi.IPV4, parse_prefix("10.1.0.0/16")[1])
    }
    v.apply([RouteChange(route("2001:db8::/32", 1024), True)])
    assert v.lookup(254, ip("2001:db8::1")) == 1024


def test_link_down_drops_routes_only_via_that_link_and_overrun_asks_for_a_dump() -> None:
    v = KernelView()
    v.load(
        [route("10.1.0.0/16", ifs=(2,)), route("10.2.0.0/16", ifs=(2, 3)), route("10.3.0.0/16", ifs=(3,))], []
    )
    t = v.apply([LinkDown(2)])
    assert v.lookup(254, ip("10.1.0.1")) is None
    assert v.lookup(254, ip("10.2.0.1")) == 0  # ECMP: the other leg is still up
    assert len(t.routes) == 1 and not t.resync
    assert v.apply([Overrun()]).resync


def test_addresses_give_the_connected_prefix() -> None:
    v = KernelView()
    a = KernelAddr(2, ip("10.9.0.1"), ipaddress.ip_network("10.9.0.0/24"))
    t = v.apply([AddrChange(a, True)])
    assert t.addrs and v.connected_prefix(ip("10.9.0.1")) == ipaddress.ip_network("10.9.0.0/24")
    assert v.connected_prefix(ip("10.9.0.2")) is None
    v.apply([AddrChange(a, False)])
    assert v.connected_prefix(ip("10.9.0.1")) is None


def test_resolver_per_vrf_with_fallback_to_main_and_direct_neighbours() -> None:
    v = KernelView()
    v.load(
        [route("10.1.0.0/16", 10), route("10.1.0.0/16", 5, table=500), route("10.2.0.0/16", 7, table=501)], []
    )
    r = NextHopResolver(v)
    r.configure(
        {"main": (254,), "red": (500, 254), "blue": (501,)},  # blue has its own device: no fallback
        {"main": frozenset({ip("10.9.9.9")})},
    )
    main, red, blue = r.resolver("main"), r.resolver("red"), r.resolver("blue")
    assert (main(ip("10.1.0.1")), red(ip("10.1.0.1")), blue(ip("10.1.0.1"))) == (10, 5, None)
    assert red(ip("10.2.0.1")) is None and blue(ip("10.2.0.1")) == 7
    assert main(ip("10.9.9.9")) == UNREACHABLE_DIRECT_COST and red(ip("10.9.9.9")) is None
    # Answers are cached until refresh, which names what changed, per VRF.
    v.apply(
        [RouteChange(route("10.1.0.0/16", 5, table=500), False), RouteChange(route("10.9.0.0/16", 3), True)]
    )
    assert red(ip("10.1.0.1")) == 5
    # (red looks 10.9.9.9 up in main too: the new route reaches it there)
    assert r.refresh() == {"red": {ip("10.1.0.1"), ip("10.9.9.9")}, "main": {ip("10.9.9.9")}}
    assert (red(ip("10.1.0.1")), main(ip("10.9.9.9"))) == (10, 3)
    assert r.refresh() == {}
