"""The kernel as the IGP, against real kernel tables in a namespace: the netlink side
(``fib.kernel_routes``: dump, notifications, the in-kernel filter on our protocol), the view
and next-hop resolver built from it (``fib.kernel_view``) and redistribution's diffs
(``bgpd.redistribute``), each step driven by real ``ip route``/``ip addr``/``ip link`` commands.
"""

from __future__ import annotations

import ipaddress
import select
import time
from collections.abc import Callable, Iterator

import pytest
import structlog

from bgpd.config.model import RedistributeConfig
from bgpd.config.toml import parse_config
from bgpd.igp import KernelIgp
from bgpd.redistribute import CONNECTED, KERNEL, Announce, Redistributor, Withdraw
from fib.kernel_routes import KernelWatch
from fib.kernel_view import UNREACHABLE_DIRECT_COST, KernelView, NextHopResolver, Touched
from policy.filters import ACCEPT_ALL, REJECT_ALL, Filter, Policy, compile_term
from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, parse_prefix
from rib.route import Path, Source, SourceKind
from tests.netns.test_fib_netlink import in_netns, ip_cmd, ns

__all__ = ["ns"]  # the namespace fixture: "r" (10.77.0.1/24, fd00:77::1/64 on fva) with a neighbour

pytestmark = pytest.mark.root

PROTO = 186
ip = ipaddress.ip_address


def key(text: str) -> bytes:
    return parse_prefix(text)[1]


class Kernel:
    """A watch opened in the namespace, its view, and a way to wait for notifications."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        with in_netns(ns):
            self.watch = KernelWatch(PROTO)
            routes, addrs = self.watch.dump()
        self.view = KernelView()
        self.view.load(routes, addrs)
        self.seen: list[object] = []

    def ip(self, args: str) -> None:
        ip_cmd(self.ns, args)

    def until(self, what: str, fn: Callable[[], bool], timeout: float = 5.0) -> Touched:
        """Apply notifications until ``fn()`` holds; returns everything they touched."""
        total = Touched()
        deadline = time.monotonic() + timeout
        while not fn():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            select.select([self.watch.fileno()], [], [], 0.1)
            changes = self.watch.read()
            self.seen.extend(changes)
            t = self.view.apply(changes)
            total.routes |= t.routes
            total.addrs = total.addrs or t.addrs
        return total

    def drain(self, wait: float = 0.3) -> Touched:
        """Whatever arrives within ``wait`` seconds."""
        total = Touched()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            select.select([self.watch.fileno()], [], [], 0.05)
            changes = self.watch.read()
            self.seen.extend(changes)
            t = self.view.apply(changes)
            total.routes |= t.routes
            total.addrs = total.addrs or t.addrs
        return total


@pytest.fixture
def kernel(ns: str) -> Iterator[Kernel]:
    k = Kernel(ns)
    try:
        yield k
    finally:
        k.watch.close()


def test_dump_holds_other_protocols_routes_with_their_metric_and_never_ours(ns: str) -> None:
    ip_cmd(ns, "route add 10.88.0.0/16 via 10.77.0.2 metric 30 proto static")
    ip_cmd(ns, "route add 10.89.0.0/16 via 10.77.0.2 proto 186")  # ours by number
    ip_cmd(ns, "route add blackhole 10.244.1.0/26 table 600 proto 80")
    ip_cmd(ns, "-6 route add fd00:88::/32 via fd00:77::2 metric 40 proto static")
    k = Kernel(ns)
    try:
        [static] = k.view.routes(254, Afi.IPV4, key("10.88.0.0/16"))
        assert (static.metric, static.protocol) == (30, 4) and static.usable
        assert k.view.routes(254, Afi.IPV4, key("10.89.0.0/16")) == []
        [bh] = k.view.routes(600, Afi.IPV4, key("10.244.1.0/26"))
        assert bh.protocol == 80 and not bh.usable  # a blackhole is no way to a next hop
        [v6] = k.view.routes(254, Afi.IPV6, key("fd00:88::/32"))
        assert v6.metric == 40
        # The connected subnet and the address that makes it.
        assert k.view.lookup(254, ip("10.77.0.2")) == 0
        assert k.view.connected_prefix(ip("10.77.0.1")) == ipaddress.ip_network("10.77.0.0/24")
        assert k.view.connected_prefix(ip("fd00:77::1")) == ipaddress.ip_network("fd00:77::/64")
    finally:
        k.watch.close()


def test_our_protocols_notifications_are_dropped_in_the_kernel(kernel: Kernel) -> None:
    for i in range(200):
        kernel.ip(f"route add 10.90.{i}.0/24 via 10.77.0.2 proto 186")
    kernel.ip("route add 10.91.0.0/24 via 10.77.0.2 proto static")
    kernel.until("the static route", lambda: bool(kernel.view.routes(254, Afi.IPV4, key("10.91.0.0/24"))))
    kernel.drain()
    routes = [c for c in kernel.seen if hasattr(c, "route")]
    assert [c.route.protocol for c in routes] == [4]


def test_resolver_follows_routes_metrics_and_deletions(kernel: Kernel) -> None:
    res = NextHopResolver(kernel.view)
    res.configure({"main": (254,), "red": (500, 254)}, {"main": frozenset({ip("10.77.0.2")})})
    main, red = res.resolver("main"), res.resolver("red")
    far = ip("10.66.0.9")
    assert main(far) is None  # nothing covers it: the default route would not count either
    kernel.ip("route add default via 10.77.0.2")
    kernel.drain()
    assert res.refresh() == {} and main(far) is None

    kernel.ip("route add 10.66.0.0/16 via 10.77.0.2 metric 50 proto static")
    kernel.until("10.66/16", lambda: kernel.view.lookup(254, far) is not None)
    assert res.refresh() == {"main": {far}} and main(far) == 50
    # A longer prefix wins over a lower metric; the same prefix takes its lowest metric.
    kernel.ip("route add 10.66.0.0/24 via 10.77.0.2 metric 70 proto static")
    kernel.until("10.66.0/24", lambda: kernel.view.lookup(254, far) == 70)
    kernel.ip("route add 10.66.0.0/24 via 10.77.0.2 metric 20 proto static")
    kernel.until("metric 20", lambda: kernel.view.lookup(254, far) == 20)
    assert res.refresh() == {"main": {far}} and main(far) == 20
    # VRF red (no device): its own table first, then main.
    assert red(far) == 20
    kernel.ip("route add 10.66.0.0/24 via 10.77.0.2 metric 5 table 500 proto static")
    kernel.until("table 500", lambda: kernel.view.lookup(500, far) == 5)
    assert res.refresh() == {"red": {far}} and red(far) == 5 and main(far) == 20
    # A blackhole covering it is no way there.
    kernel.ip("route add blackhole 10.66.0.9/32 proto static")
    kernel.drain()
    assert res.refresh() == {} and main(far) == 20

    for metric in (20, 70):
        kernel.ip(f"route del 10.66.0.0/24 via 10.77.0.2 metric {metric}")
    kernel.ip("route del 10.66.0.0/16")
    kernel.until("10.66 gone from main", lambda: kernel.view.lookup(254, far) is None)
    assert res.refresh() == {"main": {far}} and main(far) is None and red(far) == 5

    # The directly connected eBGP neighbour resolves through its subnet; with the link down it
    # stays resolvable, at a cost above any route.
    assert main(ip("10.77.0.2")) == 0
    kernel.ip("link set fva down")
    kernel.until("link down", lambda: kernel.view.lookup(254, ip("10.77.0.2")) is None)
    # (table 500's route via the link went with it)
    assert res.refresh() == {"main": {ip("10.77.0.2")}, "red": {far}}
    assert main(ip("10.77.0.2")) == UNREACHABLE_DIRECT_COST and red(far) is None


def test_link_down_takes_the_routes_via_it_out_of_the_view(kernel: Kernel) -> None:
    kernel.ip("route add 10.66.0.0/24 via 10.77.0.2 metric 10 proto static")
    kernel.until("static route", lambda: kernel.view.lookup(254, ip("10.66.0.1")) == 10)
    kernel.ip("link set fva down")  # IPv4 flushes both routes without a notification for each
    touched = kernel.until("routes via fva gone", lambda: kernel.view.lookup(254, ip("10.66.0.1")) is None)
    assert (254, Afi.IPV4, key("10.66.0.0/24")) in touched.routes
    assert kernel.view.lookup(254, ip("10.77.0.2")) is None


def _policy() -> Policy:
    return Policy(
        "pods", [compile_term({"prefix": "10.244.0.0/16 le 26"}, "accept", {"community_add": ["65010:80"]})]
    )


def test_redistribution_follows_kernel_routes_and_addresses(kernel: Kernel) -> None:
    r = Redistributor(65010, 1, PROTO)
    entries = [
        RedistributeConfig("main", 254, (80,), False, "pods"),
        RedistributeConfig("main", connected=True),
    ]
    filters: dict[str, Filter] = {"all": ACCEPT_ALL, "none": REJECT_ALL, "pods": _policy()}
    first = r.configure(entries, filters, kernel.view)
    assert {(type(d), d.prefix, d.source.name) for d in first} == {
        (Announce, key("10.77.0.0/24"), CONNECTED),
        (Announce, key("fd00:77::/64"), CONNECTED),  # link-local and loopback subnets are not
    }
    kernel.ip("route add blackhole 10.244.1.0/26 proto 80")
    kernel.ip("route add blackhole 10.245.0.0/26 proto 80")  # outside the policy
    kernel.ip("route add 10.246.0.0/24 via 10.77.0.2 proto static")  # another protocol
    kernel.ip("route add blackhole 10.244.9.0/26 table 600 proto 80")  # another table
    t = kernel.until("routes seen", lambda: bool(kernel.view.routes(600, Afi.IPV4, key("10.244.9.0/26"))))
    diff = r.changed(kernel.view, t.routes, t.addrs)
    [a] = diff
    assert isinstance(a, Announce) and a.prefix == key("10.244.1.0/26") and a.source.name == KERNEL
    assert a.attrs.origin == 2 and a.attrs.communities == ((65010 << 16) | 80,)

    kernel.ip("addr add 10.55.0.1/24 dev fva")
    t = kernel.until("address", lambda: kernel.view.connected_prefix(ip("10.55.0.1")) is not None)
    diff = r.changed(kernel.view, t.routes, t.addrs)
    assert [(type(d), d.prefix) for d in diff] == [(Announce, key("10.55.0.0/24"))]

    kernel.ip("route del 10.244.1.0/26")
    kernel.ip("addr del 10.55.0.1/24 dev fva")
    t = kernel.until(
        "both gone",
        lambda: (
            not kernel.view.routes(254, Afi.IPV4, key("10.244.1.0/26"))
            and kernel.view.connected_prefix(ip("10.55.0.1")) is None
        ),
    )
    diff = r.changed(kernel.view, t.routes, t.addrs)
    assert {(type(d), d.prefix) for d in diff} == {
        (Withdraw, key("10.244.1.0/26")),
        (Withdraw, key("10.55.0.0/24")),
    }
    # Reconfigured without the kernel entry: nothing of the table stays.
    kernel.ip("route add blackhole 10.244.2.0/26 proto 80")
    kernel.until("10.244.2", lambda: bool(kernel.view.routes(254, Afi.IPV4, key("10.244.2.0/26"))))
    assert [type(d) for d in r.full(kernel.view)] == [Announce]
    diff = r.configure(entries[1:], filters, kernel.view)
    assert [(type(d), d.prefix) for d in diff] == [(Withdraw, key("10.244.2.0/26"))]


def test_channels_connected_prefix_comes_from_the_interface_address(ns: str) -> None:
    """The session's real subnet (a /25 here), not the /24 guess, decides third-party next hops."""
    ip_cmd(ns, "addr add 10.78.0.1/25 dev fva")
    config = parse_config('[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n', "t.toml")
    rib = Rib(65010, 1)
    with in_netns(ns):
        igp = KernelIgp(config, rib, 1, structlog.get_logger())
        dump = igp.dump()
    try:
        igp.load(dump)
        igp.configure(config, {"all": ACCEPT_ALL, "none": REJECT_ALL})
        ch = Channel(ChannelSettings("10.78.0.2", "main", 65010, 65001))
        rib.add_channel(ch)
        rib.channel_up(ch, Source(SourceKind.EBGP, ip("10.78.0.2"), 65001, 2), [Afi.IPV4])
        ch.local_addrs = {Afi.IPV4: ip("10.78.0.1")}
        other = Source(SourceKind.EBGP, ip("10.78.0.3"), 65002, 3)

        def exported_next_hop(nh: str) -> str:
            a = intern(PathAttrs(as_path=((2, (65002,)),), next_hop=ip(nh)))
            out = ch.export_attrs(Afi.IPV4, key("192.0.2.0/24"), Path(other, a, 0.0))
            assert out is not None
            return str(out.next_hop)

        assert exported_next_hop("10.78.0.200") == "10.78.0.200"  # the /24 guess: on the link
        igp.set_connected(ch)
        assert ch.connected == {Afi.IPV4: ipaddress.ip_network("10.78.0.0/25")}
        ch._export_cache.clear()
        assert exported_next_hop("10.78.0.200") == "10.78.0.1"  # outside the /25: next hop self
        assert exported_next_hop("10.78.0.5") == "10.78.0.5"  # third party on the shared /25
    finally:
        igp.close()
