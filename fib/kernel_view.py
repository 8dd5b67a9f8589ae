"""What the kernel holds besides our own routes: other protocols' routes and the addresses.

Pure: ``fib.kernel_routes`` (netlink) feeds it a dump and then change notifications; the
daemon asks it how a BGP next hop is reached (the decision process's "next hop resolvable"
and "IGP cost" steps) and which routes to redistribute. Our own BGP routes never enter it
(the netlink side drops them in the kernel), so a next hop is never resolved through a route
that itself depends on BGP: no recursion loops.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from rib.prefix import Afi, IPAddress, IPNetwork, PrefixKey, afi_of, make_key

RTN_UNICAST = 1
UNREACHABLE_DIRECT_COST = 1 << 32  # above any kernel metric (u32)
MAIN_TABLE = 254
RouteKey = tuple[int, Afi, PrefixKey]  # (kernel table, family, prefix)


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """One kernel route (one per table, prefix and metric, as the kernel keys them)."""

    table: int
    afi: Afi
    prefix: PrefixKey
    metric: int  # RTA_PRIORITY: the IGP cost of a next hop this route resolves
    protocol: int  # rtm_protocol: 2 kernel (connected), 4 static, 80 and up other daemons
    rtype: int = RTN_UNICAST  # unicast, blackhole (6), unreachable (7), ...
    ifindexes: tuple[int, ...] = ()  # the interfaces its next hops leave by

    @property
    def usable(self) -> bool:
        """A way to a next hop: unicast and not the default route (FRR's default, no
        resolve-via-default: a peer whose link went down must not be "reached" through it)."""
        return self.rtype == RTN_UNICAST and self.prefix[0] > 0


@dataclass(frozen=True, slots=True)
class KernelAddr:
    ifindex: int
    address: IPAddress
    network: IPNetwork  # the interface's connected prefix

    @property
    def afi(self) -> Afi:
        return afi_of(self.address)


# Change notifications, as fib.kernel_routes decodes them.
@dataclass(frozen=True, slots=True)
class RouteChange:
    route: KernelRoute
    present: bool  # RTM_NEWROUTE (True) or RTM_DELROUTE


@dataclass(frozen=True, slots=True)
class AddrChange:
    addr: KernelAddr
    present: bool


@dataclass(frozen=True, slots=True)
class LinkDown:
    """An interface went administratively down: IPv4 drops its routes without a word each."""

    ifindex: int


@dataclass(frozen=True, slots=True)
class Overrun:
    """Notifications were lost (ENOBUFS): only a new dump is safe."""


KernelChange = RouteChange | AddrChange | LinkDown | Overrun


@dataclass(slots=True)
class Touched:
    """What a batch of changes altered: route keys, and whether any address did."""

    routes: set[RouteKey] = field(default_factory=set)
    addrs: bool = False
    resync: bool = False  # an Overrun: the caller dumps again and calls ``load``

    def __bool__(self) -> bool:
        return bool(self.routes) or self.addrs or self.resync


class KernelView:
    """Other protocols' routes per table and family, indexed for longest-prefix match."""

    def __init__(self) -> None:
        # (table, afi) -> prefix -> metric -> route
        self._routes: dict[tuple[int, Afi], dict[PrefixKey, dict[int, KernelRoute]]] = {}
        # (table, afi) -> prefix length -> number of usable routes of that length: a lookup
        # probes only the lengths present (a handful), longest first.
        self._plens: dict[tuple[int, Afi], dict[int, int]] = {}
        self.addrs: dict[tuple[int, IPAddress], KernelAddr] = {}

    # --- updates ------------------------------------------------------------------------------

    def load(self, routes: Iterable[KernelRoute], addrs: Iterable[KernelAddr]) -> Touched:
        """Replace everything with a dump; every route key before or after counts as touched."""
        touched = Touched(addrs=True)
        for (table, afi), prefixes in self._routes.items():
            touched.routes.update((table, afi, p) for p in prefixes)
        self._routes.clear()
        self._plens.clear()
        self.addrs.clear()
        for r in routes:
            self._add(r)
            touched.routes.add((r.table, r.afi, r.prefix))
        for a in addrs:
            self.addrs[(a.ifindex, a.address)] = a
        return touched

    def apply(self, changes: Iterable[KernelChange]) -> Touched:
        touched = Touched()
        for c in changes:
            if isinstance(c, RouteChange):
                r = c.route
                if c.present:
                    self._add(r)
                else:
                    self._remove(r.table, r.afi, r.prefix, r.metric)
                touched.routes.add((r.table, r.afi, r.prefix))
            elif isinstance(c, AddrChange):
                key = (c.addr.ifindex, c.addr.address)
                if c.present:
                    self.addrs[key] = c.addr
                else:
                    self.addrs.pop(key, None)
                touched.addrs = True
            elif isinstance(c, LinkDown):
                for (table, afi), prefixes in list(self._routes.items()):
                    for prefix, by_metric in list(prefixes.items()):
                        for metric, r in list(by_metric.items()):
                            if r.ifindexes and all(i == c.ifindex for i in r.ifindexes):
                                self._remove(table, afi, prefix, metric)
                                touched.routes.add((table, afi, prefix))
            else:
                touched.resync = True
        return touched

    def _add(self, r: KernelRoute) -> None:
        tkey = (r.table, r.afi)
        by_metric = self._routes.setdefault(tkey, {}).setdefault(r.prefix, {})
        old = by_metric.get(r.metric)
        if old is not None and old.usable:
            self._count(tkey, r.prefix[0], -1)
        by_metric[r.metric] = r
        if r.usable:
            self._count(tkey, r.prefix[0], 1)

    def _remove(self, table: int, afi: Afi, prefix: PrefixKey, metric: int) -> None:
        tkey = (table, afi)
        prefixes = self._routes.get(tkey)
        if prefixes is None:
            return
        by_metric = prefixes.get(prefix)
        if by_metric is None:
            return
        old = by_metric.pop(metric, None)
        if old is not None and old.usable:
            self._count(tkey, prefix[0], -1)
        if not by_metric:
            del prefixes[prefix]

    def _count(self, tkey: tuple[int, Afi], plen: int, delta: int) -> None:
        plens = self._plens.setdefault(tkey, {})
        n = plens.get(plen, 0) + delta
        if n > 0:
            plens[plen] = n
        else:
            plens.pop(plen, None)

    # --- queries ------------------------------------------------------------------------------

    def lookup(self, table: int, addr: IPAddress) -> int | None:
        """The metric of the route ``table`` reaches ``addr`` by (longest match, lowest metric
        among that prefix's usable routes), or None when no usable route covers it."""
        afi = afi_of(addr)
        tkey = (table, afi)
        plens = self._plens.get(tkey)
        if not plens:
            return None
        prefixes = self._routes[tkey]
        packed = addr.packed
        for plen in sorted(plens, reverse=True):
            by_metric = prefixes.get(make_key(plen, packed))
            if by_metric:
                usable = [m for m, r in by_metric.items() if r.usable]
                if usable:
                    return min(usable)
        return None

    def routes(self, table: int, afi: Afi, prefix: PrefixKey) -> list[KernelRoute]:
        """The routes for one prefix in one table, lowest metric first."""
        by_metric = self._routes.get((table, afi), {}).get(prefix)
        return [by_metric[m] for m in sorted(by_metric)] if by_metric else []

    def table_keys(self, table: int) -> list[RouteKey]:
        return [(t, afi, p) for (t, afi), prefixes in self._routes.items() if t == table for p in prefixes]

    def connected(self) -> list[KernelAddr]:
        return list(self.addrs.values())

    def connected_prefix(self, local: IPAddress) -> IPNetwork | None:
        """The connected prefix of the interface that holds the address ``local``."""
        for a in self.addrs.values():
            if a.address == local:
                return a.network
        return None


class NextHopResolver:
    """BGP next hop -> IGP cost (the kernel route's metric), per VRF, cached.

    The answers only change in ``refresh``, which says which next hops now resolve
    differently: the RIB re-runs the selection of the paths using those (and only those).
    A VRF's next hops are looked up in its own table, then (a VRF without its own device,
    whose sessions use the main table's routes) in the main table. A directly connected
    eBGP neighbour's own address is always resolvable, but with no route to it (its link is
    down) it costs more than any route, so paths that can be forwarded win.
    """

    def __init__(self, view: KernelView) -> None:
        self.view = view
        self.tables: dict[str, tuple[int, ...]] = {}
        self.direct: dict[str, frozenset[IPAddress]] = {}
        self._cache: dict[str, dict[IPAddress, int | None]] = {}
        # The same answers for IPv4 next hops keyed by the address's integer: the RIB asks
        # once per UPDATE and per contest of two paths, and IPv4Address.__hash__ is Python code.
        self._fast: dict[str, dict[int, int | None]] = {}

    def configure(
        self, tables: dict[str, tuple[int, ...]], direct: dict[str, frozenset[IPAddress]]
    ) -> dict[str, set[IPAddress]]:
        """New VRF tables or directly connected neighbours (start, reload): what changed."""
        self.tables, self.direct = tables, direct
        return self.refresh()

    def resolver(self, vrf: str) -> Callable[[IPAddress], int | None]:
        cache = self._cache.setdefault(vrf, {})
        fast = self._fast.setdefault(vrf, {})
        compute = self._compute
        missing = _MISSING
        v4 = ipaddress.IPv4Address

        def resolve(nh: IPAddress) -> int | None:
            if type(nh) is v4:
                cost = fast.get(_ip_int(nh), missing)
                if cost is not missing:
                    return cost  # type: ignore[return-value]
            cost = cache.get(nh, missing)
            if cost is missing:
                if len(cache) > 100_000:  # next hops are few; this only bounds a pathological feed
                    cache.clear()
                    fast.clear()
                cost = cache[nh] = compute(vrf, nh)
            if type(nh) is v4:
                fast[_ip_int(nh)] = cost  # type: ignore[assignment]
            return cost  # type: ignore[return-value]

        return resolve

    def _compute(self, vrf: str, nh: IPAddress) -> int | None:
        lookup = self.view.lookup
        for table in self.tables.get(vrf, (MAIN_TABLE,)):
            cost = lookup(table, nh)
            if cost is not None:
                return cost
        if nh in self.direct.get(vrf, ()):
            return UNREACHABLE_DIRECT_COST
        return None

    def refresh(self) -> dict[str, set[IPAddress]]:
        """Look every known next hop up again; returns, per VRF, those whose answer changed."""
        changed: dict[str, set[IPAddress]] = {}
        for vrf, cache in self._cache.items():
            for nh, old in list(cache.items()):
                new = self._compute(vrf, nh)
                if new != old:
                    cache[nh] = new
                    changed.setdefault(vrf, set()).add(nh)
            if vrf in changed:
                self._fast.get(vrf, {}).clear()  # refilled from ``cache`` on the next questions
        return changed

    def known(self, vrf: str) -> dict[IPAddress, int | None]:
        return dict(self._cache.get(vrf, {}))


_MISSING: object = object()
_ip_int: Any = attrgetter("_ip")  # an address's integer, read in C


def network_of(addr: IPAddress, plen: int) -> IPNetwork:
    return ipaddress.ip_network(f"{addr.compressed.split('%')[0]}/{plen}", strict=False)
